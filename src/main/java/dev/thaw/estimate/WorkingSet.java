package dev.thaw.estimate;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * A working-set estimate: the pages the guest is expected to touch first after a restore, in the
 * order it is expected to touch them (a first-access-first-load queue: any prefix is a valid,
 * smaller working set), with the size the estimator believes the working set has.
 *
 * @param estimator          who made it
 * @param entries            the queue, without repeats
 * @param estimatedPageCount the estimated working-set size in pages (WSS); may differ from the queue's length: a
 *                           restore prefetches a fraction of it ({@link Sizing}) and streams the rest of the queue first
 * @param description        how it was computed, for people ({@code thaw ws})
 */
public record WorkingSet(Estimator estimator, List<Entry> entries, long estimatedPageCount, String description) {
    /** Unknown first-access time. */
    public static final long UNKNOWN_TIME = -1;

    /**
     * @param page             the page
     * @param firstAccessNanos when it was first touched, nanoseconds from the start of the observation, or {@link #UNKNOWN_TIME}
     */
    public record Entry(PageRef page, long firstAccessNanos) {}

    public WorkingSet {
        if (estimator == null || estimator == Estimator.INVALID) throw new IllegalArgumentException("working set: expected an estimator");
        if (estimatedPageCount < 0) throw new IllegalArgumentException("working set: expected a size >= 0, actual " + estimatedPageCount);
        entries = List.copyOf(entries);
        Set<PageRef> seen = new HashSet<>();
        for (Entry e : entries) {
            if (!seen.add(e.page())) throw new IllegalArgumentException("working set: page " + e.page() + " appears twice in the queue");
        }
    }

    public static WorkingSet of(Estimator estimator, List<PageRef> pages, long estimatedPageCount, String description) {
        return new WorkingSet(estimator, pages.stream().map(p -> new Entry(p, UNKNOWN_TIME)).toList(), estimatedPageCount, description);
    }

    public static WorkingSet none() {
        return new WorkingSet(Estimator.NONE, List.of(), 0, "no estimate");
    }

    public int size() {
        return entries.size();
    }

    /** The queue's pages in order. */
    public List<PageRef> pages() {
        List<PageRef> out = new ArrayList<>(entries.size());
        for (Entry e : entries) out.add(e.page());
        return out;
    }

    /** The first {@code n} pages of the queue (all of it when shorter). */
    public List<PageRef> prefix(long n) {
        List<PageRef> all = pages();
        return all.subList(0, (int) Math.min(all.size(), Math.max(0, n)));
    }
}
