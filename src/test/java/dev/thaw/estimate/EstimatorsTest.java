package dev.thaw.estimate;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.testing.Seeds;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.HashSet;
import java.util.List;
import java.util.OptionalLong;
import java.util.Random;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;

class EstimatorsTest {
    private static PageRef p(int block, int page) {
        return new PageRef(block, page);
    }

    @Test
    void dirtyRecencyOrdersByTheLastRoundThatCarriedAPage() {
        DirtyRecency d = new DirtyRecency(new int[] {8, 2});
        for (int b = 0; b < 2; b++) {
            for (int q = 0; q < (b == 0 ? 8 : 2); q++) d.arrived(b, q); // round 0: everything
        }
        d.arrived(0, 2); // round 1
        d.arrived(0, 5);
        d.arrived(1, 0);
        d.arrived(0, 5); // round 2 (behind the previous arrival)
        d.arrived(0, 7);
        WorkingSet ws = d.estimate();
        assertThat(d.roundCount()).isEqualTo(3);
        assertThat(d.rewrittenPageCount()).isEqualTo(4);
        assertThat(ws.estimator()).isEqualTo(Estimator.DIRTY);
        assertThat(ws.pages()).containsExactly(p(0, 5), p(0, 7), p(0, 2), p(1, 0));
        assertThat(ws.estimatedPageCount()).isEqualTo(4);
    }

    @Test
    void clockAgingRanksPagesWrittenInMoreRecentRoundsFirst() {
        DirtyRecency d = new DirtyRecency(new int[] {10});
        for (int q = 0; q < 10; q++) d.arrived(0, q); // round 0
        d.arrived(0, 3); // round 1
        d.arrived(0, 7);
        d.arrived(0, 5); // round 2
        d.arrived(0, 7);
        assertThat(d.estimate().pages()).as("LRU: the last round first, by address within it").containsExactly(p(0, 5), p(0, 7), p(0, 3));
        assertThat(d.clockOrder()).as("CLOCK with aging: page 7 was referenced in both sweeps").containsExactly(p(0, 7), p(0, 5), p(0, 3));
    }

    @Test
    void dirtyRecencyOfAStoppedGuestIsEmpty() {
        DirtyRecency d = new DirtyRecency(new int[] {4});
        for (int q = 0; q < 4; q++) d.arrived(0, q);
        assertThat(d.roundCount()).isEqualTo(1);
        assertThat(d.estimate().size()).isZero();
    }

    @Test
    void dirtyRecencyOfRandomRounds() {
        Random random = Seeds.random("dirtyRecencyOfRandomRounds");
        int pages = 1 + random.nextInt(500);
        DirtyRecency d = new DirtyRecency(new int[] {pages});
        int[] expectedLast = new int[pages];
        int rounds = 1 + random.nextInt(6);
        for (int r = 0; r < rounds; r++) {
            TreeSet<Integer> dirty = new TreeSet<>();
            if (r == 0) {
                for (int q = 0; q < pages; q++) dirty.add(q);
            } else {
                int n = 1 + random.nextInt(pages);
                for (int i = 0; i < n; i++) dirty.add(random.nextInt(pages));
            }
            for (int q : dirty) {
                d.arrived(0, q);
                expectedLast[q] = r;
            }
        }
        // A round that starts above the previous round's last page is not seen as a new round: exclude that case from the check.
        WorkingSet ws = d.estimate();
        int previous = Integer.MAX_VALUE;
        Set<Integer> inQueue = new HashSet<>();
        for (PageRef ref : ws.pages()) {
            int last = d.lastRoundOf(ref);
            assertThat(last).as("rounds along the queue never increase").isLessThanOrEqualTo(previous).isPositive();
            previous = last;
            inQueue.add(ref.page());
        }
        for (int q = 0; q < pages; q++) {
            assertThat(inQueue.contains(q)).as("page %d in the queue iff re-sent", q).isEqualTo(d.lastRoundOf(p(0, q)) > 0);
            assertThat(d.lastRoundOf(p(0, q))).isLessThanOrEqualTo(expectedLast[q]);
        }
    }

    @Test
    void traceKeepsTheFirstTouchOfEachPage() {
        WorkingSet ws = FaultOrder.trace(List.of(new FaultOrder.Touch(p(0, 9), 10), new FaultOrder.Touch(p(0, 3), 20),
                new FaultOrder.Touch(p(0, 9), 30), new FaultOrder.Touch(p(1, 0), 40)), 1_000_000_000L);
        assertThat(ws.pages()).containsExactly(p(0, 9), p(0, 3), p(1, 0));
        assertThat(ws.entries()).extracting(WorkingSet.Entry::firstAccessNanos).containsExactly(10L, 20L, 40L);
        assertThat(ws.estimatedPageCount()).isEqualTo(3);
    }

    @Test
    void learnedIsThePrefetchThenTheFaults() {
        WorkingSet ws = FaultOrder.learned(List.of(p(0, 1), p(0, 2)), List.of(new FaultOrder.Touch(p(0, 7), 5),
                new FaultOrder.Touch(p(0, 2), 6), new FaultOrder.Touch(p(0, 8), 7)));
        assertThat(ws.pages()).containsExactly(p(0, 1), p(0, 2), p(0, 7), p(0, 8));
        assertThat(ws.entries().get(0).firstAccessNanos()).isEqualTo(WorkingSet.UNKNOWN_TIME);
        assertThat(ws.entries().get(2).firstAccessNanos()).isEqualTo(5);
    }

