package dev.thaw.estimate;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * Dirty-bit recency from a live (precopy) save. QEMU sends RAM in rounds: each round walks the
 * blocks in order and sends, by ascending address, every page its dirty log marked since the page
 * was last sent; the first round sends everything. A page that arrives again in a later round was
 * written after it was sent, so the round that carried a page last orders the written part of the
 * working set: last round first. Rounds are recognized in the stream itself: an arrival at or
 * behind the previous one in address order starts a new round.
 *
 * <p>Pure: fed the page arrivals of the save stream in order.
 */
public final class DirtyRecency {
    private final int[][] lastRound;
    private final long[][] rounds; // bit r: the page arrived in round r (rounds past 63 share bit 63)
    private int round;
    private int lastBlock = -1;
    private int lastPage = -1;
    private long arrivals;

    /** @param pageCounts pages per RAM block, in the stream's block order */
    public DirtyRecency(int[] pageCounts) {
        lastRound = new int[pageCounts.length][];
        rounds = new long[pageCounts.length][];
        for (int b = 0; b < pageCounts.length; b++) {
            lastRound[b] = new int[pageCounts[b]];
            rounds[b] = new long[pageCounts[b]];
            java.util.Arrays.fill(lastRound[b], -1);
        }
    }

    /** One page (zero or not) as it arrived in the stream. */
    public void arrived(int block, int page) {
        if (block < lastBlock || (block == lastBlock && page <= lastPage)) round++;
        lastBlock = block;
        lastPage = page;
        lastRound[block][page] = round;
        rounds[block][page] |= 1L << Math.min(round, 63);
        arrivals++;
    }

    /** Rounds seen so far (1 for a save of a stopped guest). */
    public int roundCount() {
        return arrivals == 0 ? 0 : round + 1;
    }

    /** Pages that arrived more than once: written during the save. */
    public long rewrittenPageCount() {
        long n = 0;
        for (int[] rounds : lastRound) {
            for (int r : rounds) if (r > 0) n++;
        }
        return n;
    }

    /**
     * The working set: every page a later round carried again, the latest round first, by address within a round (QEMU
     * gives no order inside a round). Its size estimate is the number of such pages.
     */
    public WorkingSet estimate() {
        List<PageRef> pages = new ArrayList<>();
        for (int b = 0; b < lastRound.length; b++) {
            for (int p = 0; p < lastRound[b].length; p++) {
                if (lastRound[b][p] > 0) pages.add(new PageRef(b, p));
            }
        }
        pages.sort(Comparator.<PageRef>comparingInt(p -> -lastRound[p.block()][p.page()]).thenComparing(Comparator.naturalOrder()));
        return WorkingSet.of(Estimator.DIRTY, pages, pages.size(), String.format(
                "dirty-bit recency: %d pages written during a live save of %d rounds, ordered by the last round that carried them",
                pages.size(), roundCount()));
    }

    /**
     * The same pages in CLOCK order: each later round is one sweep of a CLOCK hand whose reference bits are the pages
     * the guest wrote since the previous sweep; with aging (a shift register per page, the latest sweep in the top bit),
     * pages referenced in more of the recent sweeps come first, ties in the order the hand meets them (by address).
     */
    public List<PageRef> clockOrder() {
        List<PageRef> pages = new ArrayList<>();
        for (int b = 0; b < lastRound.length; b++) {
            for (int p = 0; p < lastRound[b].length; p++) {
                if (lastRound[b][p] > 0) pages.add(new PageRef(b, p));
            }
        }
        // With bit r for round r, the mask is the aging counter after the last sweep (later rounds weigh more); round 0 sends
        // everything and references nothing.
        Comparator<PageRef> byAge = (x, y) -> Long.compareUnsigned(rounds[y.block()][y.page()] & ~1L, rounds[x.block()][x.page()] & ~1L);
        pages.sort(byAge.thenComparing(Comparator.naturalOrder()));
        return pages;
    }

    /** The round that last carried the page (0 is the first), or -1 if it never arrived. */
    public int lastRoundOf(PageRef page) {
        return lastRound[page.block()][page.page()];
    }
}
