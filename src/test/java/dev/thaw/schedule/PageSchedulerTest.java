package dev.thaw.schedule;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.estimate.PageRef;
import dev.thaw.testing.Seeds;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** Every rule of the page scheduler (package-info), without QEMU. */
class PageSchedulerTest {
    private static final ZeroPages NONE_ZERO = (b, p) -> false;

    private static PageScheduler scheduler(int pageCount, SchedulePolicy policy, List<PageRef> predicted) {
        return new PageScheduler(List.of(new BlockShape(pageCount, 1)), NONE_ZERO, policy, predicted);
    }

    private static PageRange page(int block, int page) {
        return new PageRange(block, page, 1);
    }

    private static List<Integer> pages(List<PageRange> units) {
        List<Integer> out = new ArrayList<>();
        for (PageRange u : units) for (int p = u.firstPage(); p < u.endPage(); p++) out.add(p);
        return out;
    }

    /** Background chunks until the scheduler has nothing left, concatenated. */
    private static List<Integer> drain(PageScheduler s) {
        List<Integer> out = new ArrayList<>();
        while (!s.finished()) out.addAll(pages(s.nextBackground()));
        return out;
    }

    @Test
    void prefetchHandsOutEachUnitOnceInTheOrderGiven() {
        PageScheduler s = scheduler(16, SchedulePolicy.defaults(), List.of());
        List<PageRange> units = s.prefetch(List.of(new PageRef(0, 7), new PageRef(0, 2), new PageRef(0, 7), new PageRef(0, 3)));
        assertThat(units).containsExactly(page(0, 7), page(0, 2), page(0, 3));
        assertThat(s.isSent(0, 7)).isTrue();
        assertThat(s.isSent(0, 4)).isFalse();
    }

    /** The pages of {@code first .. first+count} of block 0, as a working set in address order. */
    private static List<PageRef> run(int first, int count) {
        List<PageRef> out = new ArrayList<>();
        for (int p = first; p < first + count; p++) out.add(new PageRef(0, p));
        return out;
    }

    @Test
    void aFullRegionOfTheWorkingSetGoesWholeAndTheRestPageByPage() {
        PageScheduler s = scheduler(2048, SchedulePolicy.defaults(), List.of());
        List<PageRef> ws = new ArrayList<>(List.of(new PageRef(0, 1500)));
        ws.addAll(run(512, 512));
        ws.add(new PageRef(0, 3));
        assertThat(s.wholeRegions(ws)).containsExactly(new PageRange(0, 512, 512));
        assertThat(s.prefetch(ws)).as("the whole region is handed out already").containsExactly(page(0, 1500), page(0, 3));
        assertThat(s.discards().ranges()).as("after whole regions: the complement").containsExactly(new PageRange(0, 0, 3),
                new PageRange(0, 4, 508), new PageRange(0, 1024, 476), new PageRange(0, 1501, 547));
    }

    @Test
    void aWholeRegionSendsItsNonZeroPagesFirstThenItsZeroPages() {
        BitSet zero = new BitSet();
        zero.set(0, 10); // the region starts with zero pages: a zero record first would map the huge zero page
        zero.set(100);
        PageScheduler s = new PageScheduler(List.of(new BlockShape(512, 1)), (b, p) -> zero.get(p), SchedulePolicy.defaults(), List.of());
        List<PageRange> units = s.wholeRegions(run(0, 512));
        assertThat(units).containsExactly(new PageRange(0, 10, 90), new PageRange(0, 101, 411), new PageRange(0, 0, 10),
                new PageRange(0, 100, 1));
        assertThat(s.discards().takenBack()).as("everything handed out: one unit is taken back").isPresent();
    }

    @Test
    void aRegionGoesWholeOnlyIfHalfOfItIsWorkingSetAndAtMostAnEighthIsNot() {
        BitSet zero = new BitSet();
        zero.set(1024 + 400, 1024 + 512); // region 2: 112 zero pages
        ZeroPages zeros = (b, p) -> zero.get(p);
        PageScheduler s = new PageScheduler(List.of(new BlockShape(4096, 1)), zeros, SchedulePolicy.defaults(), List.of());
        List<PageRef> ws = new ArrayList<>();
        ws.addAll(run(0, 255)); // region 0: 255 of 512, short of half
        ws.addAll(run(512, 448)); // region 1: 64 non-zero pages left out: whole
        ws.addAll(run(1024, 256)); // region 2: 256 in, 144 non-zero pages left out: too many
        ws.addAll(run(1536 + 300, 212)); // region 3: its last 212 pages, none zero: short of half
        ws.addAll(run(2048, 400)); // region 4: 400 in, 112 left out
        ws.addAll(run(3072 + 50, 462)); // region 6: 50 left out
        assertThat(s.wholeRegions(ws)).containsExactly(new PageRange(0, 512, 512), new PageRange(0, 3072, 512));
        PageScheduler t = new PageScheduler(List.of(new BlockShape(4096, 1)), zeros, SchedulePolicy.defaults(), List.of());
        assertThat(t.wholeRegions(run(1024, 400))).as("region 2 with its zero pages: nothing non-zero left out")
                .containsExactly(new PageRange(0, 1024, 400), new PageRange(0, 1024 + 400, 112));
    }

