package dev.thaw.cluster.checkpoint;

import dev.thaw.cluster.CohortMessage;
import dev.thaw.cluster.Coordinator;
import dev.thaw.cluster.CoordinatorPolicy;
import dev.thaw.cluster.RestoreLine;
import dev.thaw.cluster.live.LiveCluster;
import dev.thaw.cluster.net.ClusterSwitch;
import dev.thaw.cluster.net.Frame;
import dev.thaw.cluster.net.PortStats;
import dev.thaw.guest.ClusterMember;
import dev.thaw.qemu.QemuVm;
import dev.thaw.restore.Restorer;
import dev.thaw.util.FileTrees;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.InstantSource;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Restores a cluster checkpoint ({@code thaw cluster restore}): the coordinator and one cohort per member in this process
 * (HotRestore §4.3 on one host). A new switch listens first (QEMU 7.2's stream client connects once), in a new directory, each
 * member's stream netdev moved onto it ({@link RestoreIdentity#withClusterDirectory}). Under {@link Strategy#HELD} every member is
 * held from the start and the frames in flight at the cut are preloaded into its queue.
 *
 * <p>A cohort is a thread running the member's own restore ({@link Restorer}: ws with the revised working set when the image has
 * one, lazy otherwise) with its start held ({@code -S}): QEMU loads the working set and the device state, RUN leaves it
 * {@code paused}, and the rest of memory streams in the background. The coordinator (the caller's thread) sees that as LOAD_FIN
 * (QMP {@code query-status} says {@code paused}), answers with the STARTs {@link Coordinator} allows, starts each of those with
 * {@code cont} (START_FIN once QEMU says {@code running}), and then releases the member's queue on the switch: the held frames
 * arrive in order, before any sent later. RESTORE_FIN is the member's restore completed (every page in QEMU).
 *
 * <p>Failure: a cohort whose restore fails, a QEMU that exits, or a restore that takes longer than its timeout ends the whole
 * restore with a {@link CheckpointException.RestoreFailed} naming the member; every QEMU it started is killed (one launched
 * after that is killed as soon as it is), the switch closed and its directory removed. Under held, a member's queue that
 * reached its bound (a frame dropped) fails the restore too.
 */
public final class ClusterRestore {
    private static final Duration POLL = Duration.ofMillis(20);

    /** What a caller (a test, the command) hears: each member's QEMU as it is launched, and status lines. */
    public interface Listener {
        default void launched(String member, QemuVm vm) {}

        default void status(String line) {}
    }

    /**
     * @param directory the new switch's directory (null: a new {@code /tmp/thaw-cluster-*}, removed when the cluster closes)
     * @param timeout   the whole restore, from the start to every member's RESTORE_FIN
     * @param tunnel    the members on another host, behind that host's switch (null: every member here); only a restore
     *                  whose cohorts are in other processes ({@code ZkCoordinator}) can have members elsewhere
     */
    public record Options(Strategy strategy, Path directory, Duration timeout, ClusterSwitch.Options switchOptions, Listener listener,
                          ClusterSwitch.Tunnel tunnel) {
        public static Options of(Strategy strategy) {
            return new Options(strategy, null, Duration.ofMinutes(5), ClusterSwitch.Options.DEFAULT, new Listener() { }, null);
        }

        public Options withListener(Listener l) {
            return new Options(strategy, directory, timeout, switchOptions, l, tunnel);
        }

        public Options withDirectory(Path dir) {
            return new Options(strategy, dir, timeout, switchOptions, listener, tunnel);
        }

        public Options withTunnel(ClusterSwitch.Tunnel t) {
            return new Options(strategy, directory, timeout, switchOptions, listener, t);
        }
    }

    /**
     * One member's restore; nanoseconds from the cluster restore's start.
     *
     * @param revisedPages the restore line's working set for it (what a ws restore prefetches at most)
     */
    public record MemberOutcome(String member, Restorer.Mode mode, long estimatePages, long revisedPages, long loadedNanos,
                                long runningNanos, long completedNanos) {}

    /**
     * @param cluster        the restored cluster, running: close it to end it
     * @param order          members in the order they started
     * @param framesHeld     frames preloaded into the switch (the frames in flight at the cut, held only)
     * @param ports          the switch's ports once every member's restore completed (drops, the most queued)
     * @param startedNanos   the host's {@code System.nanoTime()} when the restore began, before it read the checkpoint: the origin of
     *                       every other time here, and of its members'
     */
    public record Result(LiveCluster cluster, RestorePlan plan, List<MemberOutcome> members, List<String> order, int framesHeld,
                         List<PortStats> ports, long allRunningNanos, long completedNanos, long startedNanos) {}

    private ClusterRestore() {}

    public static Result restore(Path checkpoint, Options options) {
        if (options.tunnel() != null) {
            throw new CheckpointException.RestoreFailed(null, "expected every member on this host for a restore in one process, actual "
                    + options.tunnel().remoteMembers() + " behind a tunnel: their cohorts run there (coordinate through ZooKeeper)", null);
        }
        Prepared p = Prepared.of(checkpoint, options);
        Run run = new Run(p.plan(), p.cohorts(), p.network(), p.dir(), options, p.started());
        try {
            Result r = run.go();
            return new Result(LiveCluster.adopt(p.dir(), p.ownsDir(), p.network(), run.vms()), p.plan(), r.members(), r.order(), r.framesHeld(),
                    r.ports(), r.allRunningNanos(), r.completedNanos(), p.started());
        } catch (RuntimeException e) {
            run.abandon();
            throw p.failed(e);
        } finally {
            p.closeImages(); // every restore completed (go() waits for RESTORE_FIN) or was abandoned
        }
    }

    /**
     * A restore's coordinator side before any cohort starts, whatever carries its messages: the checkpoint read and checked, each
     * member's image opened, the plan, and the new switch listening in its directory (under held, every member held and the frames
     * in flight preloaded).
     */
    public record Prepared(ClusterManifest manifest, RestorePlan plan, Map<String, MemberRestore> cohorts, ClusterSwitch network,
                           Path dir, boolean ownsDir, long started) {
        public static Prepared of(Path checkpoint, Options options) {
            long started = System.nanoTime();
            ClusterManifest manifest = ClusterManifest.read(checkpoint);
            List<Frame> frames = FrameLog.read(checkpoint, manifest);
            Map<String, MemberRestore> cohorts = new LinkedHashMap<>();
            Map<String, RestoreLine.SizeEstimate> sizes = new LinkedHashMap<>();
            try {
                for (ClusterManifest.Member m : manifest.members()) {
                    MemberRestore cohort = MemberRestore.open(checkpoint, m);
                    cohorts.put(cohort.name(), cohort);
                    sizes.put(cohort.name(), RestoreLine.SizeEstimate.bounded(cohort.estimatePages(), cohort.memoryPages()));
                }
            } catch (RuntimeException e) {
                for (MemberRestore opened : cohorts.values()) opened.closeImage();
                throw e;
            }
            RestorePlan plan = RestorePlan.of(options.strategy(), manifest.memberNames(), frames,
                    manifest.traffic().stream().map(dev.thaw.cluster.net.PairRecord::traffic).toList(), sizes);
            options.listener().status(String.format("%s restore of %d members: %d frames in flight at the cut, %d delivered; LOAD order %s",
                    options.strategy().label(), cohorts.size(), frames.size(), plan.deliver().size(),
                    plan.line().order().stream().map(p -> p.member() + "(" + p.revisedPages() + " pages)").toList()));
            boolean ownsDir = options.directory() == null || !Files.exists(options.directory());
            Path dir;
            try {
                dir = options.directory() == null ? Files.createTempDirectory(Path.of("/tmp"), "thaw-cluster-")
                        : options.directory().toAbsolutePath().normalize();
            } catch (IOException e) {
                throw new CheckpointException.RestoreFailed(null, "cannot create the switch's directory: " + e, e);
            }
            ClusterSwitch network;
            try {
                List<String> here = new ArrayList<>(manifest.memberNames());
                if (options.tunnel() != null) {
                    for (String m : options.tunnel().remoteMembers()) {
                        if (!here.remove(m)) {
                            throw new IllegalArgumentException("expected the members behind the tunnel among the checkpoint's "
                                    + manifest.memberNames() + ", actual " + m);
                        }
                    }
                }
                network = ClusterSwitch.open(dir, here, options.switchOptions(), InstantSource.system(), options.tunnel());
            } catch (IOException | RuntimeException e) {
                if (ownsDir) FileTrees.deleteQuietly(dir);
                throw new CheckpointException.RestoreFailed(null, "cannot open the switch in " + dir + ": " + e.getMessage(), e);
            }
            Prepared p = new Prepared(manifest, plan, cohorts, network, dir, ownsDir, started);
            if (plan.holdUntilRunning()) {
                for (String m : cohorts.keySet()) network.hold(m);
                try {
                    network.preload(plan.deliver());
                } catch (IllegalStateException e) {
                    throw p.failed(new CheckpointException.RestoreFailed(null, "the frames in flight do not fit the switch's queues: "
                            + e.getMessage(), e));
                }
            }
            return p;
        }

        /** Closes the members' images: nothing reads them once the restores completed or were abandoned. */
        public void closeImages() {
            for (MemberRestore m : cohorts.values()) m.closeImage();
        }

        /** Closes the switch, removes its directory (when the restore made it) and returns the failure as a RestoreFailed. */
        public CheckpointException failed(RuntimeException e) {
            network.close();
            if (ownsDir) FileTrees.deleteQuietly(dir);
            return e instanceof CheckpointException c ? c : new CheckpointException.RestoreFailed(null, e.toString(), e);
        }
    }

    /** One restore's coordinator loop and its cohorts. */
    private static final class Run {
        final RestorePlan plan;
        final Map<String, MemberRestore> cohorts;
        final ClusterSwitch network;
        final Path dir;
        final Options options;
        final long started;
        final List<String> order = new ArrayList<>();

        Run(RestorePlan plan, Map<String, MemberRestore> cohorts, ClusterSwitch network, Path dir, Options options, long started) {
            this.plan = plan;
            this.cohorts = cohorts;
            this.network = network;
            this.dir = dir;
            this.options = options;
            this.started = started;
        }

        Result go() {
            Coordinator coordinator = new Coordinator(plan.graph(), plan.line());
            int restores = cohorts.size();
            for (CohortMessage message : coordinator.begin()) {
                CohortMessage.Load load = (CohortMessage.Load) message;
                MemberRestore c = cohorts.get(load.member());
                c.begin(load.workingSetPages(), restores, dir, vm -> options.listener().launched(c.name(), vm));
            }
            ArrayDeque<CohortMessage> starts = new ArrayDeque<>();
            long deadline = started + options.timeout().toNanos();
            long allRunning = -1;
            while (!coordinator.finished()) {
                for (MemberRestore c : cohorts.values()) c.check();
                if (System.nanoTime() > deadline) throw timedOut(coordinator, cohorts.keySet(), options.timeout());
                for (MemberRestore c : cohorts.values()) {
                    if (coordinator.phase(c.name()) == CoordinatorPolicy.Phase.LOADING && c.loaded()) {
                        c.loadedNanos = System.nanoTime() - started;
                        options.listener().status(String.format("%s loaded after %.2f s (LOAD_FIN)", c.name(), c.loadedNanos / 1e9));
                        starts.addAll(coordinator.receive(new CohortMessage.LoadFin(c.name())));
                    }
                }
                while (!starts.isEmpty()) {
                    MemberRestore c = cohorts.get(starts.poll().member());
                    c.start();
                    c.runningNanos = System.nanoTime() - started;
                    order.add(c.name());
                    if (plan.holdUntilRunning()) network.release(c.name());
                    options.listener().status(String.format("%s running after %.2f s (START_FIN)%s", c.name(), c.runningNanos / 1e9,
                            plan.holdUntilRunning() ? "; its held frames released" : ""));
                    starts.addAll(coordinator.receive(new CohortMessage.StartFin(c.name())));
                }
                if (allRunning < 0 && cohorts.keySet().stream().allMatch(m -> coordinator.phase(m).runs())) {
                    allRunning = System.nanoTime() - started;
                }
                for (MemberRestore c : cohorts.values()) {
                    if (coordinator.phase(c.name()) == CoordinatorPolicy.Phase.RUNNING && c.completed()) {
                        c.completedNanos = System.nanoTime() - started;
                        coordinator.receive(new CohortMessage.RestoreFin(c.name()));
                    }
                }
                if (!coordinator.finished()) sleep(POLL);
            }
            List<PortStats> ports = checkedPorts(plan, network);
            List<MemberOutcome> outcomes = cohorts.values().stream().map(c -> new MemberOutcome(c.name(), c.mode, c.estimatePages,
                    c.revisedPages, c.loadedNanos, c.runningNanos, c.completedNanos)).toList();
            return new Result(null, plan, outcomes, List.copyOf(order), plan.deliver().size(), ports, allRunning,
                    System.nanoTime() - started, started);
        }

        Map<ClusterMember, QemuVm> vms() {
            Map<ClusterMember, QemuVm> out = new LinkedHashMap<>();
            cohorts.values().forEach(c -> out.put(c.member(), c.vm()));
            return out;
        }

        /** Kills every QEMU started (and any launched from now on) and waits a while for the cohorts' threads to end. */
        void abandon() {
            for (MemberRestore c : cohorts.values()) c.abandon();
            for (MemberRestore c : cohorts.values()) c.join(Duration.ofSeconds(15));
        }
    }

    /** Under held, fails naming the first member whose queue dropped a frame at its bound. */
    public static List<PortStats> checkedPorts(RestorePlan plan, ClusterSwitch network) {
        List<PortStats> ports = network.ports();
        if (plan.holdUntilRunning()) {
            for (PortStats p : ports) {
                if (p.droppedQueueFull() > 0) {
                    throw new CheckpointException.RestoreFailed(p.member(), "expected no frame dropped under held, actual "
                            + p.droppedQueueFull() + " dropped at its queue's bound of " + p.queueBoundFrames() + " frames / "
                            + p.queueBoundBytes() + " bytes (most queued: " + p.maxQueuedFrames() + " frames)", null);
                }
            }
        }
        return ports;
    }

    /** The restore's timeout passed: names every member not restored yet and its phase. */
    public static CheckpointException timedOut(Coordinator coordinator, java.util.Collection<String> members, Duration timeout) {
        List<String> waiting = members.stream().filter(m -> coordinator.phase(m) != CoordinatorPolicy.Phase.RESTORED)
                .map(m -> m + " " + coordinator.phase(m)).toList();
        return new CheckpointException.RestoreFailed(null, "expected every member restored within " + timeout.toSeconds()
                + " s, actual still waiting for " + waiting, null);
    }

    /** Sleeps; an interrupt fails the restore. */
    public static void sleep(Duration d) {
        try {
            Thread.sleep(d);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new CheckpointException.RestoreFailed(null, "interrupted", e);
        }
    }
}
