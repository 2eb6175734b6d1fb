package dev.thaw.cluster.zk;

import dev.thaw.cluster.CohortMessage;
import dev.thaw.cluster.Coordinator;
import dev.thaw.cluster.CoordinatorPolicy;
import dev.thaw.cluster.checkpoint.CheckpointException;
import dev.thaw.cluster.checkpoint.ClusterRestore;
import dev.thaw.cluster.checkpoint.MemberRestore;
import dev.thaw.cluster.checkpoint.RestorePlan;
import dev.thaw.cluster.net.PortStats;
import dev.thaw.util.Closing;
import dev.thaw.util.FileTrees;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.queue.DistributedQueue;
import org.apache.zookeeper.CreateMode;

/**
 * The coordinator of a cluster's restore whose cohorts run elsewhere ({@code thaw cluster cohort}, one process per member),
 * coordinated through ZooKeeper with Curator's recipes. It prepares as {@link ClusterRestore} does (the plan, the switch, under
 * held the frames preloaded), becomes the checkpoint's coordinator through a {@link LeaderLatch}, publishes the run (an
 * ephemeral znode: its session), waits for a cohort per member (their ephemeral znodes), and then carries {@link Coordinator}'s
 * messages: LOAD and START in a distributed queue per cohort, LOAD_FIN, START_FIN and RESTORE_FIN in one queue back. Under held,
 * a member's queue on the switch is released at its START_FIN.
 *
 * <p>Failure: a cohort's znode gone (its process died, or its session expired), a cohort's {@code abort} (its restore failed),
 * this process's session lost (ZooKeeper gone), a malformed or out-of-order message, or the timeout ends the restore with a
 * {@link CheckpointException.RestoreFailed} saying what was lost. The coordinator then writes {@code abort} when it still can
 * and ends its session, which removes the run: every cohort kills its QEMU on either.
 */
public final class ZkCoordinator {
    private static final Duration POLL = Duration.ofMillis(20);
    public static final Duration CONNECT_TIMEOUT = Duration.ofSeconds(10);

    /** @param cohortsTimeout how long the coordinator waits for a cohort per member to join */
    public record Options(String connectString, ClusterRestore.Options restore, Duration cohortsTimeout) {}

    /** Nanoseconds from the restore's start, as reported through ZooKeeper. */
    public record MemberTimes(String member, long revisedPages, long loadedNanos, long runningNanos, long completedNanos) {}

    public record Result(Running cluster, RestorePlan plan, List<MemberTimes> members, List<String> order, int framesHeld,
                         List<PortStats> ports, long allRunningNanos, long completedNanos) {}

    private ZkCoordinator() {}

    public static Result restore(Path checkpoint, Options options) {
        ClusterRestore.Prepared p = ClusterRestore.Prepared.of(checkpoint, options.restore());
        p.closeImages(); // read for the plan; the cohorts restore from their own
        RestoreZnodes z = RestoreZnodes.of(p.manifest().checkpointId());
        ZkSession zk = null;
        LeaderLatch latch = null;
        String runId = null;
        try {
            zk = ZkSession.connect(options.connectString(), null, CONNECT_TIMEOUT);
            latch = new LeaderLatch(zk.client, z.leader(), "pid " + ProcessHandle.current().pid());
            latch.start();
            if (!latch.await(options.cohortsTimeout().toMillis(), TimeUnit.MILLISECONDS)) {
                throw new CheckpointException.RestoreFailed(null, "expected to lead the restore of checkpoint " + z.checkpointId() + " within "
                        + options.cohortsTimeout().toSeconds() + " s, actual another coordinator leads: " + latch.getLeader().getId(), null);
            }
            zk.client.delete().quietly().deletingChildrenIfNeeded().forPath(z.runs()); // earlier runs' leftovers
            runId = UUID.randomUUID().toString();
            RunInfo info = new RunInfo(runId, p.dir(), p.cohorts().size());
            zk.client.create().creatingParentsIfNeeded().withMode(CreateMode.EPHEMERAL).forPath(z.run(), info.encode());
            options.restore().listener().status("run " + runId + " published at " + z.run() + " (switch " + p.dir() + "); waiting for the cohorts of "
                    + p.cohorts().keySet());
            Run run = new Run(p, z, zk, runId, options);
            Result r = run.go();
            return new Result(new Running(p, zk, latch, z, runId), p.plan(), r.members(), r.order(), r.framesHeld(), r.ports(),
                    r.allRunningNanos(), r.completedNanos());
        } catch (Exception e) {
            CheckpointException failure = zk == null ? asRestoreFailed(e) : zk.failed(null, "the coordinator", e);
            if (zk != null && runId != null && zk.client.getZookeeperClient().isConnected()) { // the first failure written stays
                try {
                    zk.client.create().creatingParentsIfNeeded().forPath(z.abort(runId),
                            ("-\n" + failure.getMessage()).getBytes(StandardCharsets.UTF_8));
                } catch (Exception ignored) {
                    // ZooKeeper is going away too; the run's ephemeral znode goes with the session, which the cohorts see.
                }
            }
            Closing.quietly(latch);
            if (zk != null) zk.close();
            throw p.failed(failure);
        }
    }

