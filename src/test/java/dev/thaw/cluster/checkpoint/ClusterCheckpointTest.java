package dev.thaw.cluster.checkpoint;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.cluster.live.LiveCluster;
import dev.thaw.cluster.zk.ZkCoordinator;
import dev.thaw.cluster.zk.ZooKeeperProcess;
import dev.thaw.cluster.net.PortStats;
import dev.thaw.guest.ClusterMember;
import dev.thaw.guest.TcpStreamLine;
import dev.thaw.qemu.QemuVm;
import dev.thaw.save.Saver;
import dev.thaw.testing.TcpStreams;
import dev.thaw.testing.TestHost;
import dev.thaw.testing.ThawProcess;
import dev.thaw.testing.TwoHosts;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A real cluster of two members, saved while m2 streams checked bytes to m1 through the switch, and restored: under held every
 * frame arrives and the stream ends intact; a member whose QEMU dies mid-restore ends the restore naming it, with no QEMU left.
 * The same restores with each cohort in a process of its own ({@code thaw cluster cohort}), coordinated through a real ZooKeeper:
 * the stream ends intact; ZooKeeper killed mid-restore ends it everywhere, saying so, with no QEMU left, and so does a cohort
 * killed with SIGTERM or SIGKILL. The same restore across two hosts (network namespaces, a switch each, joined by a UDP tunnel).
 * The checkpoint is made once for every test, with keep-running: the saved cluster's stream then ends intact too.
 */
class ClusterCheckpointTest {
    private static final long MEMBER_MIB = 256;
    private static final long STREAM_BYTES = 32L << 20;
    private static final Duration STREAM_TIMEOUT = Duration.ofSeconds(120);

    @TempDir
    static Path work;
    private static Path checkpoint;
    private static ClusterSave.Result saved;

    @BeforeAll
    static void saveAClusterMidStream() throws IOException, InterruptedException {
        long started = System.nanoTime();
        try (LiveCluster cluster = LiveCluster.up(null, ClusterMember.starOf(2, MEMBER_MIB, STREAM_BYTES), TestHost.guest(), TestHost.qemu(),
                TestHost.accel(), LiveCluster.CONNECT_TIMEOUT)) {
            // Mid-stream: m1 has received some MiB and more are on the way.
            cluster.awaitStream("m1", l -> l instanceof TcpStreamLine.Tick t && t.bytes() >= (2L << 20), STREAM_TIMEOUT);
            checkpoint = work.resolve("cp");
            // Keep-running: the checkpoint is the one a save that ends the cluster writes, and the cluster goes on.
            saved = ClusterSave.save(cluster, checkpoint, Saver.Options.defaults().withKeepRunning(true), System.err::println);
            assertThat(saved.pausedNanos()).as("paused from the cut until running again").isGreaterThan(saved.durationNanos() / 2);
            // The stream, cut mid-way, goes on through the switch and ends intact: the frames held at the save delivered, none lost.
            var tx = (TcpStreamLine.Done) cluster.awaitStream("m2", l -> l instanceof TcpStreamLine.Done, STREAM_TIMEOUT);
            var rx = (TcpStreamLine.Done) cluster.awaitStream("m1", l -> l instanceof TcpStreamLine.Done, Duration.ofSeconds(20));
            assertThat(tx.bytes()).isEqualTo(STREAM_BYTES);
            assertThat(rx).isEqualTo(new TcpStreamLine.Done(TcpStreamLine.Direction.RX, STREAM_BYTES, 0, TcpStreams.expectedFnv(STREAM_BYTES), "10.0.3.2"));
            for (String m : List.of("m1", "m2")) {
                PortStats port = cluster.port(m);
                assertThat(port.droppedQueueFull() + port.droppedUnconnected() + port.malformedFrames()).as(m + " after the save").isZero();
                assertThat(port.held()).as(m + " held after the save").isFalse();
            }
        }
        System.err.printf("cluster saved %.1f s after the start: drained after %.1f ms, skew %.3f ms, %d frames at the cut, %d saved,"
                + " unread at the stop %s, save %.2f s%n", (System.nanoTime() - started) / 1e9, saved.drainNanos() / 1e6,
                saved.stopSkewNanos() / 1e6, saved.framesAtCut(), saved.frames(), saved.unreadBytesAtStop(), saved.durationNanos() / 1e9);
        // The drain check: every byte the switch wrote before the cut was read by its member's QEMU before the stops.
        assertThat(saved.drainNanos()).isNotNegative();
        assertThat(saved.unreadBytesAtStop()).isEqualTo(Map.of("m1", 0L, "m2", 0L));
        ClusterManifest m = ClusterManifest.read(checkpoint);
        assertThat(m.memberNames()).containsExactly("m1", "m2");
        assertThat(m.frames().count()).isEqualTo(saved.frames());
        assertThat(FrameLog.read(checkpoint, m)).hasSize(saved.frames());
        assertThat(m.traffic()).anySatisfy(p -> assertThat(p.from() + ">" + p.to()).isEqualTo("m2>m1"));
    }

