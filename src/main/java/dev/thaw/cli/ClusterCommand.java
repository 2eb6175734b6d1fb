package dev.thaw.cli;

import dev.thaw.cluster.checkpoint.CheckpointException;
import dev.thaw.cluster.checkpoint.ClusterRestore;
import dev.thaw.cluster.checkpoint.ClusterSave;
import dev.thaw.cluster.checkpoint.SaveRequest;
import dev.thaw.cluster.checkpoint.Strategy;
import dev.thaw.measure.ClusterDemo;
import dev.thaw.cluster.live.ClusterException;
import dev.thaw.cluster.live.ClusterStatus;
import dev.thaw.cluster.live.LiveCluster;
import dev.thaw.cluster.net.PairRecord;
import dev.thaw.cluster.zk.ZkCohort;
import dev.thaw.cluster.zk.ZkCoordinator;
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
        subcommands = {ClusterCommand.Up.class, ClusterCommand.Status.class, ClusterCommand.Save.class, ClusterCommand.Restore.class,
                ClusterCommand.Cohort.class, ClusterCommand.SwitchCommand.class, ClusterCommand.Demo.class})
final class ClusterCommand implements Runnable {
    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        throw new picocli.CommandLine.ParameterException(spec.commandLine(), "expected a subcommand: up, status, save, restore, cohort, switch or demo");
    }

    @Command(name = "demo", mixinStandardHelpOptions = true,
            description = {"The strategies compared: a cluster disrupted by its save and restore (HotRestore's experiment, small).",
                    "Boots N members (m1 serves, the others stream checked bytes to it without end), measures the stream into m1,",
                    "saves the cluster once, and restores the checkpoint with every strategy, interleaved, --repeat times, each",
                    "restore observed for --observe-seconds. Prints per strategy the time until the stream is back at 0.8 of its",
                    "rate before the save (median and min), the members' TCP retransmissions and retransmission timeouts, and the",
                    "frames the switch dropped and held. Every QEMU and directory it made is gone at the end."})
    static final class Demo implements Callable<Integer> {
        @Option(names = "--members", defaultValue = "3", description = "Members, at least 2 (default ${DEFAULT-VALUE}).")
        int members;

        @Option(names = "--memory-mib", defaultValue = "192", description = "RAM of each member (default ${DEFAULT-VALUE}).")
        long memoryMiB;

        @Option(names = "--repeat", defaultValue = "2", description = "Restores per strategy, interleaved (default ${DEFAULT-VALUE}).")
        int repeat;

        @Option(names = "--strategies", split = ",", defaultValue = "independent,restore-line,held",
                description = "The strategies compared (default ${DEFAULT-VALUE}).")
        List<String> strategies;

        @Option(names = "--warm-up-seconds", defaultValue = "3", description = "Streaming before the rate is measured (default ${DEFAULT-VALUE}).")
        long warmUpSeconds;

        @Option(names = "--before-seconds", defaultValue = "5", description = "How long the rate before the save is measured (default ${DEFAULT-VALUE}).")
        long beforeSeconds;

        @Option(names = "--observe-seconds", defaultValue = "10", description = "How long each restore is observed from its start (default ${DEFAULT-VALUE}).")
        long observeSeconds;

        @Option(names = "--plot", paramLabel = "FILE.png", description = "Plot the stream's MB/s over time per strategy (the median of its runs) into FILE.png.")
        Path plot;

        @Option(names = "--memhold-mib", split = ",", paramLabel = "MIB",
                description = "Per member in order (m1 first), MiB that memhold keeps written in it beside tcpstream, its memory grown by"
                        + " as much: working sets of different sizes (e.g. 1024,0,0). Default: none.")
        List<Long> memholdMiB = List.of();

        @Option(names = "--probe-seconds", defaultValue = "0",
                description = "Before the save, probe every member's working set (dirty bits of a live migration stopped after this"
                        + " many seconds) and attach it to its image: ws restores whose sizes the restore line revises. 0 (default):"
                        + " no estimate, lazy restores.")
        long probeSeconds;

        @Option(names = "--json", description = "Print one JSON object with every run and the summary (the progress goes to stderr).")
        boolean json;

        @Override
        public Integer call() throws Exception {
            ClusterDemo.Config config;
            try {
                config = new ClusterDemo.Config(members, memoryMiB, repeat, Duration.ofSeconds(warmUpSeconds),
                        Duration.ofSeconds(beforeSeconds), Duration.ofSeconds(observeSeconds), strategies.stream().map(Strategy::parse).toList(), plot,
                        memholdMiB, Duration.ofSeconds(probeSeconds));
            } catch (IllegalArgumentException e) {
                System.err.println("thaw cluster demo: " + e.getMessage());
                return 2;
            }
            java.io.PrintStream out = json ? System.err : System.out;
            HostDoctor.Report host = HostDoctor.ensureReady(System.err);
            ClusterDemo.Report r = ClusterDemo.run(config, host.guest().orElseThrow(),
                    host.qemuVersion().orElseThrow(), host.accel(), out);
            out.println();
            out.print(r.table());
            for (var f : r.failures()) out.printf("FAILED: %s rep %d: %s%n", f.strategy(), f.repetition(), f.error());
            if (r.plot() != null) out.println("plot: " + r.plot());
            out.printf("cluster demo took %.1f s%n", r.totalSeconds());
            if (json) System.out.println(Json.write(r));
            return r.failures().isEmpty() ? 0 : 1;
        }
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
                return serve(cluster, "thaw cluster up");
            } catch (ClusterException e) {
                System.err.println("thaw cluster up: " + e.getMessage());
                return 1;
            }
        }
    }

    /**
     * Runs a cluster until Ctrl-C: rewrites its status every second, checks its members, and serves save requests ('thaw cluster
     * save'). After one without keep-running the cluster ends (its members stopped, its switch cut): 0 when saved, 1 otherwise;
     * after one with it the cluster goes on.
     */
    static int serve(LiveCluster cluster, String command) throws Exception {
        long lastStatus = 0;
        while (true) {
            if (System.nanoTime() - lastStatus >= Duration.ofSeconds(1).toNanos()) {
                cluster.writeStatus();
                cluster.check();
                lastStatus = System.nanoTime();
            }
            java.util.Optional<SaveRequest> request;
            try {
                request = SaveRequest.take(cluster.directory());
            } catch (java.io.IOException e) {
                System.err.println(command + ": " + e.getMessage());
                continue;
            }
            if (request.isPresent()) {
                int status = saveFor(cluster, request.get(), command);
                if (!request.get().keepRunning()) return status;
                cluster.check(); // a member that did not run again ends the cluster here, saying so
                continue;
            }
            Thread.sleep(Duration.ofMillis(200));
        }
    }

    private static int saveFor(LiveCluster cluster, SaveRequest request, String command) throws java.io.IOException {
        System.out.println("saving the cluster to " + request.out() + " (asked by pid " + request.requesterPid() + ")");
        SaveRequest.Answer answer;
        try {
            dev.thaw.save.Saver.Options options = dev.thaw.save.Saver.Options.defaults();
            if (request.probeLiveSeconds() > 0) options = options.withDirtyEstimator(Duration.ofSeconds(request.probeLiveSeconds()));
            options = options.withKeepRunning(request.keepRunning());
            ClusterSave.Result r = ClusterSave.save(cluster, Path.of(request.out()), options, System.out::println);
            String message = String.format("cluster saved to %s: %d members stopped within %.3f ms of each other, %d frames in flight"
                    + " kept (%d at the cut); their sockets %s, unread at the stop: %s; working sets %s; %.2f s", r.checkpoint(),
                    r.manifest().members().size(), r.stopSkewNanos() / 1e6, r.frames(), r.framesAtCut(),
                    r.drainNanos() < 0 ? "not seen drained" : String.format("drained %.1f ms after the cut", r.drainNanos() / 1e6),
                    r.unreadBytesAtStop().isEmpty() ? "not seen" : r.unreadBytesAtStop() + " bytes",
                    r.workingSetPages().isEmpty() ? "none (no --estimator)" : r.workingSetPages() + " pages", r.durationNanos() / 1e9)
                    + (r.pausedNanos() < 0 ? "" : String.format("; the cluster runs on, paused %.2f s from the cut", r.pausedNanos() / 1e9));
            answer = new SaveRequest.Answer(1, request.out(), true, message, r.stopSkewNanos(), r.frames(), r.durationNanos());
        } catch (RuntimeException e) {
            answer = new SaveRequest.Answer(1, request.out(), false, e.getMessage(), 0, 0, 0);
        }
        answer.write(cluster.directory(), request.requesterPid());
        awaitTaken(SaveRequest.Answer.file(cluster.directory(), request.requesterPid()), request.requesterPid());
        System.out.println(answer.message());
        if (request.keepRunning()) {
            System.out.println(answer.saved() ? "the cluster runs on (restore the checkpoint: ./thaw cluster restore " + request.out() + ")"
                    : "the cluster runs on");
        } else {
            System.out.println(answer.saved() ? "the members stay stopped; the cluster ends (restore it: ./thaw cluster restore " + request.out() + ")"
                    : "the cluster ends");
        }
        if (!answer.saved()) System.err.println(command + ": " + answer.message());
        return answer.saved() ? 0 : 1;
    }

    /**
     * Waits, at most 10 s, until the 'thaw cluster save' that asked has taken its answer (or is gone), so that the cluster's close
     * finds its directory empty and removes it; an answer nobody took is removed here.
     */
    private static void awaitTaken(Path answer, long requesterPid) throws java.io.IOException {
        long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
        while (java.nio.file.Files.exists(answer) && System.nanoTime() < deadline
                && ProcessHandle.of(requesterPid).filter(ProcessHandle::isAlive).isPresent()) {
            try {
                Thread.sleep(50);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
        }
        java.nio.file.Files.deleteIfExists(answer);
    }

    @Command(name = "save", mixinStandardHelpOptions = true,
            description = {"Save the cluster that 'thaw cluster up' (or 'cluster restore') runs in DIR into a checkpoint OUT.",
                    "The switch stops forwarding and holds every frame, every member is stopped at once and saved into its own",
                    "image (OUT/MEMBER), and the frames in flight go into the checkpoint, to be delivered after a restore.",
                    "The cluster ends with the save, its members stopped, unless --keep-running: then every member runs again",
                    "at once when the checkpoint is written (or the save failed), the switch delivers the frames it held, in",
                    "order, and forwards again, and the cluster goes on (a checkpoint of a running service)."})
    static final class Save implements Callable<Integer> {
        @Option(names = "--dir", required = true, description = "The running cluster's directory.")
        Path dir;

        @Option(names = "--out", required = true, description = "The checkpoint directory to create.")
        Path out;

        @Option(names = "--timeout-seconds", defaultValue = "600", description = "How long to wait for the save (default ${DEFAULT-VALUE}).")
        long timeoutSeconds;

        @Option(names = "--estimator", defaultValue = "none", description = {"Working-set estimate attached to each member's image: dirty",
                "(every member's dirty-bit probe, all at once, before the cut: a live migration writing no image, after which the",
                "member runs on; the restore line sizes the members from these) or none (default). A trace needs each member",
                "restored alone, which a cluster's cut does not allow."})
        String estimator;

        @Option(names = "--keep-running", description = "The cluster goes on after the save (default: it ends, its members stopped).")
        boolean keepRunning;

        @Option(names = "--live-seconds", defaultValue = "10",
                description = "dirty: stop each member's probe after this many seconds if QEMU has not converged (default ${DEFAULT-VALUE}).")
        int liveSeconds;

        @Override
        public Integer call() throws Exception {
            int probeLiveSeconds;
            switch (estimator) {
                case "none" -> probeLiveSeconds = 0;
                case "dirty" -> {
                    if (liveSeconds <= 0) {
                        System.err.println("thaw cluster save --live-seconds: expected > 0, actual " + liveSeconds);
                        return 1;
                    }
                    probeLiveSeconds = liveSeconds;
                }
                default -> {
                    System.err.println("thaw cluster save --estimator: expected none or dirty, actual '" + estimator + "'");
                    return 1;
                }
            }
            if (java.nio.file.Files.exists(out)) {
                System.err.println("thaw cluster save: expected no file at " + out.toAbsolutePath() + ", actual one");
                return 1;
            }
            ClusterStatus status = ClusterStatus.read(dir);
            if (!status.isLive(Instant.now())) {
                System.err.println("thaw cluster save: expected a cluster running in " + dir + ", actual a stale status (pid "
                        + status.upPid() + " is gone or stopped)");
                return 1;
            }
            long pid = ProcessHandle.current().pid();
            SaveRequest.Answer.take(dir, pid); // an old answer to an earlier process of this pid
            SaveRequest request = SaveRequest.of(out, probeLiveSeconds, keepRunning);
            request.write(dir);
            long deadline = System.nanoTime() + Duration.ofSeconds(timeoutSeconds).toNanos();
            while (true) {
                java.util.Optional<SaveRequest.Answer> answer = SaveRequest.Answer.take(dir, pid);
                if (answer.isPresent() && !answer.get().out().equals(request.out())) {
                    System.err.println("thaw cluster save: expected the answer for " + request.out() + ", actual one for " + answer.get().out());
                    return 1;
                }
                if (answer.isPresent()) {
                    System.out.println(answer.get().message());
                    return answer.get().saved() ? 0 : 1;
                }
                if (ProcessHandle.of(status.upPid()).filter(ProcessHandle::isAlive).isEmpty()) {
                    System.err.println("thaw cluster save: the cluster's process (pid " + status.upPid() + ") ended without answering");
                    return 1;
                }
                if (System.nanoTime() > deadline) {
                    System.err.println("thaw cluster save: expected an answer within " + timeoutSeconds + " s, actual none (the request "
                            + dir.resolve(SaveRequest.FILE) + (java.nio.file.Files.exists(dir.resolve(SaveRequest.FILE)) ? " was not taken)" : " was taken)"));
                    return 1;
                }
                Thread.sleep(Duration.ofMillis(100));
            }
        }
    }

    @Command(name = "restore", mixinStandardHelpOptions = true,
            description = {"Restore a cluster checkpoint ('thaw cluster save') onto a new switch and keep it running until Ctrl-C.",
                    "A coordinator and a cohort per member: each member loads its working set and waits, paused, for START;",
                    "held (the default) starts each member once the members it sent frames to run, and delivers the frames",
                    "in flight at the save once their receiver runs; restore-line orders the starts only; independent starts",
                    "each member as soon as it is loaded and delivers nothing."})
    static final class Restore implements Callable<Integer> {
        @picocli.CommandLine.Parameters(index = "0", paramLabel = "CHECKPOINT", description = "The checkpoint directory.")
        Path checkpoint;

        @Option(names = "--strategy", defaultValue = "held", description = "independent, restore-line or held (default ${DEFAULT-VALUE}).")
        String strategy;

        @Option(names = "--dir", description = "Directory for the new switch's sockets and status.json (default: a new /tmp/thaw-cluster-*).")
        Path dir;

        @Option(names = "--exit", description = "End the cluster once every member's restore completed, instead of running until Ctrl-C.")
        boolean exit;

        @Option(names = "--zk", paramLabel = "HOST:PORT", description = {"Coordinate through ZooKeeper ('thaw zookeeper'): this process is",
                "the coordinator only, and each member's cohort is a 'thaw cluster cohort' process."})
        String zk;

        @Option(names = "--cohorts-timeout-s", defaultValue = "120", description = "With --zk: how long to wait for a cohort per member (default ${DEFAULT-VALUE}).")
        long cohortsTimeoutSeconds;

        @Option(names = "--tunnel", paramLabel = "LOCAL_IP:PORT=PEER_IP:PORT", description = {"With --zk and --remote: the members named by",
                "--remote are on another host, behind its switch ('thaw cluster switch'), joined to this one by a UDP tunnel."})
        String tunnel;

        @Option(names = "--remote", split = ",", paramLabel = "MEMBER", description = "With --tunnel: the members behind the tunnel's peer.")
        List<String> remote;

        @Override
        public Integer call() throws Exception {
            Strategy chosen = Strategy.parse(strategy);
            ClusterRestore.Options options = ClusterRestore.Options.of(chosen).withDirectory(dir).withListener(new ClusterRestore.Listener() {
                @Override
                public void status(String line) {
                    System.out.println(line);
                }
            });
            if ((tunnel == null) != (remote == null) || (tunnel != null && zk == null)) {
                System.err.println("thaw cluster restore: expected --tunnel and --remote together, with --zk, actual " + (tunnel == null ? "no" : "a")
                        + " --tunnel, " + (remote == null ? "no" : "a") + " --remote and " + (zk == null ? "no" : "a") + " --zk");
                return 2;
            }
            if (tunnel != null) {
                try {
                    options = options.withTunnel(dev.thaw.cluster.net.ClusterSwitch.Tunnel.parse(tunnel, remote));
                } catch (IllegalArgumentException e) {
                    System.err.println("thaw cluster restore: " + e.getMessage());
                    return 2;
                }
            }
            if (zk != null) return coordinateWith(this, options, chosen);
            ClusterRestore.Result r;
            try {
                r = ClusterRestore.restore(checkpoint, options);
            } catch (CheckpointException e) {
                System.err.println("thaw cluster restore: " + e.getMessage());
                return 1;
            }
            try (LiveCluster cluster = r.cluster()) {
                Runtime.getRuntime().addShutdownHook(new Thread(cluster::close, "cluster-shutdown"));
                System.out.printf("cluster restored (%s) in %s: every member running after %.2f s, every restore completed after %.2f s;"
                        + " started in the order %s; %d frames held and delivered, %d in flight not delivered%n", chosen.label(),
                        cluster.directory(), r.allRunningNanos() / 1e9, r.completedNanos() / 1e9, r.order(), r.framesHeld(), r.plan().framesLost());
                for (ClusterRestore.MemberOutcome m : r.members()) {
                    System.out.printf("  %-4s %-4s working set %d pages (revised %d): loaded %.2f s, running %.2f s, completed %.2f s%n",
                            m.member(), m.mode().label(), m.estimatePages(), m.revisedPages(), m.loadedNanos() / 1e9, m.runningNanos() / 1e9,
                            m.completedNanos() / 1e9);
                }
                for (var p : r.ports()) {
                    System.out.printf("  switch %-4s: most queued %d frames (bound %d frames, %d bytes), dropped %d%n", p.member(),
                            p.maxQueuedFrames(), p.queueBoundFrames(), p.queueBoundBytes(), p.droppedQueueFull() + p.droppedUnconnected());
                }
                if (exit) return 0;
                System.out.println("status: ./thaw cluster status --dir " + cluster.directory() + "   (Ctrl-C ends the cluster)");
                return serve(cluster, "thaw cluster restore");
            } catch (ClusterException e) {
                System.err.println("thaw cluster restore: " + e.getMessage());
                return 1;
            }
        }
    }

    /** The restore's coordinator over ZooKeeper: runs the switch until Ctrl-C (or, with --exit, until every restore completed). */
    private static int coordinateWith(Restore r, ClusterRestore.Options options, Strategy chosen) throws Exception {
        ZkCoordinator.Result result;
        try {
            result = ZkCoordinator.restore(r.checkpoint, new ZkCoordinator.Options(r.zk, options, Duration.ofSeconds(r.cohortsTimeoutSeconds)));
        } catch (CheckpointException e) {
            System.err.println("thaw cluster restore: " + e.getMessage());
            return 1;
        }
        try (ZkCoordinator.Running cluster = result.cluster()) {
            Runtime.getRuntime().addShutdownHook(new Thread(() -> {
                printSwitch(cluster.ports(), cluster.tunnel());
                cluster.close();
            }, "cluster-shutdown"));
            System.out.printf("cluster restored (%s, cohorts through ZooKeeper at %s) in %s: every member running after %.2f s, every restore"
                    + " completed after %.2f s; started in the order %s; %d frames held and delivered, %d in flight not delivered%n",
                    chosen.label(), r.zk, cluster.directory(), result.allRunningNanos() / 1e9, result.completedNanos() / 1e9, result.order(),
                    result.framesHeld(), result.plan().framesLost());
            for (ZkCoordinator.MemberTimes m : result.members()) {
                System.out.printf("  %-4s revised working set %d pages: LOAD_FIN %.2f s, START_FIN %.2f s, RESTORE_FIN %.2f s%n", m.member(),
                        m.revisedPages(), m.loadedNanos() / 1e9, m.runningNanos() / 1e9, m.completedNanos() / 1e9);
            }
            printSwitch(cluster.ports(), cluster.tunnel());
            if (r.exit) return 0;
            System.out.println("the cluster runs until Ctrl-C (its members in their cohorts' processes)");
            while (true) {
                cluster.check();
                Thread.sleep(Duration.ofMillis(500));
            }
        } catch (CheckpointException e) {
            System.err.println("thaw cluster restore: " + e.getMessage());
            return 1;
        }
    }

    /** A switch's ports and its tunnel (when it has one), a line each: what a cross-host restore's caller checks for losses. */
    static void printSwitch(List<dev.thaw.cluster.net.PortStats> ports, dev.thaw.cluster.net.ClusterSwitch.TunnelStats t) {
        for (var p : ports) {
            System.out.printf("switch %s: frames in %d, out %d (preloaded %d), most queued %d, dropped %d (queue full %d, unconnected %d),"
                    + " malformed %d%n", p.member(), p.framesIn(), p.framesOut(), p.preloadedFramesOut(), p.maxQueuedFrames(),
                    p.droppedQueueFull() + p.droppedUnconnected(), p.droppedQueueFull(), p.droppedUnconnected(), p.malformedFrames());
        }
        if (t != null) {
            System.out.printf("tunnel %s = %s: datagrams out %d (%d bytes), in %d (%d bytes), lost %d, out of order %d, oversize %d,"
                    + " send failed %d, malformed %d%s%n", fmt(t.local()), fmt(t.peer()), t.datagramsOut(), t.bytesOut(), t.datagramsIn(),
                    t.bytesIn(), t.lost(), t.outOfOrder(), t.oversize(), t.sendFailed(), t.malformed(),
                    t.lastMalformed().isEmpty() ? "" : " (last: " + t.lastMalformed() + ")");
        }
        System.out.flush();
    }

    private static String fmt(java.net.InetSocketAddress a) {
        return a.getAddress().getHostAddress() + ":" + a.getPort();
    }

    @Command(name = "switch", mixinStandardHelpOptions = true,
            description = {"Run this host's cluster switch, joined to another host's switch by a UDP tunnel, until Ctrl-C.",
                    "It serves the second host of a cluster restored across two ('thaw cluster restore --zk --tunnel' on the first, and",
                    "'thaw cluster cohort --switch-dir DIR' for each member here). Frames for a member here wait until its QEMU connects;",
                    "frames for the members behind the tunnel cross it, one datagram each. Its counts are printed at the end, and DIR",
                    "is removed when the switch created it."})
    static final class SwitchCommand implements Callable<Integer> {
        @Option(names = "--dir", required = true, description = "Directory for the switch's sockets (DIR/MEMBER.sock), created owner-only.")
        Path dir;

        @Option(names = "--local", required = true, split = ",", paramLabel = "MEMBER", description = "The members on this host.")
        List<String> local;

        @Option(names = "--remote", required = true, split = ",", paramLabel = "MEMBER", description = "The members behind the tunnel's peer.")
        List<String> remote;

        @Option(names = "--tunnel", required = true, paramLabel = "LOCAL_IP:PORT=PEER_IP:PORT", description = "The tunnel's two ends.")
        String tunnel;

        @Override
        public Integer call() throws Exception {
            dev.thaw.cluster.net.ClusterSwitch sw;
            boolean ownsDir = !java.nio.file.Files.exists(dir);
            try {
                sw = dev.thaw.cluster.net.ClusterSwitch.open(dir, local, dev.thaw.cluster.net.ClusterSwitch.Options.DEFAULT,
                        java.time.InstantSource.system(), dev.thaw.cluster.net.ClusterSwitch.Tunnel.parse(tunnel, remote));
            } catch (IllegalArgumentException | java.io.IOException e) {
                System.err.println("thaw cluster switch: " + e.getMessage());
                return 1;
            }
            for (String m : local) sw.holdUntilConnected(m);
            Runtime.getRuntime().addShutdownHook(new Thread(() -> {
                printSwitch(sw.ports(), sw.tunnelStats());
                sw.close();
                if (ownsDir) dev.thaw.util.FileTrees.deleteQuietly(dir);
            }, "cluster-switch-shutdown"));
            System.out.println("switch listening in " + dir.toAbsolutePath() + " for " + local + "; tunnel " + tunnel + " to " + remote
                    + " (Ctrl-C ends it)");
            while (true) {
                Thread.sleep(Duration.ofMillis(500));
                try {
                    sw.check();
                } catch (IllegalStateException e) {
                    System.err.println("thaw cluster switch: " + e.getMessage());
                    return 1;
                }
            }
        }
    }

    @Command(name = "cohort", mixinStandardHelpOptions = true,
            description = {"One member's cohort of a restore coordinated through ZooKeeper ('thaw cluster restore CHECKPOINT --zk').",
                    "Joins the coordinator's run, loads the member's working set when told (LOAD), reports LOAD_FIN, runs it at START,",
                    "reports START_FIN and RESTORE_FIN, and keeps it running until the coordinator ends the cluster. A lost",
                    "coordinator or ZooKeeper, or a failed restore anywhere, kills the member's QEMU and exits 1."})
    static final class Cohort implements Callable<Integer> {
        @Option(names = "--zk", required = true, paramLabel = "HOST:PORT", description = "ZooKeeper's address ('thaw zookeeper' prints it).")
        String zk;

        @Option(names = "--checkpoint", required = true, description = "The cluster checkpoint ('thaw cluster save').")
        Path checkpoint;

        @Option(names = "--member", required = true, description = "The member this cohort restores.")
        String member;

        @Option(names = "--join-timeout-s", defaultValue = "60", description = "Wait for ZooKeeper, the coordinator and LOAD (default ${DEFAULT-VALUE}).")
        long joinTimeoutSeconds;

        @Option(names = "--timeout-s", defaultValue = "300", description = "The member's restore, LOAD to RESTORE_FIN (default ${DEFAULT-VALUE}).")
        long timeoutSeconds;

        @Option(names = "--switch-dir", description = {"This host's switch ('thaw cluster switch --dir'), when the member is on another host than",
                "the coordinator (default: the coordinator's switch, from its run)."})
        Path switchDir;

        @Override
        public Integer call() {
            String prefix = member + ": ";
            ZkCohort.Listener listener = new ZkCohort.Listener() {
                @Override
                public void launched(dev.thaw.qemu.QemuVm vm) {
                    System.out.println(prefix + "QEMU pid " + vm.pid());
                }

                @Override
                public void status(String line) {
                    System.out.println(prefix + line);
                }

                @Override
                public void console(String line) {
                    System.out.println(prefix + "console: " + line);
                }
            };
            try {
                ZkCohort.run(checkpoint, member, new ZkCohort.Options(zk, Duration.ofSeconds(joinTimeoutSeconds), Duration.ofSeconds(timeoutSeconds),
                        listener, switchDir));
                return 0;
            } catch (CheckpointException e) {
                System.err.println("thaw cluster cohort: " + e.getMessage());
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