    private static CheckpointException asRestoreFailed(Exception e) {
        return e instanceof CheckpointException c ? c : new CheckpointException.RestoreFailed(null, e.toString(), e);
    }

    /** One run: the cohorts joined, the coordinator's loop. */
    private static final class Run {
        final ClusterRestore.Prepared p;
        final RestoreZnodes z;
        final ZkSession zk;
        final String runId;
        final Options options;
        final LinkedBlockingQueue<byte[]> inbox = new LinkedBlockingQueue<>();
        final Map<String, DistributedQueue<byte[]>> to = new LinkedHashMap<>();

        Run(ClusterRestore.Prepared p, RestoreZnodes z, ZkSession zk, String runId, Options options) {
            this.p = p;
            this.z = z;
            this.zk = zk;
            this.runId = runId;
            this.options = options;
        }

        Result go() throws Exception {
            long started = p.started();
            Set<String> members = p.cohorts().keySet();
            awaitCohorts(members);
            DistributedQueue<byte[]> from = zk.queue(z.from(runId), inbox);
            try {
                for (String m : members) {
                    to.put(m, zk.queue(z.to(runId, m), null));
                }
                Coordinator coordinator = new Coordinator(p.plan().graph(), p.plan().line());
                Map<String, long[]> times = new LinkedHashMap<>();
                Map<String, Long> revised = new LinkedHashMap<>();
                for (CohortMessage load : coordinator.begin()) {
                    revised.put(load.member(), ((CohortMessage.Load) load).workingSetPages());
                    times.put(load.member(), new long[] {-1, -1, -1});
                    send(load);
                }
                List<String> order = new ArrayList<>();
                long deadline = started + options.restore().timeout().toNanos();
                long allRunning = -1;
                Duration listEvery = Duration.ofMillis(100);
                long nextCheck = 0;
                while (!coordinator.finished()) {
                    zk.check(null);
                    if (System.nanoTime() > deadline) throw ClusterRestore.timedOut(coordinator, members, options.restore().timeout());
                    if (System.nanoTime() >= nextCheck) {
                        checkCohorts(coordinator, members);
                        nextCheck = System.nanoTime() + listEvery.toNanos();
                    }
                    byte[] raw = inbox.poll(POLL.toMillis(), TimeUnit.MILLISECONDS);
                    if (raw == null) continue;
                    CohortMessage m = ZkSession.decode(raw, null, "a cohort");
                    long at = System.nanoTime() - started;
                    List<CohortMessage> starts;
                    try {
                        starts = coordinator.receive(m);
                    } catch (IllegalArgumentException | IllegalStateException e) {
                        throw new CheckpointException.RestoreFailed(m.member(), e.getMessage(), e);
                    }
                    long[] t = times.get(m.member());
                    switch (m) {
                        case CohortMessage.LoadFin _ -> {
                            t[0] = at;
                            options.restore().listener().status(String.format("%s loaded after %.2f s (LOAD_FIN)", m.member(), at / 1e9));
                        }
                        case CohortMessage.StartFin _ -> {
                            t[1] = at;
                            order.add(m.member());
                            if (p.plan().holdUntilRunning()) p.network().release(m.member());
                            options.restore().listener().status(String.format("%s running after %.2f s (START_FIN)%s", m.member(), at / 1e9,
                                    p.plan().holdUntilRunning() ? "; its held frames released" : ""));
                        }
                        case CohortMessage.RestoreFin _ -> t[2] = at;
                        default -> { } // Coordinator.receive refused the rest
                    }
                    for (CohortMessage s : starts) send(s);
                    if (allRunning < 0 && members.stream().allMatch(x -> coordinator.phase(x).runs())) allRunning = System.nanoTime() - started;
                }
                List<PortStats> ports = ClusterRestore.checkedPorts(p.plan(), p.network());
                List<MemberTimes> outcomes = times.entrySet().stream().map(e -> new MemberTimes(e.getKey(), revised.get(e.getKey()),
                        e.getValue()[0], e.getValue()[1], e.getValue()[2])).toList();
                return new Result(null, p.plan(), outcomes, List.copyOf(order), p.plan().deliver().size(), ports, allRunning,
                        System.nanoTime() - started);
            } finally {
                Closing.quietly(from);
                for (DistributedQueue<byte[]> q : to.values()) Closing.quietly(q);
            }
        }