    @Test
    void heldDeliversEveryFrameAndTheStreamEndsIntact() throws InterruptedException {
        long started = System.nanoTime();
        ClusterRestore.Result r = ClusterRestore.restore(checkpoint, ClusterRestore.Options.of(Strategy.HELD)
                .withListener(new ClusterRestore.Listener() {
                    @Override
                    public void status(String line) {
                        System.err.println(line);
                    }
                }));
        List<Long> pids;
        Path dir;
        try (LiveCluster cluster = r.cluster()) {
            dir = cluster.directory();
            pids = cluster.members().stream().map(m -> cluster.vm(m.name()).pid()).toList();
            System.err.printf("restored: all running after %.2f s, completed after %.2f s, order %s, %d frames held%n",
                    r.allRunningNanos() / 1e9, r.completedNanos() / 1e9, r.order(), r.framesHeld());
            assertThat(r.framesHeld()).isEqualTo(saved.frames());
            assertThat(r.order()).containsExactlyInAnyOrder("m1", "m2");
            var tx = (TcpStreamLine.Done) cluster.awaitStream("m2", l -> l instanceof TcpStreamLine.Done, STREAM_TIMEOUT);
            var rx = (TcpStreamLine.Done) cluster.awaitStream("m1", l -> l instanceof TcpStreamLine.Done, Duration.ofSeconds(20));
            System.err.printf("stream done %.1f s after the restore began%n", (System.nanoTime() - started) / 1e9);
            assertThat(tx.bytes()).isEqualTo(STREAM_BYTES);
            assertThat(rx).isEqualTo(new TcpStreamLine.Done(TcpStreamLine.Direction.RX, STREAM_BYTES, 0, TcpStreams.expectedFnv(STREAM_BYTES), "10.0.3.2"));
            for (String m : List.of("m1", "m2")) {
                PortStats port = cluster.port(m);
                assertThat(port.droppedQueueFull() + port.droppedUnconnected() + port.malformedFrames()).as(m).isZero();
            }
            assertThat(cluster.port("m1").framesOut() + cluster.port("m2").framesOut()).isGreaterThanOrEqualTo(saved.frames());
            assertThat(cluster.port("m1").preloadedFramesOut() + cluster.port("m2").preloadedFramesOut())
                    .as("every frame in flight at the save written to its receiver").isEqualTo(saved.frames());
        }
        for (long pid : pids) assertThat(ProcessHandle.of(pid).filter(ProcessHandle::isAlive)).as("QEMU pid " + pid).isEmpty();
        assertThat(dir).doesNotExist();
    }

