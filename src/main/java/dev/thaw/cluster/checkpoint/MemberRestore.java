package dev.thaw.cluster.checkpoint;

import dev.thaw.guest.ClusterMember;
import dev.thaw.image.CheckpointImage;
import dev.thaw.qemu.QemuVm;
import dev.thaw.qemu.QmpClient;
import dev.thaw.qemu.QmpException;
import dev.thaw.restore.Clones;
import dev.thaw.restore.RestoreIdentity;
import dev.thaw.restore.Restorer;
import dev.thaw.restore.WorkingSetChoice;
import java.nio.file.Path;
import java.time.Duration;
import java.util.OptionalDouble;
import java.util.OptionalInt;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One member's cohort work, whoever coordinates it (this process's {@link ClusterRestore}, or a coordinator over ZooKeeper): its
 * restore runs in a thread of its own ({@code cluster-cohort-MEMBER}) with its start held; {@link #loaded()} is LOAD_FIN,
 * {@link #start()} START (QMP {@code cont}, returning once QEMU runs: START_FIN), {@link #completed()} RESTORE_FIN's condition.
 */
public final class MemberRestore {
    private static final Logger log = LoggerFactory.getLogger(MemberRestore.class);
    private static final Duration QMP_TIMEOUT = Duration.ofSeconds(10);

    final ClusterMember member;
    final CheckpointImage image;
    final long estimatePages;
    Restorer.Mode mode;
    long revisedPages;
    private Thread thread;
    private volatile QemuVm vm;
    private volatile Restorer.Outcome outcome;
    private volatile Throwable failure;
    private volatile boolean abandoned;
    long loadedNanos = -1, runningNanos = -1, completedNanos = -1;

    /** Opens the member's image in the checkpoint and checks that its id is the cluster manifest's. */
    public static MemberRestore open(Path checkpoint, ClusterManifest.Member m) {
        CheckpointImage image = CheckpointImage.open(checkpoint.resolve(m.image()));
        if (!image.manifest().imageId().equals(m.imageId())) {
            image.close();
            throw new CheckpointException.RestoreFailed(m.member().name(), "image " + image.directory() + ": expected image id " + m.imageId()
                    + " (cluster manifest), actual " + image.manifest().imageId(), null);
        }
        long estimate = image.workingSet().map(ws -> (long) ws.size()).orElse(0L);
        return new MemberRestore(m.member(), image, estimate);
    }

    private MemberRestore(ClusterMember member, CheckpointImage image, long estimatePages) {
        this.member = member;
        this.image = image;
        this.estimatePages = estimatePages;
    }

    public String name() {
        return member.name();
    }

    /** Closes the member's image: once its restore completed or was abandoned (Restorer does not own it). */
    public void closeImage() {
        image.close();
    }

    public ClusterMember member() {
        return member;
    }

    /** The image's working-set estimate in pages (0 without one). */
    public long estimatePages() {
        return estimatePages;
    }

    /** The image's memory in pages (the restore line's bound). */
    public long memoryPages() {
        return image.ramBlocks().stream().mapToLong(b -> b.pageCount()).sum();
    }

    /** The member's QEMU once launched, else null. */
    public QemuVm vm() {
        return vm;
    }

    /**
     * LOAD: restores the member with its start held, the revised working set prefetched (ws), in a thread of its own.
     *
     * @param restores    how many restores run at once on this host (the background's priority depends on it)
     * @param switchDir   the directory of the switch its stream netdev connects to
     * @param onLaunch    told of the member's QEMU as soon as it is launched (not when the restore was abandoned meanwhile)
     */
    public void begin(long workingSetPages, int restores, Path switchDir, Consumer<QemuVm> onLaunch) {
        revisedPages = workingSetPages;
        boolean ws = estimatePages > 0 && workingSetPages > 0;
        mode = ws ? Restorer.Mode.WS : Restorer.Mode.LAZY;
        WorkingSetChoice choice = new WorkingSetChoice(WorkingSetChoice.Source.IMAGE,
                ws ? OptionalInt.of((int) Math.min(Integer.MAX_VALUE, workingSetPages)) : OptionalInt.empty(), OptionalDouble.empty());
        RestoreIdentity identity = RestoreIdentity.single().withClusterDirectory(switchDir);
        // Several restores at once: SCHED_IDLE backgrounds would starve once the guests' vCPUs fill the host (Clones).
        var priority = Clones.backgroundPriority(restores, dev.thaw.restore.IncomingQemu.savedCpuCount(image),
                Runtime.getRuntime().availableProcessors());
        thread = Thread.ofPlatform().name("cluster-cohort-" + name()).start(() -> {
            try {
                outcome = Restorer.restore(image, mode, name(), identity, choice, o -> o.withBackgroundPriority(priority)
                        .withStartHeld(launched -> {
                            vm = launched;
                            if (abandoned) launched.close(); // the restore failed meanwhile: nothing may be left behind
                            else onLaunch.accept(launched);
                        }), line -> log.debug("{}: {}", name(), line));
            } catch (Throwable e) {
                failure = e;
            }
        });
    }

    /** Fails the restore for this member if its restore failed or its QEMU exited. */
    public void check() {
        Throwable f = failure;
        QemuVm v = vm;
        if (f != null) {
            // A restore that failed on a lost QMP connection is usually QEMU on its way out: its exit status says why.
            if (v != null && v.isAlive()) v.awaitExit(Duration.ofSeconds(2));
            throw new CheckpointException.RestoreFailed(name(), f.getMessage() + (v != null && !v.isAlive() ? "; " + v.describeState() : ""), f);
        }
        if (v != null && !v.isAlive()) {
            throw new CheckpointException.RestoreFailed(name(), "expected its QEMU running, actual " + v.describeState(), null);
        }
    }

    /** LOAD_FIN: QEMU processed RUN and, started with -S, stays paused with its working set and device state loaded. */
    public boolean loaded() {
        QemuVm v = vm;
        if (v == null) return false;
        QmpClient.RunState state;
        try {
            state = v.qmp().queryStatus(QMP_TIMEOUT);
        } catch (QmpException e) {
            v.awaitExit(Duration.ofSeconds(2)); // a lost connection is QEMU on its way out: its exit status says why
            throw new CheckpointException.RestoreFailed(name(), "waiting for LOAD_FIN: " + e.getMessage() + "; " + v.describeState(), e);
        }
        return state.running() || state.status().equals("paused");
    }

    /** START: the vCPUs go; returns (START_FIN) once QEMU says running. */
    public void start() {
        QemuVm v = vm;
        try {
            v.qmp().cont(QMP_TIMEOUT);
            QmpClient.RunState state = v.qmp().queryStatus(QMP_TIMEOUT);
            if (!state.running()) throw new IllegalStateException("expected running after cont, actual " + state.status());
        } catch (RuntimeException e) {
            throw new CheckpointException.RestoreFailed(name(), "START: " + e.getMessage() + (v.isAlive() ? "" : "; " + v.describeState()), e);
        }
    }

    /** RESTORE_FIN's condition: the member's restore completed (every page in its QEMU). */
    public boolean completed() {
        return outcome != null;
    }

    /** Kills the member's QEMU, and one launched from now on. */
    public void abandon() {
        abandoned = true;
        QemuVm v = vm;
        if (v != null) v.close();
    }

    /** Waits at most {@code timeout} for the restore's thread (after {@link #abandon()}). */
    public void join(Duration timeout) {
        if (thread == null) return;
        try {
            if (!thread.join(timeout)) log.warn("cluster cohort {}: its restore did not end within {} after its QEMU was killed", name(), timeout);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