        private void send(CohortMessage m) throws Exception {
            to.get(m.member()).put(CohortWire.INSTANCE.serialize(m));
        }

        /** Waits for a cohort's znode for every member. */
        private void awaitCohorts(Set<String> members) throws Exception {
            long deadline = System.nanoTime() + options.cohortsTimeout().toNanos();
            while (true) {
                zk.check(null);
                Set<String> joined = joined();
                Set<String> unknown = new HashSet<>(joined);
                unknown.removeAll(members);
                if (!unknown.isEmpty()) {
                    throw new CheckpointException.RestoreFailed(null, "expected cohorts of " + members + ", actual also " + unknown, null);
                }
                if (joined.containsAll(members)) return;
                if (System.nanoTime() > deadline) {
                    Set<String> missing = new HashSet<>(members);
                    missing.removeAll(joined);
                    throw new CheckpointException.RestoreFailed(null, "expected a cohort for every member within "
                            + options.cohortsTimeout().toSeconds() + " s, actual none for " + missing.stream().sorted().toList(), null);
                }
                ClusterRestore.sleep(Duration.ofMillis(50));
            }
        }

        private Set<String> joined() throws Exception {
            if (zk.client.checkExists().forPath(z.cohorts(runId)) == null) return Set.of();
            return new HashSet<>(zk.client.getChildren().forPath(z.cohorts(runId)));
        }

        /** A cohort whose restore failed, or whose znode is gone, ends the restore. */
        private void checkCohorts(Coordinator coordinator, Set<String> members) throws Exception {
            byte[] abort = zk.client.checkExists().forPath(z.abort(runId)) == null ? null : zk.client.getData().forPath(z.abort(runId));
            if (abort != null) {
                String[] f = new String(abort, StandardCharsets.UTF_8).split("\n", 2);
                throw new CheckpointException.RestoreFailed(f[0].equals("-") ? null : f[0], "its cohort failed: " + (f.length > 1 ? f[1] : ""), null);
            }
            Set<String> joined = joined();
            for (String m : members) {
                if (!joined.contains(m)) {
                    throw new CheckpointException.RestoreFailed(m, "lost its cohort in phase " + coordinator.phase(m)
                            + ": its ZooKeeper session ended (its process died, or it lost ZooKeeper)", null);
                }
            }
        }
    }

    /**
     * The restored cluster: its switch, and this process's session, which is the run. {@link #close()} writes {@code end}, so that
     * every cohort ends its member, ends the session, and closes the switch.
     */
    public static final class Running implements AutoCloseable {
        private final ClusterRestore.Prepared p;
        private final ZkSession zk;
        private final LeaderLatch latch;
        private final RestoreZnodes z;
        private final String runId;
        private boolean closed;

        Running(ClusterRestore.Prepared p, ZkSession zk, LeaderLatch latch, RestoreZnodes z, String runId) {
            this.p = p;
            this.zk = zk;
            this.latch = latch;
            this.z = z;
            this.runId = runId;
        }

        public Path directory() {
            return p.dir();
        }

        public List<PortStats> ports() {
            return p.network().ports();
        }

        /** The tunnel to the other host's switch, or null when every member is here. */
        public dev.thaw.cluster.net.ClusterSwitch.TunnelStats tunnel() {
            return p.network().tunnelStats();
        }

        /** The session is lost (ZooKeeper gone): the cohorts end their members. */
        public void check() {
            zk.check(null);
        }

        @Override
        public synchronized void close() {
            if (closed) return;
            closed = true;
            try {
                zk.client.create().creatingParentsIfNeeded().forPath(z.end(runId));
            } catch (Exception ignored) {
                // no ZooKeeper: the cohorts see the run gone, or lose their sessions, and end their members either way
            }
            Closing.quietly(latch);
            zk.close();
            p.network().close();
            if (p.ownsDir()) FileTrees.deleteQuietly(p.dir());
        }
    }
}