    @Test
    void aMemberWhoseQemuDiesMidRestoreEndsItNamingTheMemberAndLeavesNoQemu() {
        Map<String, Long> pids = new ConcurrentHashMap<>();
        long started = System.nanoTime();
        assertThatThrownBy(() -> ClusterRestore.restore(checkpoint, ClusterRestore.Options.of(Strategy.HELD).withListener(new ClusterRestore.Listener() {
            @Override
            public void launched(String member, QemuVm vm) {
                pids.put(member, vm.pid());
                if (member.equals("m2")) ProcessHandle.of(vm.pid()).ifPresent(ProcessHandle::destroyForcibly);
            }
        }))).isInstanceOf(CheckpointException.RestoreFailed.class)
                .hasMessageContaining("cluster restore of member m2 failed")
                .hasMessageContaining("exited with status 137")
                .satisfies(e -> assertThat(((CheckpointException) e).member()).isEqualTo("m2"));
        assertThat(Duration.ofNanos(System.nanoTime() - started)).isLessThan(Duration.ofSeconds(60));
        assertThat(pids).containsKey("m2");
        for (long pid : pids.values()) {
            assertThat(ProcessHandle.of(pid).filter(ProcessHandle::isAlive)).as("QEMU pid " + pid).isEmpty();
        }
    }

    @Test
    void cohortsInTheirOwnProcessesThroughZooKeeperRestoreItAndTheStreamEndsIntact() throws Exception {
        long started = System.nanoTime();
        try (ZooKeeperProcess zk = ZooKeeperProcess.start(0, ZooKeeperProcess.START_TIMEOUT);
             ThawProcess m1 = cohort(zk, "m1"); ThawProcess m2 = cohort(zk, "m2")) {
            ZkCoordinator.Result r = ZkCoordinator.restore(checkpoint, new ZkCoordinator.Options(zk.connectString(),
                    ClusterRestore.Options.of(Strategy.HELD).withListener(new ClusterRestore.Listener() {
                        @Override
                        public void status(String line) {
                            System.err.println(line);
                        }
                    }), Duration.ofSeconds(60)));
            List<Long> qemus = new ArrayList<>();
            try (ZkCoordinator.Running cluster = r.cluster()) {
                System.err.printf("restored through ZooKeeper: all running after %.2f s, completed after %.2f s, order %s, %d frames held%n",
                        r.allRunningNanos() / 1e9, r.completedNanos() / 1e9, r.order(), r.framesHeld());
                assertThat(r.framesHeld()).isEqualTo(saved.frames());
                assertThat(r.order()).containsExactlyInAnyOrder("m1", "m2");
                assertThat(r.members()).allSatisfy(m -> assertThat(m.completedNanos()).isGreaterThanOrEqualTo(m.runningNanos())
                        .isGreaterThan(0));
                qemus.addAll(qemusAndTheStreamIntact(m1, m2, started));
                for (PortStats port : cluster.ports()) {
                    assertThat(port.droppedQueueFull() + port.droppedUnconnected() + port.malformedFrames()).as(port.member()).isZero();
                }
            }
            // The coordinator ended the cluster: each cohort ends its member and exits 0.
            for (ThawProcess c : List.of(m1, m2)) assertThat(c.awaitExit(Duration.ofSeconds(30))).contains(0);
            for (long pid : qemus) assertThat(ProcessHandle.of(pid).filter(ProcessHandle::isAlive)).as("QEMU pid " + pid).isEmpty();
        }
    }