    @Test
    void aUnitTakenBackInsideAWholeRegionIsHandedOutAgainOnce() {
        PageScheduler s = scheduler(512, SchedulePolicy.defaults(), List.of());
        assertThat(s.wholeRegions(run(0, 512))).containsExactly(new PageRange(0, 0, 512));
        PageScheduler.Discards d = s.discards();
        assertThat(d.takenBack()).contains(page(0, 511));
        assertThat(d.ranges()).containsExactly(page(0, 511));
        s.guestStarted(0);
        assertThat(drain(s)).as("sent before the discard, discarded, sent again after LISTEN").containsExactly(511);
        assertThat(s.request(0, 511).duplicate()).isTrue();
    }

    @Test
    void noWholeRegionsOnHugetlbBlocksOrPastABlockEnd() {
        PageScheduler huge = new PageScheduler(List.of(new BlockShape(1024, 512)), NONE_ZERO, SchedulePolicy.defaults(), List.of());
        assertThat(huge.wholeRegions(run(0, 512))).isEmpty();
        PageScheduler s = scheduler(700, SchedulePolicy.defaults(), List.of());
        assertThat(s.wholeRegions(run(512, 188))).as("pages 512..699: a region cut by the block's end").isEmpty();
        assertThat(s.isSent(0, 600)).isFalse();
    }

    @Test
    void wholeRegionsFollowTheOrderOfTheirFirstPageInTheWorkingSet() {
        PageScheduler s = scheduler(2048, SchedulePolicy.defaults(), List.of());
        List<PageRef> ws = new ArrayList<>(run(1536, 512));
        ws.addAll(run(0, 512));
        assertThat(s.wholeRegions(ws)).containsExactly(new PageRange(0, 1536, 512), new PageRange(0, 0, 512));
        assertThat(s.wholeRegions(ws)).as("handed out once").isEmpty();
    }

    @Test
    void theDiscardIsTheFirstUnitNotPrefetched() {
        PageScheduler s = new PageScheduler(List.of(new BlockShape(8, 1), new BlockShape(4, 1)), NONE_ZERO, SchedulePolicy.defaults(),
                List.of());
        s.prefetch(List.of(new PageRef(0, 0), new PageRef(0, 3), new PageRef(0, 4), new PageRef(1, 3)));
        PageScheduler.Discards d = s.discards();
        assertThat(d.takenBack()).isEmpty();
        assertThat(d.ranges()).as("POSTCOPY_ADVISE discarded all RAM: one unit is enough").containsExactly(new PageRange(0, 1, 1));
        assertThat(s.isSent(0, 1)).as("a discard is not a send").isFalse();

        PageScheduler huge = new PageScheduler(List.of(new BlockShape(8, 1), new BlockShape(2048, 512)), NONE_ZERO,
                SchedulePolicy.defaults(), List.of());
        huge.prefetch(List.of(new PageRef(0, 0), new PageRef(0, 1), new PageRef(0, 2), new PageRef(0, 3), new PageRef(0, 4),
                new PageRef(0, 5), new PageRef(0, 6), new PageRef(0, 7), new PageRef(1, 10)));
        assertThat(huge.discards().ranges()).as("a whole unit of a hugetlb block").containsExactly(new PageRange(1, 512, 512));
    }

    @Test
    void afterWholeRegionsTheDiscardIsExactlyThePagesNotPrefetched() {
        PageScheduler s = new PageScheduler(List.of(new BlockShape(1024, 1), new BlockShape(4, 1)), NONE_ZERO, SchedulePolicy.defaults(),
                List.of());
        List<PageRef> ws = new ArrayList<>(run(512, 512));
        ws.add(new PageRef(0, 3));
        ws.add(new PageRef(1, 3));
        assertThat(s.wholeRegions(ws)).hasSize(1);
        s.prefetch(ws);
        PageScheduler.Discards d = s.discards();
        assertThat(d.takenBack()).isEmpty();
        assertThat(d.ranges()).containsExactly(new PageRange(0, 0, 3), new PageRange(0, 4, 508), new PageRange(1, 0, 3));
    }

