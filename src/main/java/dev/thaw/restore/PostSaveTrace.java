package dev.thaw.restore;

import dev.thaw.estimate.Estimator;
import dev.thaw.estimate.FaultOrder;
import dev.thaw.estimate.PageRef;
import dev.thaw.estimate.Sizing;
import dev.thaw.estimate.WorkingSet;
import dev.thaw.image.CheckpointImage;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.OptionalLong;
import java.util.function.Consumer;

/**
 * Post-save tracing (Zhang et al.; HotRestore's FAFL queue): the saved guest goes on from the save
 * point in a fresh QEMU restored lazily from the image, and for a trace period Thaw sends it only
 * the pages it asks for, one by one, so the order of its requests is the order in which it first
 * touches pages after the save. Afterwards the rest streams in the background as in any lazy
 * restore, and the guest keeps running in the new QEMU.
 */
public final class PostSaveTrace {
    /** The traced restore (its QEMU runs the guest now) and the estimate. */
    public record Result(PostcopyRestore.Result restore, WorkingSet workingSet) {}

    private PostSaveTrace() {}

    /**
     * @param sampledPages the working-set size sampled during normal execution (WSS_sample: the dirty-bit estimate of a
     *                     live save or the accessed-bit scans), or empty; with it the size is HotRestore's hybrid
     *                     0.7 x sample + 0.3 x traced
     * @param sampleSource what the sample is, for the description ("dirty-bit", "accessed-bit")
     */
    public static Result run(CheckpointImage image, String vmName, Duration period, OptionalLong sampledPages, String sampleSource,
                             Consumer<String> progress) {
        PostcopyRestore.Options options = PostcopyRestore.Options.lazy(vmName).withTracing(period);
        Instant startedAt = Instant.now();
        PostcopyRestore.Result r = PostcopyRestore.restore(image, options, m -> progress.accept("tracing restore: " + m));
        RestoreTraces.write(image, "trace", startedAt, options, r);
        long end = r.runningNanos() + period.toNanos();
        List<FaultOrder.Touch> touches = r.faults().stream().filter(f -> !f.alreadySent() && f.atNanos() <= end)
                .map(f -> new FaultOrder.Touch(new PageRef(f.block(), f.page()), f.atNanos())).toList();
        WorkingSet traced = FaultOrder.trace(touches, period.toNanos());
        long size = Sizing.HOTRESTORE.workingSetPages(sampledPages, OptionalLong.of(traced.size()));
        String how = traced.description() + (sampledPages.isPresent()
                ? String.format("; size 0.7 x %d (%s sample) + 0.3 x %d (traced) = %d pages", sampledPages.getAsLong(), sampleSource,
                traced.size(), size)
                : "; size: the traced pages");
        return new Result(r, new WorkingSet(Estimator.TRACE, traced.entries(), size, how));
    }
}
