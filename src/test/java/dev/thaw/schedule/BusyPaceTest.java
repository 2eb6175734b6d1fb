package dev.thaw.schedule;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.List;
import org.junit.jupiter.api.Test;

class BusyPaceTest {
    private static final long MS = 1_000_000L;
    private static final long MB_PER_S = 1_000_000L;

    @Test
    void aGuestCountsAsBusyUntilAWindowSaysOtherwiseAndIsPacedMeanwhile() {
        BusyPace pace = new BusyPace(10 * MB_PER_S); // 10 MB/s: 10 kB per ms
        pace.vcpuRunTime(0, 0, 1);
        assertThat(pace.busy()).isTrue();
        assertThat(pace.waitNanos(0, 0)).isZero();
        // 100 kB handed out at once: the allowance (nothing yet) is 100 kB short, 10 ms at the pace
        assertThat(pace.waitNanos(0, 100_000)).isEqualTo(10 * MS);
        assertThat(pace.waitNanos(5 * MS, 100_000)).isEqualTo(5 * MS);
        assertThat(pace.waitNanos(10 * MS, 100_000)).isZero();
    }

    @Test
    void anIdleWindowLiftsThePaceAndABusyOneRestoresItFromNothing() {
        BusyPace pace = new BusyPace(10 * MB_PER_S);
        pace.vcpuRunTime(0, 0, 1);
        pace.vcpuRunTime(100 * MS, 100 * MS, 1); // the first window, which may begin before the vCPU runs: not judged
        assertThat(pace.busy()).isTrue();
        pace.vcpuRunTime(200 * MS, 120 * MS, 1); // 20% on a CPU: idle
        assertThat(pace.busy()).isFalse();
        assertThat(pace.waitNanos(200 * MS, 500_000_000)).as("idle: unpaced").isZero();
        pace.vcpuRunTime(300 * MS, 200 * MS, 1); // 80%: busy again
        assertThat(pace.busy()).isTrue();
        assertThat(pace.waitNanos(300 * MS, 500_000_000)).as("what went while idle is not owed").isZero();
        assertThat(pace.waitNanos(300 * MS, 500_050_000)).isEqualTo(5 * MS);
        assertThat(List.of(pace.busyWindows(), pace.idleWindows())).containsExactly(1L, 1L);
    }

    @Test
    void theFirstWindowIsNotJudged() {
        BusyPace pace = new BusyPace(10 * MB_PER_S);
        pace.vcpuRunTime(0, 0, 1);
        pace.vcpuRunTime(100 * MS, 0, 1); // idle, but the vCPU may not have started yet
        assertThat(pace.busy()).isTrue();
        assertThat(List.of(pace.busyWindows(), pace.idleWindows())).containsExactly(0L, 0L);
    }

    @Test
    void aWindowEndsOnlyAfterItsLengthAndSharesAreAgainstTheVcpuCount() {
        BusyPace pace = new BusyPace(10 * MB_PER_S);
        pace.vcpuRunTime(0, 0, 2);
        pace.vcpuRunTime(100 * MS, 0, 2); // the first window: not judged
        pace.vcpuRunTime(150 * MS, 0, 2); // half a window: no decision yet
        assertThat(pace.busy()).isTrue();
        pace.vcpuRunTime(200 * MS, 90 * MS, 2); // 90 ms of 2 x 100 ms: 45%, idle
        assertThat(pace.busy()).isFalse();
        pace.vcpuRunTime(300 * MS, 190 * MS, 2); // 100 of 200: 50%, busy
        assertThat(pace.busy()).isTrue();
    }

    @Test
    void aQuietSpellWhileBusyBanksAtMostOneBurst() {
        BusyPace pace = new BusyPace(10 * MB_PER_S);
        pace.vcpuRunTime(0, 0, 1);
        pace.waitNanos(0, 0);
        // 10 s of nothing sent would allow 100 MB; only a burst of 128 KiB is banked
        assertThat(pace.waitNanos(10_000 * MS, BusyPace.BURST_BYTES)).isZero();
        assertThat(pace.waitNanos(10_000 * MS, BusyPace.BURST_BYTES + 10_000)).isEqualTo(1 * MS);
    }