    @Test
    void everythingPrefetchedTakesBackTheLastUnitOfTheFirstBlock() {
        PageScheduler s = new PageScheduler(List.of(new BlockShape(1024, 512), new BlockShape(2, 1)), NONE_ZERO,
                SchedulePolicy.defaults(), List.of());
        s.prefetch(List.of(new PageRef(0, 0), new PageRef(0, 600), new PageRef(1, 0), new PageRef(1, 1)));
        PageScheduler.Discards d = s.discards();
        assertThat(d.ranges()).containsExactly(new PageRange(0, 512, 512));
        assertThat(d.takenBack()).contains(new PageRange(0, 512, 512));
        s.guestStarted(0);
        assertThat(drain(s)).hasSize(512).startsWith(512).endsWith(1023);
    }

    @Test
    void aRequestSendsThePageAndThreeNeighboursClippedAtTheBlockEnd() {
        PageScheduler s = scheduler(10, SchedulePolicy.defaults(), List.of());
        s.prefetch(List.of(new PageRef(0, 5)));
        PageScheduler.Demand d = s.request(0, 3);
        assertThat(d.duplicate()).isFalse();
        assertThat(d.units()).as("page 5 was prefetched: skipped, not ending the neighbours").containsExactly(page(0, 3), page(0, 4),
                page(0, 6));
        assertThat(s.request(0, 8).units()).containsExactly(page(0, 8), page(0, 9));
    }

    @Test
    void aRequestForAPageHandedOutAlreadyIsADuplicate() {
        PageScheduler s = scheduler(10, SchedulePolicy.defaults(), List.of());
        s.request(0, 0);
        PageScheduler.Demand again = s.request(0, 2);
        assertThat(again.duplicate()).isTrue();
        assertThat(again.units()).isEmpty();
    }

    @Test
    void tracingSendsNoNeighbours() {
        PageScheduler s = scheduler(10, SchedulePolicy.defaults().tracing(1_000_000_000L), List.of());
        assertThat(s.request(0, 3).units()).containsExactly(page(0, 3));
    }

    @Test
    void aRequestInAHugeBlockSendsItsWholeUnitAndNoNeighbours() {
        PageScheduler s = new PageScheduler(List.of(new BlockShape(2048, 512)), NONE_ZERO, SchedulePolicy.defaults(), List.of());
        assertThat(s.request(0, 700).units()).containsExactly(new PageRange(0, 512, 512));
        assertThat(s.request(0, 1023).duplicate()).isTrue();
    }

    @Test
    void theBackgroundFollowsTheNewestFaultsRegionFromTheFaultOnThenItsStart() {
        // Regions of 8 pages; fault at 20 (region 16..23), then at 42 (region 40..47).
        PageScheduler s = scheduler(64, SchedulePolicy.defaults().withFaultRegionPages(8), List.of());
        s.guestStarted(0);
        s.request(0, 20); // sends 20..23
        s.request(0, 42); // sends 42..45
        List<Integer> order = drain(s);
        assertThat(order.subList(0, 8)).as("the newest fault's region: 46, 47, then its start 40, 41; then the older: 16..19")
                .containsExactly(46, 47, 40, 41, 16, 17, 18, 19);
        assertThat(order.subList(8, order.size())).as("then address order").isSorted();
        assertThat(order).hasSize(64 - 8);
    }

    @Test
    void withoutFaultRegionsTheBackgroundGoesByAddress() {
        PageScheduler s = scheduler(64, SchedulePolicy.defaults().withFaultRegionPages(0), List.of());
        s.guestStarted(0);
        s.request(0, 42);
        List<Integer> order = drain(s);
        assertThat(order).isSorted().hasSize(60).doesNotContain(42, 43, 44, 45);
    }

    @Test
    void thePredictedQueueGoesBeforeAddressOrderAndAfterFaultRegions() {
        List<PageRef> predicted = List.of(new PageRef(0, 50), new PageRef(0, 9), new PageRef(0, 51));
        PageScheduler s = scheduler(64, SchedulePolicy.defaults().withFaultRegionPages(8), predicted);
        s.guestStarted(0);
        s.request(0, 1); // 1..4; region 0..7: then 5, 6, 7, 0
        List<Integer> order = drain(s);
        assertThat(order.subList(0, 7)).containsExactly(5, 6, 7, 0, 50, 9, 51);
        assertThat(order.subList(7, order.size())).isSorted();
    }