    @Test
    void zooKeeperKilledMidRestoreEndsItEverywhereSayingSoAndLeavesNoQemu() throws Exception {
        try (ZooKeeperProcess zk = ZooKeeperProcess.start(0, ZooKeeperProcess.START_TIMEOUT);
             ThawProcess m1 = cohort(zk, "m1"); ThawProcess m2 = cohort(zk, "m2")) {
            long[] killedAt = {0};
            assertThatThrownBy(() -> restoreKillingAtTheFirstLoadFin(zk, killedAt, zk::kill)).isInstanceOf(CheckpointException.RestoreFailed.class)
                    .hasMessageContaining("lost ZooKeeper at " + zk.connectString());
            System.err.printf("the coordinator failed %.1f s after ZooKeeper was killed%n", (System.nanoTime() - killedAt[0]) / 1e9);
            assertThat(killedAt[0]).isPositive();
            List<Long> qemus = new ArrayList<>();
            for (ThawProcess c : List.of(m1, m2)) {
                assertThat(c.awaitExit(Duration.ofSeconds(60))).contains(1);
                assertThat(c.stderr()).contains("lost ZooKeeper at " + zk.connectString());
                // A cohort whose LOAD was still in ZooKeeper when it died launched no QEMU; the one loaded did.
                printedQemuPid(c, Duration.ZERO).ifPresent(qemus::add);
            }
            assertThat(qemus).isNotEmpty();
            for (long qemu : qemus) assertThat(ProcessHandle.of(qemu).filter(ProcessHandle::isAlive)).as("QEMU pid " + qemu).isEmpty();
            noQemuOfThoseRestoresLeft();
            System.err.printf("both cohorts ended %.1f s after ZooKeeper was killed%n", (System.nanoTime() - killedAt[0]) / 1e9);
        }
    }

    @Test
    void aCohortKilledMidRestoreEndsItNamingTheMemberAndLeavesNoQemu() throws Exception {
        try (ZooKeeperProcess zk = ZooKeeperProcess.start(0, ZooKeeperProcess.START_TIMEOUT);
             ThawProcess m1 = cohort(zk, "m1"); ThawProcess m2 = cohort(zk, "m2")) {
            long[] killedAt = {0};
            assertThatThrownBy(() -> restoreKillingAtTheFirstLoadFin(zk, killedAt,
                    () -> ProcessHandle.of(m2.pid()).ifPresent(ProcessHandle::destroy))).isInstanceOf(CheckpointException.RestoreFailed.class)
                    .hasMessageContaining("cluster restore of member m2 failed: ")
                    .hasMessageMatching("(?s).*(lost its cohort in phase|its cohort failed: ).*")
                    .satisfies(e -> assertThat(((CheckpointException) e).member()).isEqualTo("m2"));
            System.err.printf("the coordinator failed %.1f s after m2's cohort was killed%n", (System.nanoTime() - killedAt[0]) / 1e9);
            List<Long> qemus = new ArrayList<>();
            for (ThawProcess c : List.of(m1, m2)) {
                assertThat(c.awaitExit(Duration.ofSeconds(60))).isPresent().get().isNotEqualTo(0);
                printedQemuPid(c, Duration.ZERO).ifPresent(qemus::add);
            }
            assertThat(m1.stderr()).contains("cluster restore of member m1 failed: the run was aborted: cluster restore of member m2 failed");
            assertThat(qemus).isNotEmpty();
            for (long qemu : qemus) assertThat(ProcessHandle.of(qemu).filter(ProcessHandle::isAlive)).as("QEMU pid " + qemu).isEmpty();
            noQemuOfThoseRestoresLeft();
        }
    }

    /**
     * SIGKILL runs no shutdown hook: m2's cohort killed so once its QEMU is loaded and paused (its LOAD_FIN) must still leave no
     * QEMU behind (the cohort's watchdog, a process of its own, kills it once the cohort is gone).
     */
    @Test
    void aCohortKilledWithSigkillMidRestoreLeavesNoQemu() throws Exception {
        try (ZooKeeperProcess zk = ZooKeeperProcess.start(0, ZooKeeperProcess.START_TIMEOUT);
             ThawProcess m1 = cohort(zk, "m1"); ThawProcess m2 = cohort(zk, "m2")) {
            long[] killedAt = {0};
            assertThatThrownBy(() -> restoreKillingAt("m2 loaded after", zk, killedAt,
                    () -> ProcessHandle.of(m2.pid()).ifPresent(ProcessHandle::destroyForcibly))).isInstanceOf(CheckpointException.RestoreFailed.class)
                    .hasMessageContaining("cluster restore of member m2 failed: lost its cohort in phase")
                    .satisfies(e -> assertThat(((CheckpointException) e).member()).isEqualTo("m2"));
            System.err.printf("the coordinator failed %.1f s after m2's cohort was killed with SIGKILL%n", (System.nanoTime() - killedAt[0]) / 1e9);
            assertThat(m2.awaitExit(Duration.ofSeconds(30))).contains(137);
            assertThat(m1.awaitExit(Duration.ofSeconds(60))).contains(1);
            long m2Qemu = printedQemuPid(m2, Duration.ZERO).orElseThrow(() -> new AssertionError("expected m2's QEMU launched before its LOAD_FIN"));
            long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
            while (ProcessHandle.of(m2Qemu).filter(ProcessHandle::isAlive).isPresent() && System.nanoTime() < deadline) Thread.sleep(100);
            assertThat(ProcessHandle.of(m2Qemu).filter(ProcessHandle::isAlive)).as("m2's QEMU, pid " + m2Qemu + ", 10 s after its cohort's SIGKILL")
                    .isEmpty();
            System.err.printf("m2's QEMU gone %.1f s after its cohort's SIGKILL%n", (System.nanoTime() - killedAt[0]) / 1e9);
            noQemuOfThoseRestoresLeft();
        }
    }

