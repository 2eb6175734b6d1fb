package dev.thaw.cluster.checkpoint;

import dev.thaw.cluster.live.LiveCluster;
import dev.thaw.cluster.net.ClusterSwitch;
import dev.thaw.cluster.net.Frame;
import dev.thaw.cluster.net.PortStats;
import dev.thaw.estimate.Estimator;
import dev.thaw.estimate.WorkingSet;
import dev.thaw.guest.ClusterMember;
import dev.thaw.image.WorkingSetWriter;
import dev.thaw.qemu.QemuVm;
import dev.thaw.save.Saver;
import dev.thaw.util.FileTrees;
import dev.thaw.util.OwnerOnly;
import dev.thaw.util.UnixSocketQueues;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.CountDownLatch;
import java.util.function.Consumer;

/**
 * Saves a running cluster whole ({@code thaw cluster save}): the switch is cut (it stops forwarding and holds every frame), every
 * member is stopped at once (one thread each, released together; the skew between their stops is reported), the frames the
 * switch then holds are the frames in flight, and each member is saved by {@link Saver} into its own image. The checkpoint is
 * written under a hidden temporary directory beside {@code out} and renamed into place after its manifest (written last): all or
 * nothing. The members then stay stopped and the switch cut (close the cluster; restore the checkpoint), unless the options say
 * keep-running: then, once the checkpoint is committed (or the save failed), every member runs again at once and the switch
 * delivers the frames it held, in order, and forwards again, so that a running service is checkpointed with a pause of the
 * save's length and no frame lost.
 *
 * <p>Working sets: a stopped guest dirties nothing, so the dirty-bit estimate of each member comes from a probe taken while the
 * members still run, before the cut ({@link #probe}, every member at once: a live migration that writes no image, as a dirty save
 * of one guest runs before its stopped save); each member's estimate is attached to its image once that is written. A save whose
 * options ask for the dirty estimator probes first by itself; a caller may probe earlier and pass the estimates in (the demo lets
 * the stream recover from the probes' stops before it measures and saves).
 */
public final class ClusterSave {
    /** How long the switch gets, after the stops, to read what the members had already sent (it reads every 250 ms at worst). */
    static final Duration SETTLE = Duration.ofMillis(300);
    static final Duration STOP_TIMEOUT = Duration.ofSeconds(30);
    /** How long the stops wait, after the cut, for every member's QEMU to read what the switch had written to its socket. */
    public static final Duration DRAIN_TIMEOUT = Duration.ofSeconds(1);

    /**
     * @param stopSkewNanos  from the first member's stop (its answer) to the last one's
     * @param drainNanos     from the cut until the members' QEMUs had read everything the switch wrote them (-1: not seen)
     * @param unreadBytesAtStop per member, bytes the switch wrote that its QEMU had not read when it stopped (lost to TCP's resending)
     * @param framesAtCut    frames in the switch's queues at the cut
     * @param frames         frames saved: those at the cut and those sent before the stops
     * @param saveNanos      per member, its image's save
     * @param durationNanos  the whole save, cut to commit (a probe this save took itself included)
     * @param workingSetPages per member with an estimate, the pages of the working set attached to its image
     * @param pausedNanos    with keep-running, from the cut until every member ran again and the switch forwarded again; else -1
     */
    public record Result(Path checkpoint, ClusterManifest manifest, long stopSkewNanos, long drainNanos, Map<String, Long> unreadBytesAtStop,
                         int framesAtCut, int frames, Map<String, Long> saveNanos, long durationNanos, Map<String, Integer> workingSetPages,
                         long pausedNanos) {
        Result resumedAfter(long nanos) {
            return new Result(checkpoint, manifest, stopSkewNanos, drainNanos, unreadBytesAtStop, framesAtCut, frames, saveNanos, durationNanos,
                    workingSetPages, nanos);
        }
    }

