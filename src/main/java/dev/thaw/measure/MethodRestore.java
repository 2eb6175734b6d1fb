package dev.thaw.measure;

import dev.thaw.image.CheckpointImage;
import dev.thaw.qemu.QemuVm;
import dev.thaw.qemu.VmConfig;
import dev.thaw.restore.EagerRestore;
import dev.thaw.restore.MappedRestore;
import dev.thaw.restore.PostcopyRestore;
import dev.thaw.restore.Restorer;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Optional;
import java.util.function.Consumer;
import java.util.function.Supplier;
import java.util.function.UnaryOperator;

/**
 * A restore by one {@link RestoreMethod}: the one place the demo and the bench turn a method into a restore. QEMU's own through
 * {@link QemuBaselines}, the mapped RAM file through {@link MappedRestore}; Thaw's through {@link Restorer#restore}, the path
 * {@code thaw restore --ws-source image} takes, with the method's working set ({@link RestoreMethod#workingSetChoice}) and options ({@link RestoreMethod#tuned}).
 * Like every lazy or ws restore, Thaw's leave their trace beside the image ({@link dev.thaw.restore.RestoreTraces}).
 */
public final class MethodRestore {
    /** How long QEMU's own restores may take to load the guest (Thaw's have their own stall timeouts). */
    static final Duration BASELINE_TIMEOUT = Duration.ofMinutes(5);

    /** Thaw's image: a directory each restore that reads it opens, or one the caller holds open. */
    public sealed interface Image {
        /** Opened by each restore that reads it, the opening counted (the bench: from the page cache state it prepared). */
        record At(Path directory) implements Image {}

        /** Opened once by the caller for many restores (the demo); no restore counts the opening. */
        record Open(CheckpointImage image) implements Image {}
    }

    /**
     * What a restore draws on.
     *
     * @param source    the saved guest's configuration: QEMU's own restores start a QEMU like it
     * @param baselines QEMU's stream and qcow2 snapshot, and the RAM file the mapped-file baseline maps
     */
    public record Saved(VmConfig source, Image image, QemuBaselines.BaselineFiles baselines) {}

    /**
     * A restored guest, running. Times in nanoseconds from {@code startedNanos}.
     *
     * @param startedNanos   System.nanoTime() when the restore began
     * @param openNanos      opening the image (reading its metadata); 0 when it came open or the method does not read it
     * @param runningNanos   the guest running: the opening plus the restore's own time from its own start (choosing its prefetch,
     *                       between the two, is not counted)
     * @param completedNanos every page in; the running time for the eager restores and the mapped ones
     * @param postcopy       a lazy or ws restore's result (demand faults, event log, QEMU's vCPU stall); empty for the others
     * @param guestRam       what backed a lazy or ws restore's guest RAM and why ({@code GuestRamChoice}); empty for the others
     */
    public record Restored(QemuVm vm, long startedNanos, long openNanos, long runningNanos, long completedNanos,
                           Optional<PostcopyRestore.Result> postcopy, Optional<dev.thaw.restore.GuestRamChoice.Choice> guestRam) {}

    private MethodRestore() {}

    /**
     * Restores the guest into a new QEMU called {@code vmName}; the caller closes it.
     *
     * @param tune     adjusts Thaw's lazy and ws restores (the demo's command-line tuning), before the method's own changes
     * @param progress what the restore is doing, for a status line
     */
    public static Restored restore(RestoreMethod method, Saved saved, String vmName, UnaryOperator<PostcopyRestore.Options> tune,
                                   Consumer<String> progress) {
        long start = System.nanoTime();
        CheckpointImage opened = null;
        try {
            CheckpointImage image = switch (saved.image()) {
                case Image.Open o -> o.image();
                case Image.At a when readsImage(method) -> opened = CheckpointImage.open(a.directory());
                case Image.At a -> null;
            };
            long open = opened == null ? 0 : System.nanoTime() - start;
            QemuBaselines.BaselineFiles files = saved.baselines();
            return switch (method) {
                case QEMU_EAGER -> baseline(method, start, open, progress,
                        () -> QemuBaselines.restoreFromFile(saved.source(), vmName, files.stream(), BASELINE_TIMEOUT));
                case QEMU_LOADVM -> baseline(method, start, open, progress,
                        () -> QemuBaselines.loadInternalSnapshot(saved.source(), vmName, files.qcow2(), files.snapshotTag(), BASELINE_TIMEOUT));
                case MAPPED_FILE -> baseline(method, start, open, progress, () -> {
                    MappedRestore.Result r = MappedRestore.restore(image, files.ramFile(), EagerRestore.Options.defaults(vmName));
                    return new QemuBaselines.RestoreResult(r.vm(), r.qemuReadyNanos(), r.runningNanos());
                });
                default -> {
                    Restorer.Outcome o = Restorer.restore(image, method.thawMode().orElseThrow(() -> new IllegalStateException("method " + method.key()
                            + ": expected a Thaw restore mode, actual none")), vmName, method.workingSetChoice(),
                            tuning(method, tune), progress);
                    yield new Restored(o.vm(), start, open, open + nanos(o.runningSeconds()), open + nanos(o.completedSeconds()), o.postcopy(),
                            o.guestRam());
                }
            };
        } finally {
            if (opened != null) opened.close(); // every restore has read what it needs from the image when it returns
        }
    }

    /** The caller's tuning, then the method's own changes: an ablation stays what its name says whatever the command line sets. */
    static UnaryOperator<PostcopyRestore.Options> tuning(RestoreMethod method, UnaryOperator<PostcopyRestore.Options> tune) {
        return options -> method.tuned(tune.apply(options));
    }

    /** Whether the method reads Thaw's image: all but QEMU's own (the mapped file takes its device state from it). */
    static boolean readsImage(RestoreMethod method) {
        return method != RestoreMethod.QEMU_EAGER && method != RestoreMethod.QEMU_LOADVM;
    }

    /** A baseline's restore, said as the demo's status line names it; it runs eagerly, so running is completion. */
    private static Restored baseline(RestoreMethod method, long start, long open, Consumer<String> progress,
                                     Supplier<QemuBaselines.RestoreResult> restore) {
        progress.accept(method.shortName() + " restore");
        QemuBaselines.RestoreResult r = restore.get();
        return new Restored(r.vm(), start, open, open + r.runningNanos(), open + r.runningNanos(), Optional.empty(), Optional.empty());
    }

    /** Restorer's seconds back to the nanoseconds they came from (exact: far below half a nanosecond of rounding). */
    private static long nanos(double seconds) {
        return Math.round(seconds * 1e9);
    }
}