    @Test
    void zeroPagesAreNeverSentInTheBackgroundButAnsweredOnDemand() {
        ZeroPages evenZero = (b, p) -> p % 2 == 0;
        PageScheduler s = new PageScheduler(List.of(new BlockShape(16, 1)), evenZero, SchedulePolicy.defaults().withFaultRegionPages(0),
                List.of(new PageRef(0, 4)));
        s.guestStarted(0);
        assertThat(s.request(0, 2).units()).as("a requested zero page is sent (as a zero record)").contains(page(0, 2));
        List<Integer> order = drain(s);
        assertThat(order).allMatch(p -> p % 2 == 1).doesNotContain(3, 5);
        assertThat(s.zeroPagesUnsent()).isEqualTo(6); // 0, 6, 8, ..., 14: 2 and its neighbour 4 went on demand
    }

    @Test
    void aHugeUnitWithOneNonZeroPageIsSentWhole() {
        ZeroPages onlyOne = (b, p) -> p != 700;
        PageScheduler s = new PageScheduler(List.of(new BlockShape(2048, 512)), onlyOne, SchedulePolicy.defaults(), List.of());
        s.guestStarted(0);
        List<PageRange> all = new ArrayList<>();
        while (!s.finished()) all.addAll(s.nextBackground());
        assertThat(all).containsExactly(new PageRange(0, 512, 512));
        assertThat(s.zeroPagesUnsent()).isEqualTo(1536);
    }

    @Test
    void chunksDoubleUpToTheMaximumAndShrinkAtEachRequest() {
        PageScheduler s = scheduler(1000, SchedulePolicy.defaults().withMaxChunkPages(16).withFaultRegionPages(0), List.of());
        s.guestStarted(0);
        List<Integer> sizes = new ArrayList<>();
        for (int i = 0; i < 4; i++) sizes.add(s.nextBackground().size());
        s.request(0, 900);
        sizes.add(s.nextBackground().size());
        assertThat(sizes).containsExactly(4, 8, 16, 16, 4);
    }

    @Test
    void theHoldAndThePaceDelayOnlyTheBackground() {
        SchedulePolicy paced = new SchedulePolicy(3, 32, 0, 100_000_000L, 4096L * 1000, 0, false); // hold 100 ms, then 1000 pages/s
        PageScheduler s = scheduler(100, paced, List.of());
        assertThatThrownBy(() -> s.backgroundWaitNanos(0)).hasMessageContaining("before the guest started");
        s.guestStarted(1_000_000_000L);
        assertThat(s.backgroundWaitNanos(1_000_000_000L)).isEqualTo(100_000_000L);
        assertThat(s.request(0, 50).units()).as("demand is never held").hasSize(4);
        assertThat(s.backgroundWaitNanos(1_100_000_000L)).isZero();
        assertThat(s.nextBackground()).hasSize(4);
        // 4 pages at 1000 pages/s: the next chunk is due 4 ms after the hold ended.
        assertThat(s.backgroundWaitNanos(1_100_000_000L)).isEqualTo(4_000_000L);
        assertThat(s.backgroundWaitNanos(1_105_000_000L)).isZero();
    }

    @Test
    void aPageOutsideTheBlocksIsRefusedNamingIt() {
        PageScheduler s = scheduler(10, SchedulePolicy.defaults(), List.of());
        assertThatThrownBy(() -> s.request(0, 10)).hasMessageContaining("actual 0/10");
        assertThatThrownBy(() -> s.request(1, 0)).hasMessageContaining("actual 1/0");
        assertThatThrownBy(() -> s.prefetch(List.of(new PageRef(0, 11)))).hasMessageContaining("actual 0/11");
    }