    @Test
    void thePredictedQueueGoesAtFullSpeedAndOnlyTheAddressOrderIsPaced() {
        List<BlockShape> shapes = List.of(new BlockShape(1024, 1));
        List<dev.thaw.estimate.PageRef> predicted = java.util.stream.IntStream.range(500, 540)
                .mapToObj(p -> new dev.thaw.estimate.PageRef(0, p)).toList();
        PageScheduler s = new PageScheduler(shapes, (b, p) -> false, SchedulePolicy.defaults().withBusyBackgroundBytesPerSecond(4096L * 100),
                predicted);
        s.guestStarted(0);
        s.vcpuRunTime(0, 0, 1); // busy from the start
        int predictedSent = 0;
        while (predictedSent < predicted.size()) {
            assertThat(s.backgroundWaitNanos(0)).as("the queue is not held").isZero();
            List<PageRange> chunk = s.nextBackground();
            for (PageRange u : chunk) if (u.firstPage() >= 500 && u.firstPage() < 540) predictedSent++;
            assertThat(chunk.getFirst().firstPage()).as("queue first").isBetween(500, 539);
        }
        // the last chunk may have begun the address order: those pages are owed at the pace; then it holds
        for (int i = 0; i < 3 && s.backgroundWaitNanos(0) == 0; i++) s.nextBackground();
        assertThat(s.backgroundWaitNanos(0)).as("the address order is paced while the guest computes").isPositive();
    }

    @Test
    void refusesBadArguments() {
        assertThatThrownBy(() -> new BusyPace(0)).hasMessageContaining("expected > 0 bytes/s, actual 0");
        assertThatThrownBy(() -> new BusyPace(1).vcpuRunTime(0, 0, 0)).hasMessageContaining("vCPUs: expected >= 1, actual 0");
    }

    @Test
    void theSchedulerWaitsForTheBusyPaceOnlyWhenItHasOne() {
        List<BlockShape> shapes = List.of(new BlockShape(1024, 1));
        PageScheduler paced = new PageScheduler(shapes, (b, p) -> false, SchedulePolicy.defaults().withBusyBackgroundBytesPerSecond(4096L * 100),
                List.of());
        paced.guestStarted(0);
        paced.vcpuRunTime(0, 0, 1);
        assertThat(paced.backgroundWaitNanos(0)).isZero();
        int pages = paced.nextBackground().stream().mapToInt(PageRange::pageCount).sum();
        assertThat(paced.backgroundWaitNanos(0)).as("%d pages at 100 pages/s", pages).isEqualTo(pages * 10 * MS);
        paced.vcpuRunTime(100 * MS, 100 * MS, 1); // the first window: not judged
        paced.vcpuRunTime(200 * MS, 100 * MS, 1); // the guest idles
        assertThat(paced.backgroundWaitNanos(200 * MS)).isZero();
        paced.vcpuRunTime(300 * MS, 200 * MS, 1); // computes again
        paced.nextBackground();
        assertThat(paced.backgroundWaitNanos(300 * MS)).isPositive();
        paced.dropBusyPace();
        assertThat(paced.hasBusyPace()).isFalse();
        assertThat(paced.backgroundWaitNanos(300 * MS)).as("dropped: unpaced").isZero();
        PageScheduler unpaced = new PageScheduler(shapes, (b, p) -> false, SchedulePolicy.defaults(), List.of());
        unpaced.guestStarted(0);
        unpaced.vcpuRunTime(0, 0, 1);
        unpaced.nextBackground();
        assertThat(unpaced.backgroundWaitNanos(0)).isZero();
        assertThat(unpaced.hasBusyPace()).isFalse();
    }
}