    /**
     * Two hosts simulated by two network namespaces joined by a veth: ZooKeeper and the coordinator (its switch holding m1) on A,
     * a switch of its own for m2 on B ({@code thaw cluster switch}), the switches joined by a UDP tunnel, and each member's cohort
     * on its own host. Under held, the frames in flight at the save for m2 cross the tunnel once m2 runs; the stream then goes on
     * from m2 on B to m1 on A through the tunnel and ends intact; neither switch drops a frame, the tunnel loses none; every QEMU
     * and both namespaces are gone at the end.
     */
    @Test
    void acrossTwoHostsJoinedByATunnelHeldDeliversEveryFrameAndTheStreamEndsIntact() throws Exception {
        long started = System.nanoTime();
        List<Long> qemus = new ArrayList<>();
        List<String> namespaces = new ArrayList<>();
        Path bDir = Path.of("/tmp", "thaw-cluster-b-" + Long.toHexString(System.nanoTime()));
        switchDirs.add(bDir.toString());
        try (TwoHosts hosts = TwoHosts.create()) {
            namespaces.addAll(List.of(hosts.a, hosts.b));
            String endA = TwoHosts.A_ADDRESS + ":7300";
            String endB = TwoHosts.B_ADDRESS + ":7300";
            try (ThawProcess zk = ThawProcess.startUnder(TwoHosts.in(hosts.a), "zookeeper-a", List.of("zookeeper", "--bind", TwoHosts.A_ADDRESS,
                    "--port", "0"))) {
                String connect = zk.await(l -> l.startsWith("ZooKeeper serving at "), Duration.ofSeconds(60)).map(l -> l.split(" ")[3])
                        .orElseThrow(() -> new AssertionError("expected ZooKeeper serving on host A, actual: " + zk.stderr()));
                try (ThawProcess swB = ThawProcess.startUnder(TwoHosts.in(hosts.b), "switch-b", List.of("cluster", "switch", "--dir",
                        bDir.toString(), "--local", "m2", "--remote", "m1", "--tunnel", endB + "=" + endA));
                     ThawProcess c1 = ThawProcess.startUnder(TwoHosts.in(hosts.a), "cohort-m1", cohortArgs(connect, "m1"));
                     ThawProcess c2 = ThawProcess.startUnder(TwoHosts.in(hosts.b), "cohort-m2", concat(cohortArgs(connect, "m2"),
                             List.of("--switch-dir", bDir.toString())));
                     ThawProcess coordinator = ThawProcess.startUnder(TwoHosts.in(hosts.a), "coordinator-a", List.of("cluster", "restore",
                             checkpoint.toString(), "--zk", connect, "--tunnel", endA + "=" + endB, "--remote", "m2", "--cohorts-timeout-s", "60"))) {
                    assertThat(swB.await(l -> l.startsWith("switch listening in "), Duration.ofSeconds(60))).as(swB.stderr()).isPresent();
                    coordinator.await(l -> l.contains("(switch "), Duration.ofSeconds(60)).ifPresent(l ->
                            switchDirs.add(l.substring(l.indexOf("(switch ") + 8, l.indexOf(')', l.indexOf("(switch ")))));
                    String restored = coordinator.await(l -> l.startsWith("cluster restored"), Duration.ofSeconds(120)).orElseThrow(
                            () -> new AssertionError("expected the restore across the hosts, actual: " + coordinator.stderr()));
                    var held = java.util.regex.Pattern.compile("(\\d+) frames held and delivered").matcher(restored);
                    assertThat(held.find()).as(restored).isTrue();
                    assertThat(Integer.parseInt(held.group(1))).isEqualTo(saved.frames());
                    System.err.printf("restored across two hosts %.1f s after the test began%n", (System.nanoTime() - started) / 1e9);
                    qemus.addAll(qemusAndTheStreamIntact(c1, c2, started));
                    assertThat(coordinator.terminate(Duration.ofSeconds(30))).as("SIGTERM: it prints its switch's counts and ends the run")
                            .isPresent();
                    for (ThawProcess c : List.of(c1, c2)) assertThat(c.awaitExit(Duration.ofSeconds(30))).contains(0);
                    assertThat(swB.terminate(Duration.ofSeconds(30))).isPresent();
                    long preloaded = 0;
                    for (ThawProcess side : List.of(coordinator, swB)) {
                        // The counts printed last, as the process ended (the coordinator printed them at the restore's end too).
                        List<String> all = side.lines().stream().filter(l -> l.startsWith("switch m")).toList();
                        assertThat(all).as("each switch's ports").hasSizeGreaterThanOrEqualTo(2);
                        List<String> ports = all.subList(all.size() - 2, all.size());
                        for (String port : ports) {
                            assertThat(port).as(port).contains(", dropped 0 (").endsWith(", malformed 0");
                            var m = java.util.regex.Pattern.compile("\\(preloaded (\\d+)\\)").matcher(port);
                            assertThat(m.find()).isTrue();
                            preloaded += Long.parseLong(m.group(1));
                        }
                        String tunnel = side.lines().stream().filter(l -> l.startsWith("tunnel ")).reduce((x, y) -> y).orElseThrow();
                        System.err.println(tunnel);
                        assertThat(tunnel).contains(", lost 0, ").contains(", oversize 0, send failed 0, malformed 0").doesNotContain("in 0 (");
                    }
                    assertThat(preloaded).as("every frame in flight at the save written to its receiver or into the tunnel")
                            .isEqualTo(saved.frames());
                }
            }
        } finally {
            for (String ns : namespaces) assertThat(TwoHosts.exists(ns)).as("namespace " + ns).isFalse();
        }
        for (long pid : qemus) assertThat(ProcessHandle.of(pid).filter(ProcessHandle::isAlive)).as("QEMU pid " + pid).isEmpty();
        noQemuOfThoseRestoresLeft();
        assertThat(bDir).doesNotExist();
        System.err.printf("the test took %.1f s%n", (System.nanoTime() - started) / 1e9);
    }

