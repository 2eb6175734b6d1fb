package dev.thaw.restore;

import dev.thaw.estimate.Estimator;
import dev.thaw.estimate.FaultOrder;
import dev.thaw.estimate.PageRef;
import dev.thaw.estimate.WorkingSet;
import dev.thaw.image.CheckpointImage;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
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

    /** A trace without a sample: the guest restored lazily, every page it touches in the period a fault (HotRestore's FAFL queue). */
    public static Result run(CheckpointImage image, String vmName, Duration period, Consumer<String> progress) {
        PostcopyRestore.Result r = traced(image, PostcopyRestore.Options.lazy(vmName).withTracing(period), progress);
        WorkingSet traced = FaultOrder.trace(touches(r, period), period.toNanos());
        return new Result(r, new WorkingSet(Estimator.TRACE, traced.entries(), traced.size(), traced.description() + "; size: the traced pages"));
    }

    /**
     * A trace that completes a sample (the dirty-bit pages of a live probe, which misses pages the guest only reads): the sample is
     * prefetched before the guest runs, so the guest runs at speed through the period and faults only on what the sample missed;
     * the working set is those misses, in first-touch order, then the sample ({@link FaultOrder#traceAfterSample}). A lazy trace
     * of a large working set crawls on faults and sees only part of it in its period (at 4 GiB, W = 256 MiB: 30k of 56k pages
     * in 5 s), while the sample alone misses about a tenth of a scattered set.
     */
    public static Result runAfterSample(CheckpointImage image, String vmName, Duration period, List<PageRef> sample, String sampleSource,
                                        Consumer<String> progress) {
        PostcopyRestore.Result r = traced(image, PostcopyRestore.Options.lazy(vmName).withWorkingSet(sample).withTracing(period), progress);
        return new Result(r, FaultOrder.traceAfterSample(sample, touches(r, period), period.toNanos(), sampleSource));
    }

    private static PostcopyRestore.Result traced(CheckpointImage image, PostcopyRestore.Options options, Consumer<String> progress) {
        Instant startedAt = Instant.now();
        PostcopyRestore.Result r = PostcopyRestore.restore(image, options, m -> progress.accept("tracing restore: " + m));
        RestoreTraces.write(image, "trace", startedAt, options, r);
        return r;
    }

    /** The guest's first touches of pages not yet sent, within the period after it started running. */
    private static List<FaultOrder.Touch> touches(PostcopyRestore.Result r, Duration period) {
        long end = r.runningNanos() + period.toNanos();
        return r.faults().stream().filter(f -> !f.alreadySent() && f.atNanos() <= end)
                .map(f -> new FaultOrder.Touch(new PageRef(f.block(), f.page()), f.atNanos())).toList();
    }
}
