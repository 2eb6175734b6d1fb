package dev.thaw.cluster.live;

import dev.thaw.cluster.net.ClusterSwitch;
import dev.thaw.cluster.net.PairRecord;
import dev.thaw.cluster.net.PortStats;
import dev.thaw.guest.ClusterMember;
import dev.thaw.guest.GuestImage;
import dev.thaw.guest.TcpStreamLine;
import dev.thaw.qemu.Accel;
import dev.thaw.qemu.ConsoleLine;
import dev.thaw.qemu.Journal;
import dev.thaw.qemu.QemuVersion;
import dev.thaw.qemu.QemuVm;
import dev.thaw.qemu.VmConfig;
import dev.thaw.util.FileTrees;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.Predicate;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A virtual cluster that runs: a {@link ClusterSwitch} and one QEMU per member connected to it.
 * {@link #up} opens the switch first and then starts the members one by one, each only once the
 * one before has connected, because QEMU 7.2's stream client connects once, asynchronously, and
 * never again: a member started before its socket listens stays cut off for good. Every wait has a
 * timeout and ends early, naming the member, when its QEMU exits. {@link #close} kills every QEMU,
 * closes the switch (its socket files go with it) and removes the status file, and the directory
 * when {@code up} created it.
 */
public final class LiveCluster implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(LiveCluster.class);
    /** QEMU 7.2 connects while it starts, before its QMP socket answers: this is generous. */
    public static final Duration CONNECT_TIMEOUT = Duration.ofSeconds(30);
    private static final Duration POLL = Duration.ofMillis(50);

    private final Path dir;
    private final boolean ownsDir;
    private final ClusterSwitch network;
    private final Map<String, Running> members = new LinkedHashMap<>();
    private boolean closed;

    /** One member's QEMU and what its console said last about the workload. */
    private static final class Running {
        final ClusterMember member;
        final QemuVm vm;
        final Journal<ConsoleLine>.Cursor statusCursor;
        TcpStreamLine.Tick lastTick;
        TcpStreamLine.Done done;

        Running(ClusterMember member, QemuVm vm) {
            this.member = member;
            this.vm = vm;
            this.statusCursor = vm.console().cursorFromStart();
        }
    }

    private LiveCluster(Path dir, boolean ownsDir, ClusterSwitch network) {
        this.dir = dir;
        this.ownsDir = ownsDir;
        this.network = network;
    }

    /**
     * Opens the switch in {@code dir} (a new {@code /tmp/thaw-cluster-*} when null) and starts the members in order.
     *
     * @throws ClusterException naming the member that died or did not connect; nothing is left running
     */
    public static LiveCluster up(Path dir, List<ClusterMember> members, GuestImage guest, QemuVersion qemu, Accel accel,
                                 Duration connectTimeout) throws IOException {
        boolean ownsDir = dir == null || !Files.exists(dir);
        // Short: the socket paths must stay within 107 bytes.
        Path directory = dir == null ? Files.createTempDirectory(Path.of("/tmp"), "thaw-cluster-") : dir.toAbsolutePath().normalize();
        ClusterSwitch network;
        try {
            network = ClusterSwitch.open(directory, members.stream().map(ClusterMember::name).toList());
        } catch (IOException | RuntimeException e) {
            if (ownsDir) FileTrees.deleteQuietly(directory);
            throw e;
        }
        LiveCluster cluster = new LiveCluster(directory, ownsDir, network);
        try {
            for (ClusterMember m : members) cluster.start(m, guest, qemu, accel, connectTimeout);
        } catch (RuntimeException e) {
            cluster.close();
            throw e;
        }
        return cluster;
    }

    /**
     * A cluster whose members' QEMUs were started by someone else (a cluster restore) on {@code network}, which listens in
     * {@code dir}: from now on it is this cluster's, and {@link #close} ends every QEMU and the switch as {@code up}'s does.
     *
     * @param ownsDir remove {@code dir} on close
     */
    public static LiveCluster adopt(Path dir, boolean ownsDir, ClusterSwitch network, Map<ClusterMember, QemuVm> members) {
        LiveCluster cluster = new LiveCluster(dir, ownsDir, network);
        members.forEach((m, vm) -> cluster.members.put(m.name(), new Running(m, vm)));
        return cluster;
    }

    private void start(ClusterMember member, GuestImage guest, QemuVersion qemu, Accel accel, Duration connectTimeout) {
        // Built here, so checked here as a restore will check it: the socket lies in this cluster's directory.
        VmConfig config = member.vmConfig(guest, qemu, accel, network.socket(member.name())).requireClusterSocketsIn(List.of(dir));
        QemuVm vm;
        try {
            vm = QemuVm.launch(config);
        } catch (QemuVm.QemuLaunchException e) {
            throw new ClusterException.MemberDied(member.name(), e.getMessage(), e);
        }
        members.put(member.name(), new Running(member, vm));
        long deadline = System.nanoTime() + connectTimeout.toNanos();
        while (!network.stats(member.name()).connected()) {
            if (!vm.isAlive()) throw new ClusterException.MemberDied(member.name(), vm.describeState());
            if (System.nanoTime() > deadline) {
                throw new ClusterException.TimedOut(member.name(), "its QEMU connected to " + network.socket(member.name()), connectTimeout,
                        vm.describeState());
            }
            sleep(POLL);
        }
        log.info("cluster member {} ({}) connected, QEMU pid {}", member.name(), member.address(), vm.pid());
    }

    public Path directory() {
        return dir;
    }

    /** The cluster's switch: a cluster save cuts it. */
    public ClusterSwitch network() {
        return network;
    }

    public List<ClusterMember> members() {
        return members.values().stream().map(r -> r.member).toList();
    }

    public QemuVm vm(String member) {
        return running(member).vm;
    }

    public PortStats port(String member) {
        return network.stats(member);
    }

    public List<PairRecord> traffic() {
        return network.traffic();
    }

    /** Fails with {@link ClusterException.MemberDied} for the first member whose QEMU exited. */
    public void check() {
        for (Running r : members.values()) {
            if (!r.vm.isAlive()) throw new ClusterException.MemberDied(r.member.name(), r.vm.describeState());
        }
    }

    /**
     * Waits for the member's next console line from tcpstream that matches, reading its console from the start.
     *
     * @throws ClusterException when the member's QEMU exits, tcpstream reports an error, or {@code timeout} passes first
     */
    public TcpStreamLine awaitStream(String member, Predicate<TcpStreamLine> wanted, Duration timeout) throws InterruptedException {
        Running r = running(member);
        Journal<ConsoleLine>.Cursor cursor = r.vm.console().cursorFromStart();
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            long remaining = deadline - System.nanoTime();
            if (remaining <= 0) {
                throw new ClusterException.TimedOut(member, "a matching tcpstream line on its console", timeout, r.vm.describeState());
            }
            Optional<ConsoleLine> line = cursor.next(Duration.ofNanos(Math.min(remaining, Duration.ofMillis(250).toNanos())));
            if (line.isEmpty()) {
                if (!r.vm.isAlive()) throw new ClusterException.MemberDied(member, r.vm.describeState());
                continue;
            }
            Optional<TcpStreamLine> parsed = TcpStreamLine.parse(line.get().text());
            if (parsed.isEmpty()) continue;
            if (parsed.get() instanceof TcpStreamLine.Failed failed) throw new ClusterException.WorkloadFailed(member, failed.text());
            if (wanted.test(parsed.get())) return parsed.get();
        }
    }

    /** The cluster now; reads what the members' consoles printed since the last call. */
    public synchronized ClusterStatus status() {
        List<ClusterStatus.Member> list = new ArrayList<>();
        for (Running r : members.values()) {
            for (ConsoleLine line : r.statusCursor.drain()) {
                switch (TcpStreamLine.parse(line.text()).orElse(null)) {
                    case TcpStreamLine.Tick tick -> r.lastTick = tick;
                    case TcpStreamLine.Done done -> r.done = done;
                    case null, default -> { }
                }
            }
            boolean alive = r.vm.isAlive();
            list.add(new ClusterStatus.Member(r.member.name(), r.member.address(), r.member.mac(), r.member.role().key(),
                    r.vm.extraQmpSocket().toString(), r.vm.pid(), alive, alive ? "running" : r.vm.describeState(),
                    network.stats(r.member.name()), r.lastTick, r.done));
        }
        return new ClusterStatus(ClusterStatus.VERSION, Instant.now(), ProcessHandle.current().pid(), dir.toString(), list,
                network.traffic());
    }

    /** Rewrites {@code DIR/status.json} atomically. */
    public void writeStatus() throws IOException {
        status().write(dir);
    }

    /** Kills every member's QEMU, closes the switch and removes the status file (and the directory, if {@code up} made it). */
    @Override
    public synchronized void close() {
        if (closed) return;
        closed = true;
        for (Running r : members.values()) {
            try {
                r.vm.close();
            } catch (RuntimeException e) {
                log.warn("cluster member {}: closing its QEMU failed: {}", r.member.name(), e.toString());
            }
        }
        network.close();
        try {
            Files.deleteIfExists(dir.resolve(ClusterStatus.FILE));
            Files.deleteIfExists(dir.resolve(ClusterStatus.FILE + ".tmp"));
            if (ownsDir) Files.deleteIfExists(dir);
        } catch (IOException e) {
            log.warn("cluster directory {}: cleanup failed: {}", dir, e.toString());
        }
    }

    private Running running(String member) {
        Running r = members.get(member);
        if (r == null) throw new IllegalArgumentException("cluster member: expected one of " + members.keySet() + ", actual '" + member + "'");
        return r;
    }

    private static void sleep(Duration d) {
        try {
            Thread.sleep(d);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while starting the cluster", e);
        }
    }
}
