package dev.thaw.estimate;

import java.util.List;

/**
 * How much of a working-set queue a ws restore prefetches before the guest starts, chosen per image from its estimate
 * (elastic): HotRestore's fraction of the estimated size where the estimate is clustered, the whole estimate where it is
 * scattered. Pure.
 *
 * <p>Why: after the prefetch the guest faults on what is missing, and a fault brings its 2 MiB region next (the scheduler's
 * fault regions). Where the working set fills its regions densely (a contiguous working set) that region is the working set,
 * and prefetching half starts the guest sooner for the same result; where it is thin (a working set scattered over guest
 * memory) a fault predicts nothing around it and every page left out costs a fault. Measured (docs/benchmarks.md, fifth
 * session): 1 GiB, 64 MiB contiguous, TTR 0.17 s with half against 0.27 s with the whole set; 4 GiB, 256 MiB scattered, the
 * guest's work in its first 8 s 0.93-0.99x with the whole set against 0.17-0.46x with half.
 *
 * @param pages   the pages to prefetch, from the head of the queue
 * @param density the estimate's pages over the 2 MiB regions they lie in, times 512 ({@link #density}): what guest RAM in 2 MiB
 *                pages would read beyond the estimate
 * @param reason  what was chosen and why, for {@code restore --json} and the logs
 */
public record PrefetchSize(int pages, double density, String reason) {
    /** Pages of a 2 MiB region. */
    static final int REGION_PAGES = 512;
    /** The estimate is clustered when its pages fill at least this share of the 2 MiB regions they lie in. */
    public static final double CLUSTERED_DENSITY = 0.5;

    public PrefetchSize {
        if (pages < 0) throw new IllegalArgumentException("prefetch: expected pages >= 0, actual " + pages);
        if (!(density >= 0 && density <= 1)) throw new IllegalArgumentException("prefetch: expected a density in [0, 1], actual " + density);
    }

    /**
     * The elastic choice.
     *
     * @param sizing      HotRestore's fraction, used for a clustered estimate
     * @param budgetPages the most a scattered estimate prefetches whole (what the read-ahead holds)
     */
    public static PrefetchSize elastic(WorkingSet queue, Sizing sizing, long budgetPages) {
        return elastic(queue, sizing, budgetPages, CLUSTERED_DENSITY);
    }

    /**
     * As above, with the density from which the estimate counts as clustered: lower for guest RAM in 2 MiB pages, where a fault
     * brings its whole region whatever its density, so that what makes the guest RAM 2 MiB pages also gives the half.
     */
    public static PrefetchSize elastic(WorkingSet queue, Sizing sizing, long budgetPages, double clusteredDensity) {
        int estimate = (int) Math.min(queue.size(), queue.estimatedPageCount());
        double density = density(queue.pages().subList(0, estimate));
        if (density >= clusteredDensity) {
            int pages = sizing.prefetchPages(queue);
            return new PrefetchSize(pages, density, String.format("clustered estimate (its pages fill %.0f%% of their 2 MiB regions): %.2f of"
                    + " its %d pages, faults bring their regions", 100 * density, sizing.prefetchFraction(), estimate));
        }
        int pages = (int) Math.min(estimate, budgetPages);
        return new PrefetchSize(pages, density, String.format("scattered estimate (its pages fill %.0f%% of their 2 MiB regions): the whole"
                + " estimate, %d of %d pages%s", 100 * density, pages, estimate, pages < estimate ? " (the read-ahead budget)" : ""));
    }

    /** A fixed fraction of the estimated size (an operator's {@code --ws-fraction}). */
    public static PrefetchSize fraction(WorkingSet queue, Sizing sizing) {
        int pages = sizing.prefetchPages(queue);
        int estimate = (int) Math.min(queue.size(), queue.estimatedPageCount());
        return new PrefetchSize(pages, density(queue.pages().subList(0, estimate)), String.format("%.2f of the estimated %d pages (--ws-fraction)", sizing.prefetchFraction(),
                queue.estimatedPageCount()));
    }

    /** Pages over the 2 MiB regions they touch, times 512: 1 for whole regions, 1/512 for one page per region. */
    static double density(List<PageRef> pages) {
        if (pages.isEmpty()) return 1;
        // Sorted keys, not hash sets of records: this runs before the restore launches QEMU, and a record's first hashCode
        // costs a cold JVM its bootstrap (the plan of a 17k-page estimate took 80 ms in a fresh `thaw restore`).
        long[] keys = new long[pages.size()];
        for (int i = 0; i < keys.length; i++) keys[i] = ((long) pages.get(i).block() << 32) | pages.get(i).page();
        java.util.Arrays.sort(keys);
        long distinct = 0;
        long regions = 0;
        long lastKey = -1;
        long lastRegion = -1;
        for (long key : keys) {
            if (key == lastKey) continue;
            distinct++;
            lastKey = key;
            long region = (key >>> 32 << 32) | ((key & 0xFFFF_FFFFL) / REGION_PAGES);
            if (region != lastRegion) regions++;
            lastRegion = region;
        }
        return distinct / ((double) regions * REGION_PAGES);
    }
}
