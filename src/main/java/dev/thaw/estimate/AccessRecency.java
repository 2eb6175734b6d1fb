package dev.thaw.estimate;

import java.util.ArrayList;
import java.util.BitSet;
import java.util.Comparator;
import java.util.List;

/**
 * Access-bit recency (Zhang et al., VEE'11): periodic scans, each giving the pages accessed since the
 * previous one (the host's idle page tracking clears and re-reads the accessed bits). Per page it
 * keeps the last scan that saw it accessed and a CLOCK-style reference history; the estimate is the
 * pages accessed in the last scans, most recent first (LRU order). Pure: the scans are given.
 */
public final class AccessRecency {
    private final int[][] lastScan;
    private final int[][] history; // bit i: accessed in the i-th most recent scan (CLOCK's aging bits)
    private int scans;
    private long accessedTotal;

    /** @param pageCounts pages per RAM block */
    public AccessRecency(int[] pageCounts) {
        lastScan = new int[pageCounts.length][];
        history = new int[pageCounts.length][];
        for (int b = 0; b < pageCounts.length; b++) {
            lastScan[b] = new int[pageCounts[b]];
            history[b] = new int[pageCounts[b]];
            java.util.Arrays.fill(lastScan[b], -1);
        }
    }

    /** One scan: per block, the pages accessed since the previous scan. */
    public void scan(BitSet[] accessed) {
        if (accessed.length != lastScan.length) {
            throw new IllegalArgumentException("scan: expected " + lastScan.length + " blocks, actual " + accessed.length);
        }
        for (int b = 0; b < accessed.length; b++) {
            for (int p = 0; p < history[b].length; p++) history[b][p] >>>= 1;
            for (int p = accessed[b].nextSetBit(0); p >= 0 && p < lastScan[b].length; p = accessed[b].nextSetBit(p + 1)) {
                lastScan[b][p] = scans;
                history[b][p] |= 1 << 30;
                accessedTotal++;
            }
        }
        scans++;
    }

    public int scanCount() {
        return scans;
    }

    /** Mean pages accessed per scan interval: the sampled working-set size (HotRestore's WSS_sample). */
    public long sampledPageCount() {
        return scans == 0 ? 0 : Math.round((double) accessedTotal / scans);
    }

    /** Pages accessed within the last {@code windowScans} scans, most recently accessed first (LRU), ties by address. */
    public WorkingSet estimate(int windowScans) {
        List<PageRef> pages = recent(windowScans);
        pages.sort(Comparator.<PageRef>comparingInt(p -> -lastScan[p.block()][p.page()]).thenComparing(Comparator.naturalOrder()));
        return WorkingSet.of(Estimator.ABIT, pages, sampledPageCount(), String.format(
                "accessed bits: %d pages accessed in the last %d of %d scans, most recent first; %d pages accessed per scan interval",
                pages.size(), Math.min(windowScans, scans), scans, sampledPageCount()));
    }

    /**
     * The same pages in CLOCK order: by the aging counter that a CLOCK-with-history sweep keeps (referenced in more of
     * the recent scans first, recent scans weighing more), ties in address order as the hand meets them.
     */
    public List<PageRef> clockOrder(int windowScans) {
        List<PageRef> pages = recent(windowScans);
        pages.sort(Comparator.<PageRef>comparingInt(p -> -history[p.block()][p.page()]).thenComparing(Comparator.naturalOrder()));
        return pages;
    }

    private List<PageRef> recent(int windowScans) {
        if (windowScans < 1) throw new IllegalArgumentException("window: expected at least 1 scan, actual " + windowScans);
        int since = scans - windowScans;
        List<PageRef> pages = new ArrayList<>();
        for (int b = 0; b < lastScan.length; b++) {
            for (int p = 0; p < lastScan[b].length; p++) {
                if (lastScan[b][p] >= 0 && lastScan[b][p] >= since) pages.add(new PageRef(b, p));
            }
        }
        return pages;
    }
}