    /** The QEMU pids the cohorts of m1 (the server) and m2 printed, once m2's stream to m1 ended intact at both ends. */
    private static List<Long> qemusAndTheStreamIntact(ThawProcess m1, ThawProcess m2, long started) throws InterruptedException {
        List<Long> qemus = List.of(qemuPid(m1), qemuPid(m2));
        TcpStreamLine tx = streamDone(m2);
        TcpStreamLine rx = streamDone(m1);
        System.err.printf("stream done %.1f s after the restore began%n", (System.nanoTime() - started) / 1e9);
        assertThat(((TcpStreamLine.Done) tx).bytes()).isEqualTo(STREAM_BYTES);
        assertThat(rx).isEqualTo(new TcpStreamLine.Done(TcpStreamLine.Direction.RX, STREAM_BYTES, 0, TcpStreams.expectedFnv(STREAM_BYTES), "10.0.3.2"));
        return qemus;
    }

    private static List<String> cohortArgs(String connect, String member) {
        return List.of("cluster", "cohort", "--zk", connect, "--checkpoint", checkpoint.toString(), "--member", member, "--join-timeout-s", "60");
    }

    private static List<String> concat(List<String> a, List<String> b) {
        List<String> out = new ArrayList<>(a);
        out.addAll(b);
        return out;
    }