    /**
     * Seeded: random blocks (some of 2 MiB units), zero pages, prefetch, predicted queue and an interleaving of requests and
     * background chunks. Every unit is handed out at most once, discards are exactly what was not prefetched, and at the end
     * every non-zero page was handed out.
     */
    @Test
    void randomSchedulesHandOutEveryNonZeroPageExactlyOnce() {
        // (including after a recovery: every page not received is handed out again exactly once)
        Random random = Seeds.random("randomSchedulesHandOutEveryNonZeroPageExactlyOnce");
        for (int round = 0; round < 200; round++) {
            int blockCount = 1 + random.nextInt(3);
            List<BlockShape> shapes = new ArrayList<>();
            for (int b = 0; b < blockCount; b++) {
                int unit = random.nextInt(4) == 0 ? 512 : 1;
                shapes.add(new BlockShape(unit * (1 + random.nextInt(unit == 1 ? 3000 : 6)), unit));
            }
            BitSet[] zero = new BitSet[blockCount];
            double zeroShare = random.nextDouble();
            for (int b = 0; b < blockCount; b++) {
                zero[b] = new BitSet();
                for (int p = 0; p < shapes.get(b).pageCount(); p++) if (random.nextDouble() < zeroShare) zero[b].set(p);
            }
            SchedulePolicy policy = new SchedulePolicy(random.nextInt(8), 4 << random.nextInt(6),
                    random.nextBoolean() ? 0 : 1 << random.nextInt(11), 0, 0, 0, random.nextBoolean());
            List<PageRef> prefetch = randomPages(random, shapes, random.nextInt(200));
            for (int b = 0; b < blockCount; b++) { // some nearly whole 2 MiB regions, for the whole-region prefetch
                int regions = shapes.get(b).pageCount() / PageScheduler.REGION_PAGES;
                if (regions == 0 || random.nextBoolean()) continue;
                int first = random.nextInt(regions) * PageScheduler.REGION_PAGES;
                double share = 0.8 + 0.2 * random.nextDouble();
                for (int p = first; p < first + PageScheduler.REGION_PAGES; p++) if (random.nextDouble() < share) prefetch.add(new PageRef(b, p));
            }
            java.util.Collections.shuffle(prefetch, random);
            List<PageRef> predicted = randomPages(random, shapes, random.nextInt(200));
            PageScheduler s = new PageScheduler(shapes, (b, p) -> zero[b].get(p), policy, predicted);
            BitSet[] handedOut = new BitSet[blockCount];
            for (int b = 0; b < blockCount; b++) handedOut[b] = new BitSet();
            String where = "round " + round + " " + shapes + " " + policy;

            record Check(BitSet[] handedOut, String where) {
                void take(PageRange u) {
                    BitSet h = handedOut[u.block()];
                    assertThat(h.get(u.firstPage(), u.endPage()).isEmpty()).as(where + ": " + u + " handed out twice").isTrue();
                    h.set(u.firstPage(), u.endPage());
                }
            }
            Check check = new Check(handedOut, where);
            int[] wholeUnits = new int[blockCount];
            if (policy.wholeRegionPrefetch()) {
                for (PageRange u : s.wholeRegions(prefetch)) {
                    check.take(u);
                    wholeUnits[u.block()]++;
                }
            }
            s.prefetch(prefetch).forEach(check::take);
            PageScheduler.Discards discards = s.discards();
            discards.takenBack().ifPresent(u -> handedOut[u.block()].clear(u.firstPage(), u.endPage()));
            BitSet[] discarded = new BitSet[blockCount];
            for (int b = 0; b < blockCount; b++) discarded[b] = new BitSet();
            for (PageRange r : discards.ranges()) discarded[r.block()].set(r.firstPage(), r.endPage());
            boolean anyWhole = java.util.Arrays.stream(wholeUnits).sum() > 0;
            for (int b = 0; b < blockCount; b++) {
                BitSet notSent = new BitSet();
                notSent.set(0, shapes.get(b).pageCount());
                notSent.andNot(handedOut[b]);
                BitSet outside = (BitSet) discarded[b].clone();
                outside.and(handedOut[b]);
                assertThat(outside.isEmpty()).as(where + ": discards of block " + b + " hold only pages not handed out").isTrue();
                if (anyWhole) assertThat(discarded[b]).as(where + ": after whole regions, discards of block " + b).isEqualTo(notSent);
            }
            assertThat(discards.ranges()).as(where + ": at least one discard").isNotEmpty();
            if (!anyWhole) assertThat(discards.ranges()).as(where + ": one unit").hasSize(1);
            s.guestStarted(0);
            int steps = 0;
            // Half the rounds lose their connection once: the destination received most, not all, of what was handed out.
            int breakAt = random.nextBoolean() ? random.nextInt(50) : -1;
            while (!s.finished()) {
                if (steps == breakAt) {
                    List<BitSet> received = new ArrayList<>();
                    for (int b = 0; b < blockCount; b++) {
                        BitSet r = (BitSet) handedOut[b].clone();
                        int unit = shapes.get(b).unitPages();
                        for (int p = r.nextSetBit(0); p >= 0; p = r.nextSetBit(p + unit)) {
                            if (random.nextInt(10) == 0) r.clear(p, p + unit); // in flight when the connection broke
                        }
                        received.add(r);
                        handedOut[b] = (BitSet) r.clone();
                    }
                    s.resume(received);
                }
                if (random.nextInt(3) == 0) {
                    int b = random.nextInt(blockCount);
                    if (shapes.get(b).pageCount() == 0) continue;
                    int p = random.nextInt(shapes.get(b).pageCount());
                    PageScheduler.Demand d = s.request(b, p);
                    assertThat(d.duplicate()).as(where).isEqualTo(handedOut[b].get(p));
                    d.units().forEach(check::take);
                    if (!d.duplicate()) assertThat(d.units().getFirst().firstPage()).isEqualTo(p - p % shapes.get(b).unitPages());
                } else {
                    s.nextBackground().forEach(check::take);
                }
                assertThat(++steps).as(where + ": steps").isLessThan(100_000);
            }
            for (int b = 0; b < blockCount; b++) {
                BitSet missing = new BitSet();
                missing.set(0, shapes.get(b).pageCount());
                missing.andNot(handedOut[b]);
                missing.and(complement(zero[b], shapes.get(b).pageCount()));
                assertThat(missing.isEmpty()).as(where + ": non-zero pages of block " + b + " never handed out: " + missing).isTrue();
            }
            long zeroUnsent = s.zeroPagesUnsent();
            long notHanded = 0;
            for (int b = 0; b < blockCount; b++) notHanded += shapes.get(b).pageCount() - handedOut[b].cardinality();
            assertThat(zeroUnsent).as(where).isEqualTo(notHanded);
        }
    }

