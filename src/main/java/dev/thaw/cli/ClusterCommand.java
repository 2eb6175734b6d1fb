package dev.thaw.cli;

import dev.thaw.cluster.live.ClusterException;
import dev.thaw.cluster.live.ClusterStatus;
import dev.thaw.cluster.live.LiveCluster;
import dev.thaw.cluster.net.PairRecord;
import dev.thaw.guest.ClusterMember;
import dev.thaw.host.HostDoctor;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "cluster", mixinStandardHelpOptions = true,
        description = "Virtual clusters: demo guests that talk to each other through Thaw's switch (docs/cluster.md).",
        subcommands = {ClusterCommand.Up.class, ClusterCommand.Status.class})
final class ClusterCommand implements Runnable {
    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        throw new picocli.CommandLine.ParameterException(spec.commandLine(), "expected a subcommand: up or status");
    }

    @Command(name = "up", mixinStandardHelpOptions = true,
            description = {"Boot N members on a cluster switch and keep them running until Ctrl-C.",
                    "Member m1 (10.0.3.1) serves tcpstream; m2..mN stream checked bytes to it. The switch's sockets, and",
                    "status.json (rewritten every second, read by 'thaw cluster status'), are in DIR. Ctrl-C or SIGTERM",
                    "ends every member's QEMU and the switch; a member whose QEMU exits ends the cluster with an error."})
    static final class Up implements Callable<Integer> {
        @Option(names = "--members", required = true, description = "Number of members, 1-254.")
        int members;

        @Option(names = "--dir", description = "Directory for the switch's sockets and status.json (default: a new /tmp/thaw-cluster-*).")
        Path dir;

        @Option(names = "--memory-mib", defaultValue = "256", description = "RAM of each member (default ${DEFAULT-VALUE}).")
        long memoryMiB;

        @Option(names = "--stream-mib", defaultValue = "0", description = "MiB each client streams to m1; 0 (default): forever.")
        long streamMiB;

        @Override
        public Integer call() throws Exception {
            // Bad options fail before the host is checked and the guest built.
            List<ClusterMember> list = ClusterMember.starOf(members, memoryMiB, streamMiB << 20);
            HostDoctor.Report host = HostDoctor.ensureReady(System.err);
            try (LiveCluster cluster = LiveCluster.up(dir, list, host.guest().orElseThrow(), host.qemuVersion().orElseThrow(), host.accel(),
                    LiveCluster.CONNECT_TIMEOUT)) {
                // Ctrl-C and SIGTERM run the shutdown hooks, not this block's close.
                Runtime.getRuntime().addShutdownHook(new Thread(cluster::close, "cluster-shutdown"));
                System.out.println("cluster up in " + cluster.directory() + ", " + list.size() + " members:");
                for (ClusterStatus.Member m : cluster.status().members()) {
                    System.out.printf("  %-4s %-10s %s %-6s QEMU pid %d, QMP %s%n", m.name(), m.address(), m.mac(), m.role(), m.qemuPid(),
                            m.qmpSocket());
                }
                System.out.println("status: ./thaw cluster status --dir " + cluster.directory() + "   (Ctrl-C ends the cluster)");
                while (true) {
                    cluster.writeStatus();
                    cluster.check();
                    Thread.sleep(Duration.ofSeconds(1));
                }
            } catch (ClusterException e) {
                System.err.println("thaw cluster up: " + e.getMessage());
                return 1;
            }
        }
    }

    @Command(name = "status", mixinStandardHelpOptions = true,
            description = "Show the members of the cluster running in DIR and the traffic between each pair, from its status.json.")
    static final class Status implements Callable<Integer> {
        @Option(names = "--dir", required = true, description = "The cluster's directory ('thaw cluster up' prints it).")
        Path dir;

        @Option(names = "--json", description = "Print the status file's content as JSON.")
        boolean json;

        @Override
        public Integer call() throws Exception {
            ClusterStatus status = ClusterStatus.read(dir);
            boolean live = status.isLive(Instant.now());
            if (json) {
                System.out.println(Json.write(status));
                return live ? 0 : 3;
            }
            System.out.println("cluster in " + status.dir() + ", status of " + status.at() + " by 'thaw cluster up' pid " + status.upPid()
                    + (live ? "" : " (STALE: that process is gone or stopped; the cluster is not running)"));
            System.out.printf("%-4s %-9s %-6s %-9s %-7s %10s %10s %8s %14s %s%n", "name", "address", "role", "qemu", "switch", "frames in",
                    "frames out", "dropped", "stream bytes", "stream");
            for (ClusterStatus.Member m : status.members()) {
                var p = m.port();
                String stream = m.done() != null ? "done, " + m.done().bad() + " bad, fnv " + m.done().fnv()
                        : m.lastTick() == null ? "-" : m.lastTick().direction().name().toLowerCase(java.util.Locale.ROOT)
                        + (m.lastTick().bad() > 0 ? ", " + m.lastTick().bad() + " BAD" : "");
                long bytes = m.done() != null ? m.done().bytes() : m.lastTick() == null ? 0 : m.lastTick().bytes();
                System.out.printf("%-4s %-9s %-6s %-9s %-7s %10d %10d %8d %14d %s%n", m.name(), m.address(), m.role(),
                        m.alive() ? "running" : "EXITED", p.connected() ? "up" : "down", p.framesIn(), p.framesOut(),
                        p.droppedQueueFull() + p.droppedUnconnected(), bytes, stream);
                if (!m.alive()) System.out.println("     " + m.qemu());
            }
            System.out.println();
            System.out.printf("%-4s    %-4s %10s %14s %s%n", "from", "to", "frames", "bytes", "last frame");
            for (PairRecord r : status.traffic()) {
                System.out.printf("%-4s -> %-4s %10d %14d %s%n", r.from(), r.to(), r.frames(), r.bytes(), r.last());
            }
            return live ? 0 : 3;
        }
    }
}