    @Test
    void aTraceAfterASampleIsTheMissesInTouchOrderThenTheSample() {
        // the guest touched 9 and 4 (which the sample missed; 4 twice); 2 is in the sample and was sent before, so never a miss
        WorkingSet ws = FaultOrder.traceAfterSample(List.of(p(0, 2), p(0, 3), p(0, 4)), List.of(new FaultOrder.Touch(p(0, 9), 11),
                new FaultOrder.Touch(p(0, 4), 12), new FaultOrder.Touch(p(0, 4), 13)), 3_000_000_000L, "dirty-bit");
        assertThat(ws.pages()).containsExactly(p(0, 9), p(0, 4), p(0, 2), p(0, 3));
        assertThat(ws.estimator()).isEqualTo(Estimator.TRACE);
        assertThat(ws.estimatedPageCount()).as("the union").isEqualTo(4);
        assertThat(ws.entries().get(1).firstAccessNanos()).isEqualTo(12);
        assertThat(ws.entries().get(2).firstAccessNanos()).isEqualTo(WorkingSet.UNKNOWN_TIME);
        assertThat(ws.description()).contains("dirty-bit sample prefetched: 2 pages it missed").contains("then the sample's 2 pages");
    }

    @Test
    void accessRecencyIsLruWithinTheWindow() {
        AccessRecency a = new AccessRecency(new int[] {10});
        a.scan(bits(1, 2, 3));
        a.scan(bits(3, 4));
        a.scan(bits(5, 1));
        assertThat(a.estimate(2).pages()).containsExactly(p(0, 1), p(0, 5), p(0, 3), p(0, 4));
        assertThat(a.estimate(3).pages()).containsExactly(p(0, 1), p(0, 5), p(0, 3), p(0, 4), p(0, 2));
        assertThat(a.sampledPageCount()).isEqualTo(2); // 7 accesses over 3 scans
        // CLOCK with aging: page 3 (referenced in scans 1 and 2) outranks page 4 (scan 2 only); page 1 (scans 1 and 3) ranks first.
        assertThat(a.clockOrder(3)).containsExactly(p(0, 1), p(0, 5), p(0, 3), p(0, 4), p(0, 2));
        assertThatThrownBy(() -> a.estimate(0)).hasMessageContaining("expected at least 1 scan");
    }

    private static BitSet[] bits(int... pages) {
        BitSet b = new BitSet();
        for (int q : pages) b.set(q);
        return new BitSet[] {b};
    }

    @Test
    void hybridSizeAndPrefetchFraction() {
        Sizing s = Sizing.HOTRESTORE;
        assertThat(s.workingSetPages(OptionalLong.of(1000), OptionalLong.of(2000))).isEqualTo(1300);
        assertThat(s.workingSetPages(OptionalLong.of(1000), OptionalLong.empty())).isEqualTo(1000);
        assertThat(s.workingSetPages(OptionalLong.empty(), OptionalLong.of(2000))).isEqualTo(2000);
        assertThatThrownBy(() -> s.workingSetPages(OptionalLong.empty(), OptionalLong.empty())).hasMessageContaining("actual neither");
        List<PageRef> queue = new ArrayList<>();
        for (int q = 0; q < 100; q++) queue.add(p(0, q));
        assertThat(s.prefetchPages(WorkingSet.of(Estimator.TRACE, queue, 60, "t"))).isEqualTo(30);
        assertThat(s.prefetchPages(WorkingSet.of(Estimator.TRACE, queue, 500, "t"))).as("at most the queue").isEqualTo(100);
        assertThatThrownBy(() -> new Sizing(-1, 1, 0.5)).hasMessageContaining("expected a, b >= 0");
    }

    @Test
    void workingSetRejectsRepeatsAndInvalidEstimators() {
        assertThatThrownBy(() -> WorkingSet.of(Estimator.TRACE, List.of(p(0, 1), p(0, 1)), 2, "t")).hasMessageContaining("appears twice");
        assertThatThrownBy(() -> WorkingSet.of(Estimator.INVALID, List.of(), 0, "t")).hasMessageContaining("expected an estimator");
        assertThat(Estimator.of(0)).isEqualTo(Estimator.INVALID);
        assertThat(Estimator.of(Estimator.DIRTY.code())).isEqualTo(Estimator.DIRTY);
        assertThat(Estimator.parse("Trace")).isEqualTo(Estimator.TRACE);
        assertThatThrownBy(() -> Estimator.parse("lru")).hasMessageContaining("actual 'lru'");
    }

    @Test
    void qualityAfterHotRestore() {
        List<PageRef> queue = List.of(p(0, 1), p(0, 2), p(0, 3), p(0, 4), p(0, 5));
        // Touched after the restore, in order: 2, 9, 1, 2 (repeat), 8, 3, 7, 4
        List<PageRef> touched = List.of(p(0, 2), p(0, 9), p(0, 1), p(0, 2), p(0, 8), p(0, 3), p(0, 7), p(0, 4));
        Quality q = Quality.of(queue, 4, touched);
        assertThat(q.hitRate()).as("first 4 distinct touches 2,9,1,8: 2 of them in {1,2,3,4}").isEqualTo(0.5);
        assertThat(q.accuracy()).as("first 5 touches 2,9,1,8,3: 3 of the 4 working-set pages").isEqualTo(0.75);
        assertThat(q.coverage()).as("4 of 7 distinct touched pages").isEqualTo(4.0 / 7);
    }
}