    /**
     * Every member's dirty-bit estimate, the members probed at once (one thread each): each probe is a live migration writing no
     * image, stopped at {@code liveLimit} unless QEMU converges first, after which the member runs again. The cluster goes on.
     */
    public static Map<String, WorkingSet> probe(LiveCluster cluster, Duration liveLimit, Consumer<String> progress) {
        cluster.check();
        List<ClusterMember> members = cluster.members();
        Map<String, WorkingSet> out = new java.util.concurrent.ConcurrentHashMap<>();
        long started = System.nanoTime();
        // Each probe ends by itself (the live limit, then its stopped round, each QMP call with its own timeout); the bound is for
        // the case it does not, so that a save never hangs.
        atOnce(cluster, members, "cluster-probe-", liveLimit.plus(PROBE_MARGIN), "while probing the members' working sets",
                (member, vm) -> out.put(member, Saver.probeWorkingSet(vm.qmp(), vm.config(), liveLimit)),
                e -> "dirty-bit probe: " + e.getMessage());
        Map<String, WorkingSet> ordered = new LinkedHashMap<>();
        for (ClusterMember m : members) ordered.put(m.name(), out.get(m.name()));
        progress.accept(String.format("dirty-bit probes (live limit %d s) in %.2f s: working sets %s pages", liveLimit.toSeconds(),
                (System.nanoTime() - started) / 1e9, pagesOf(ordered)));
        return ordered;
    }

    private static Map<String, Integer> pagesOf(Map<String, WorkingSet> estimates) {
        Map<String, Integer> out = new LinkedHashMap<>();
        estimates.forEach((m, ws) -> out.put(m, ws.size()));
        return out;
    }

    /** Beyond a probe's live limit: its stopped round and QMP calls (each with its own timeout) take seconds, not minutes. */
    private static final Duration PROBE_MARGIN = Duration.ofSeconds(120);

    private ClusterSave() {}

    /** Saves; with {@link Estimator#DIRTY} in {@code options}, every member is probed first ({@link #probe}, at its live limit). */
    public static Result save(LiveCluster cluster, Path out, Saver.Options options, Consumer<String> progress) {
        long started = System.nanoTime();
        if (options.estimator() != Estimator.DIRTY) return save(cluster, out, options, Map.of(), progress, started);
        Map<String, WorkingSet> estimates = probe(cluster, options.liveLimit(), progress);
        return save(cluster, out, options.withoutEstimate(), estimates, progress, started);
    }

    /**
     * Saves, attaching to each member's image the estimate given for it ({@link #probe}, taken earlier while the members ran).
     *
     * @param estimates per member, its working set; a member without one gets none
     */
    public static Result save(LiveCluster cluster, Path out, Saver.Options options, Map<String, WorkingSet> estimates, Consumer<String> progress) {
        return save(cluster, out, options, estimates, progress, System.nanoTime());
    }