    @Test
    void afterRecoveryOnlyPagesNotReceivedGoAgainFromTheStartOfTheBackground() {
        PageScheduler s = scheduler(16, SchedulePolicy.defaults(), List.of(new PageRef(0, 9)));
        s.prefetch(List.of(new PageRef(0, 0), new PageRef(0, 1)));
        s.discards();
        s.guestStarted(0);
        assertThat(pages(s.request(0, 4).units())).containsExactly(4, 5, 6, 7);
        BitSet received = new BitSet();
        received.set(0, 2);
        received.set(4); // 5..7 were in flight when the connection broke
        s.resume(List.of(received));
        assertThat(s.isSent(0, 5)).isFalse();
        assertThat(s.request(0, 4).duplicate()).isTrue();
        assertThat(drain(s)).as("the predicted queue, then by address, once each").containsExactly(9, 2, 3, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15);
        BitSet tooLong = new BitSet();
        tooLong.set(16);
        assertThatThrownBy(() -> s.resume(List.of(tooLong))).hasMessageContaining("expected pages below 16, actual page 16");
        assertThatThrownBy(() -> s.resume(List.of())).hasMessageContaining("expected one per block (1), actual 0");
    }

    private static BitSet complement(BitSet set, int size) {
        BitSet c = new BitSet();
        c.set(0, size);
        c.andNot(set);
        return c;
    }

    private static List<PageRef> randomPages(Random random, List<BlockShape> shapes, int count) {
        List<PageRef> out = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            int b = random.nextInt(shapes.size());
            if (shapes.get(b).pageCount() > 0) out.add(new PageRef(b, random.nextInt(shapes.get(b).pageCount())));
        }
        return out;
    }

    @Test
    void policyValuesAreCheckedNamingTheKnob() {
        assertThat(SchedulePolicy.defaults().faultRegionPages()).isEqualTo(SchedulePolicy.DEFAULT_FAULT_REGION_PAGES);
        assertThat(SchedulePolicy.defaults().withFaultRegionPages(1024).faultRegionPages()).isEqualTo(1024);
        assertThatThrownBy(() -> SchedulePolicy.defaults().withFaultRegionPages(500))
                .hasMessageContaining("expected 0 or a power of two").hasMessageContaining("actual 500");
        assertThatThrownBy(() -> SchedulePolicy.defaults().withMaxChunkPages(2)).hasMessageContaining("chunk pages").hasMessageContaining("actual 2");
        assertThatThrownBy(() -> SchedulePolicy.defaults().withBackgroundBytesPerSecond(-1)).hasMessageContaining("actual -1");
        assertThatThrownBy(() -> new BlockShape(100, 512)).hasMessageContaining("multiple of unitPages");
        assertThat(Set.of(SchedulePolicy.MIN_CHUNK_PAGES)).contains(4);
    }
}
