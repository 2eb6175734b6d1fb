package dev.thaw.estimate;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * First-access-first-load queues from page faults: the post-save trace (HotRestore's FAFL queue)
 * and the working set learned from a restore (REAP-style: what it prefetched, then what it still
 * had to fault in). Pure.
 */
public final class FaultOrder {
    /** A page as it was first touched: nanoseconds from the start of the observation. */
    public record Touch(PageRef page, long atNanos) {}

    private FaultOrder() {}

    /** The FAFL queue of a trace: pages in order of first touch, each once, with its first-touch time. */
    public static WorkingSet trace(List<Touch> touches, long tracedNanos) {
        Map<PageRef, Long> first = new LinkedHashMap<>();
        for (Touch t : touches) first.putIfAbsent(t.page(), t.atNanos());
        List<WorkingSet.Entry> entries = new ArrayList<>(first.size());
        first.forEach((p, at) -> entries.add(new WorkingSet.Entry(p, at)));
        return new WorkingSet(Estimator.TRACE, entries, entries.size(), String.format(
                "post-save trace: %d pages in first-access order over %.1f s after the save", entries.size(), tracedNanos / 1e9));
    }

    /**
     * The working set learned from one restore: the pages it prefetched (in its order), then the pages it faulted in
     * (in fault order). The size estimate is the pages the guest demonstrably needed: the faults plus the part of the
     * previous working set that the restore did not show to be superfluous (all of it: a prefetched page never faults).
     */
    public static WorkingSet learned(List<PageRef> prefetched, List<Touch> faults) {
        Map<PageRef, Long> first = new LinkedHashMap<>();
        for (PageRef p : prefetched) first.putIfAbsent(p, WorkingSet.UNKNOWN_TIME);
        int fromFaults = 0;
        for (Touch t : faults) {
            if (first.putIfAbsent(t.page(), t.atNanos()) == null) fromFaults++;
        }
        List<WorkingSet.Entry> entries = new ArrayList<>(first.size());
        first.forEach((p, at) -> entries.add(new WorkingSet.Entry(p, at)));
        return new WorkingSet(Estimator.LEARNED, entries, entries.size(), String.format(
                "learned from a restore: %d prefetched pages, then %d pages it faulted in", prefetched.size(), fromFaults));
    }

    /**
     * The post-save trace of a guest restored with a sample prefetched (the dirty-bit pages of a live probe): the pages the sample
     * missed, in the order the guest first touched them within the trace period, then the sample in its own order. The misses
     * come first since the guest demonstrably touched them at once (read-mostly pages, which no dirty bit shows), while the
     * sample's order is only by write recency. The size estimate is the union: the sample is not shown superfluous by a trace in
     * which its pages never fault.
     */
    public static WorkingSet traceAfterSample(List<PageRef> sample, List<Touch> misses, long tracedNanos, String sampleSource) {
        Map<PageRef, Long> first = new LinkedHashMap<>();
        for (Touch t : misses) first.putIfAbsent(t.page(), t.atNanos());
        int missed = first.size();
        int fromSample = 0;
        for (PageRef p : sample) {
            if (first.putIfAbsent(p, WorkingSet.UNKNOWN_TIME) == null) fromSample++;
        }
        List<WorkingSet.Entry> entries = new ArrayList<>(first.size());
        first.forEach((p, at) -> entries.add(new WorkingSet.Entry(p, at)));
        return new WorkingSet(Estimator.TRACE, entries, entries.size(), String.format(
                "post-save trace with the %s sample prefetched: %d pages it missed in first-access order over %.1f s, then the"
                        + " sample's %d pages", sampleSource, missed, tracedNanos / 1e9, fromSample));
    }
}