    private static Result save(LiveCluster cluster, Path out, Saver.Options options, Map<String, WorkingSet> estimates, Consumer<String> progress,
                               long started) {
        if (options.estimator() == Estimator.DIRTY) {
            throw new IllegalArgumentException("cluster save: expected the members' estimates probed before the cut, actual the dirty"
                    + " estimator asked of the stopped saves (a stopped guest dirties nothing)");
        }
        for (String m : estimates.keySet()) {
            if (cluster.members().stream().noneMatch(c -> c.name().equals(m))) {
                throw new IllegalArgumentException("cluster save: expected estimates for the cluster's members, actual one for " + m);
            }
        }
        Path target = out.toAbsolutePath().normalize();
        if (Files.exists(target)) throw new CheckpointException.SaveFailed(null, "expected no file at " + target + ", actual one", null);
        cluster.check();
        Path temp;
        try {
            OwnerOnly.createDirectories(target.getParent());
            temp = target.resolveSibling("." + target.getFileName() + ".partial-" + ProcessHandle.current().pid() + "-"
                    + UUID.randomUUID().toString().substring(0, 8));
            OwnerOnly.createDirectories(temp);
        } catch (IOException e) {
            throw new CheckpointException.SaveFailed(null, "cannot create " + target + ": " + e, e);
        }
        // With keep-running the members are stopped together and stay so until every image is written, then run again together.
        boolean keepRunning = options.keepRunning();
        Saver.Options each = options.withKeepRunning(false);
        long[] cutAt = new long[1];
        Result r;
        try {
            r = saveInto(cluster, temp, target, each, estimates, progress, started, cutAt);
            Files.move(temp, target, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            FileTrees.deleteQuietly(temp);
            throw resumedAfterFailure(cluster, keepRunning, cutAt[0], new CheckpointException.SaveFailed(null, "cannot commit " + target + ": " + e, e));
        } catch (RuntimeException e) {
            FileTrees.deleteQuietly(temp);
            throw resumedAfterFailure(cluster, keepRunning, cutAt[0], e);
        }
        if (!keepRunning) return r;
        try {
            return r.resumedAfter(resume(cluster, cutAt[0], progress));
        } catch (RuntimeException e) {
            // The checkpoint is whole and in place: the error must not let it pass for a failed save.
            throw new CheckpointException.SaveFailed(null, "the checkpoint " + target + " is committed, but the cluster did not run again: "
                    + e.getMessage(), e);
        }
    }

    /**
     * Runs every member again at once and ends the switch's cut (the frames held since are delivered, in order): a cluster saved
     * with keep-running goes on. The time from the cut until then.
     */
    private static long resume(LiveCluster cluster, long cutNanos, Consumer<String> progress) {
        List<ClusterMember> members = cluster.members();
        atOnce(cluster, members, "cluster-resume-", STOP_TIMEOUT.plusSeconds(5), "while running the members again",
                (member, vm) -> vm.qmp().cont(STOP_TIMEOUT), e -> "expected its QEMU running again within " + STOP_TIMEOUT.toSeconds()
                        + " s, actual " + e.getMessage());
        cluster.network().resume();
        long paused = System.nanoTime() - cutNanos;
        progress.accept(String.format("members running again and the switch forwarding %.2f s after the cut", paused / 1e9));
        return paused;
    }

    /** A failed keep-running save runs the cluster again if it was cut (what failed is thrown, a failed resume added to it). */
    private static RuntimeException resumedAfterFailure(LiveCluster cluster, boolean keepRunning, long cutNanos, RuntimeException e) {
        if (!keepRunning || cutNanos == 0) return e;
        try {
            resume(cluster, cutNanos, line -> { });
        } catch (RuntimeException resumeFailed) {
            e.addSuppressed(resumeFailed);
        }
        return e;
    }

    private static Result saveInto(LiveCluster cluster, Path temp, Path target, Saver.Options options, Map<String, WorkingSet> estimates,
                                   Consumer<String> progress, long started, long[] cutAt) {
        ClusterSwitch network = cluster.network();
        List<ClusterMember> members = cluster.members();
        ClusterSwitch.Cut cut = network.cut();
        long cutNanos = System.nanoTime();
        cutAt[0] = cutNanos;
        Map<String, Path> sockets = new LinkedHashMap<>();
        for (ClusterMember m : members) sockets.put(m.name(), network.socket(m.name()));
        long drain = drain(sockets, cutNanos);
        Map<String, Long> stopped = stopAll(cluster, members, cutNanos);
        long skew = stopped.values().stream().mapToLong(Long::longValue).max().orElse(0)
                - stopped.values().stream().mapToLong(Long::longValue).min().orElse(0);
        settle(network);
        List<Frame> frames = network.held();
        Map<String, Long> unread = unread(sockets).orElse(Map.of());
        progress.accept(String.format("cut at %s: %d frames in flight, %d held after the stops; sockets drained %s; members stopped within"
                + " %.3f ms; unread by a stopped QEMU: %s", cut.at(), cut.inFlight().size(), frames.size(),
                drain < 0 ? "(not seen)" : String.format("after %.1f ms", drain / 1e6), skew / 1e6, unread.isEmpty() ? "(not seen)" : unread + " bytes"));
        List<ClusterManifest.Member> saved = new ArrayList<>();
        Map<String, Long> saveNanos = new LinkedHashMap<>();
        for (ClusterMember m : members) {
            QemuVm vm = cluster.vm(m.name());
            long t = System.nanoTime();
            Saver.Result r;
            try {
                r = Saver.save(vm.qmp(), vm.config(), temp.resolve(m.name()), options, p -> { });
            } catch (RuntimeException e) {
                throw new CheckpointException.SaveFailed(m.name(), e.getMessage() + (vm.isAlive() ? "" : "; " + vm.describeState()), e);
            }
            WorkingSet ws = estimates.get(m.name());
            if (ws != null) {
                try {
                    WorkingSetWriter.attach(temp.resolve(m.name()), ws); // the image id stays: the manifest below names it
                } catch (RuntimeException e) {
                    throw new CheckpointException.SaveFailed(m.name(), "attaching its working set: " + e.getMessage(), e);
                }
            }
            long took = System.nanoTime() - t;
            saveNanos.put(m.name(), took);
            saved.add(new ClusterManifest.Member(m, m.name(), r.manifest().imageId(), took, r.streamBytes()));
            progress.accept(String.format("member %s saved: %.1f MiB stream in %.2f s%s", m.name(), r.streamBytes() / 1048576.0, took / 1e9,
                    ws == null ? "" : ", working set of " + ws.size() + " pages attached"));
        }
        UUID id = UUID.randomUUID();
        List<String> names = members.stream().map(ClusterMember::name).toList();
        ClusterManifest.Frames framesEntry = FrameLog.write(temp, id, frames, names);
        PortStats anyPort = network.ports().getFirst();
        ClusterManifest manifest = new ClusterManifest(ClusterManifest.VERSION, id.toString(), Instant.now().toString(), thawVersion(),
                saved, new ClusterManifest.Cut(cut.at().toString(), skew, stopped, cut.inFlight().size(), drain, unread),
                new ClusterManifest.SwitchState(anyPort.queueBoundFrames(), anyPort.queueBoundBytes(), network.macTable()),
                network.traffic(), framesEntry);
        manifest.write(temp);
        return new Result(target, manifest, skew, drain, unread, cut.inFlight().size(), frames.size(), saveNanos, System.nanoTime() - started,
                pagesOf(estimates), -1);
    }

    /**
     * Waits, at most {@link #DRAIN_TIMEOUT}, until every member's QEMU has read what the switch wrote to its socket before the cut
     * (the switch writes nothing more after it, but a frame it had begun): what a QEMU has not read when it stops is in neither
     * the guest nor the checkpoint. Returns the time it took after the cut, or -1 when it cannot be seen ({@code ss} missing)
     * or did not happen in time (a guest that takes nothing: the stops go ahead, and the bytes left are reported).
     */
    private static long drain(Map<String, Path> sockets, long cutNanos) {
        long deadline = cutNanos + DRAIN_TIMEOUT.toNanos();
        while (true) {
            Optional<Map<String, Long>> unread = unread(sockets);
            if (unread.isEmpty()) return -1;
            if (unread.get().values().stream().allMatch(b -> b == 0)) return System.nanoTime() - cutNanos;
            if (System.nanoTime() > deadline) return -1;
            try {
                Thread.sleep(5);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new CheckpointException.SaveFailed(null, "interrupted while the members' sockets drained", e);
            }
        }
    }

    /** Per member, the bytes the switch wrote to its socket that its QEMU has not read; empty when {@code ss} cannot say. */
    private static Optional<Map<String, Long>> unread(Map<String, Path> sockets) {
        return UnixSocketQueues.unreadByPeers(sockets.values()).map(byPath -> {
            Map<String, Long> out = new LinkedHashMap<>();
            sockets.forEach((member, path) -> out.put(member, byPath.get(path)));
            return out;
        });
    }

    /** Stops every member at once: one thread each, released together; per member, its stop's answer after {@code cutNanos}. */
    private static Map<String, Long> stopAll(LiveCluster cluster, List<ClusterMember> members, long cutNanos) {
        Map<String, Long> at = new java.util.concurrent.ConcurrentHashMap<>();
        atOnce(cluster, members, "cluster-stop-", STOP_TIMEOUT.plusSeconds(5), "while stopping the members", (member, vm) -> {
            vm.qmp().stop(STOP_TIMEOUT);
            at.put(member, System.nanoTime());
        }, e -> "expected its QEMU stopped within " + STOP_TIMEOUT.toSeconds() + " s, actual " + e.getMessage());
        Map<String, Long> out = new LinkedHashMap<>();
        for (ClusterMember m : members) out.put(m.name(), at.get(m.name()) - cutNanos);
        return out;
    }

    /** What {@link #atOnce} does for one member, on its QEMU. */
    private interface MemberAction {
        void run(String member, QemuVm vm) throws Exception;
    }

    /**
     * Runs {@code action} for every member at once (a platform thread each, {@code PREFIX-MEMBER}, all released by one latch), waits
     * for each at most {@code timeout}, and fails naming the first member, in the members' order, whose action
     * failed or did not end, with {@code why} of its failure and its QEMU's state when that exited.
     */
    private static void atOnce(LiveCluster cluster, List<ClusterMember> members, String threadPrefix, Duration timeout, String during,
                               MemberAction action, java.util.function.Function<Throwable, String> why) {
        CountDownLatch go = new CountDownLatch(1);
        Map<String, Throwable> failed = new java.util.concurrent.ConcurrentHashMap<>();
        List<Thread> threads = new ArrayList<>();
        for (ClusterMember m : members) {
            QemuVm vm = cluster.vm(m.name());
            threads.add(Thread.ofPlatform().name(threadPrefix + m.name()).start(() -> {
                try {
                    go.await();
                    action.run(m.name(), vm);
                } catch (Throwable e) {
                    failed.put(m.name(), e);
                }
            }));
        }
        go.countDown();
        for (int i = 0; i < threads.size(); i++) {
            try {
                if (!threads.get(i).join(timeout)) failed.putIfAbsent(members.get(i).name(), new IllegalStateException("no answer"));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new CheckpointException.SaveFailed(null, "interrupted " + during, e);
            }
        }
        for (ClusterMember m : members) {
            Throwable e = failed.get(m.name());
            if (e != null) {
                QemuVm vm = cluster.vm(m.name());
                throw new CheckpointException.SaveFailed(m.name(), why.apply(e) + (vm.isAlive() ? "" : "; " + vm.describeState()), e);
            }
        }
    }
    /** Waits until the switch has read nothing new for its settle time (what the members wrote before they stopped). */
    private static void settle(ClusterSwitch network) {
        long deadline = System.nanoTime() + SETTLE.multipliedBy(10).toNanos();
        long last = framesIn(network);
        long quietSince = System.nanoTime();
        while (System.nanoTime() < deadline && System.nanoTime() - quietSince < SETTLE.toNanos()) {
            try {
                Thread.sleep(20);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new CheckpointException.SaveFailed(null, "interrupted while the switch settled", e);
            }
            long now = framesIn(network);
            if (now != last) {
                last = now;
                quietSince = System.nanoTime();
            }
        }
    }

    private static long framesIn(ClusterSwitch network) {
        return network.ports().stream().mapToLong(PortStats::framesIn).sum();
    }

    private static String thawVersion() {
        String v = ClusterSave.class.getPackage().getImplementationVersion();
        return v == null ? "dev" : v;
    }
}