    private static ThawProcess cohort(ZooKeeperProcess zk, String member) throws IOException {
        return ThawProcess.start("cohort-" + member, cohortArgs(zk.connectString(), member));
    }

    /** The QEMU pid the cohort printed when it launched its member. */
    private static long qemuPid(ThawProcess cohort) throws InterruptedException {
        return printedQemuPid(cohort, Duration.ofSeconds(60)).orElseThrow(
                () -> new AssertionError("expected the cohort to print its QEMU's pid, actual none; its stderr: " + cohort.stderr()));
    }

    private static java.util.Optional<Long> printedQemuPid(ThawProcess cohort, Duration timeout) throws InterruptedException {
        return cohort.await(l -> l.matches("m\\d+: QEMU pid \\d+"), timeout).map(l -> Long.parseLong(l.substring(l.lastIndexOf(' ') + 1)));
    }

    /** The switch directories of the restores through ZooKeeper, from the coordinator's status: every member's QEMU names its own. */
    private static final List<String> switchDirs = new java.util.concurrent.CopyOnWriteArrayList<>();

    /** No live process names one of those directories on its command line: no QEMU of those restores is left, printed or not. */
    private static void noQemuOfThoseRestoresLeft() {
        assertThat(switchDirs).isNotEmpty();
        List<String> left = ProcessHandle.allProcesses().filter(ProcessHandle::isAlive).map(h -> h.info().commandLine().orElse(""))
                .filter(cmd -> switchDirs.stream().anyMatch(d -> cmd.contains(d + "/"))).toList();
        assertThat(left).isEmpty();
    }

    /** A held restore through ZooKeeper that runs {@code kill} once, at the first LOAD_FIN, noting the time in {@code killedAt[0]}. */
    private static ZkCoordinator.Result restoreKillingAtTheFirstLoadFin(ZooKeeperProcess zk, long[] killedAt, Runnable kill) {
        return restoreKillingAt("(LOAD_FIN)", zk, killedAt, kill);
    }

    /** A held restore through ZooKeeper that runs {@code kill} once, at the first status line containing {@code at}. */
    private static ZkCoordinator.Result restoreKillingAt(String at, ZooKeeperProcess zk, long[] killedAt, Runnable kill) {
        return ZkCoordinator.restore(checkpoint, new ZkCoordinator.Options(zk.connectString(),
                ClusterRestore.Options.of(Strategy.HELD).withListener(new ClusterRestore.Listener() {
                    @Override
                    public void status(String line) {
                        System.err.println(line);
                        var dir = java.util.regex.Pattern.compile("\\(switch (\\S+)\\)").matcher(line);
                        if (dir.find()) switchDirs.add(dir.group(1));
                        if (line.contains(at) && killedAt[0] == 0) {
                            kill.run();
                            killedAt[0] = System.nanoTime();
                        }
                    }
                }), Duration.ofSeconds(60)));
    }

    /** tcpstream's end, as the cohort printed its member's console. */
    private static TcpStreamLine streamDone(ThawProcess cohort) throws InterruptedException {
        String line = cohort.await(l -> l.contains("console: tcpstream") && l.contains(" done "), STREAM_TIMEOUT).orElseThrow(
                () -> new AssertionError("expected tcpstream's end on the cohort's console, actual none; its stderr: " + cohort.stderr()));
        return TcpStreamLine.parse(line.substring(line.indexOf("console: ") + "console: ".length())).orElseThrow();
    }
}
