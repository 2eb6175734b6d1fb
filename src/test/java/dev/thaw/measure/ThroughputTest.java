package dev.thaw.measure;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.thaw.guest.WsbenchTick;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class ThroughputTest {
    private static List<WsbenchTick> ticks(long... opsPerTick) {
        List<WsbenchTick> ticks = new ArrayList<>();
        ticks.add(new WsbenchTick(0, 0, 0, 999)); // the first tick only marks the start
        for (int i = 0; i < opsPerTick.length; i++) {
            ticks.add(new WsbenchTick(0, i + 1, (i + 1) * 100_000_000L, opsPerTick[i]));
        }
        return ticks;
    }

    @Test
    void meanAndOneSecondWindowsUseTheGuestClock() {
        long[] ops = new long[20];
        for (int i = 0; i < 20; i++) ops[i] = i < 10 ? 1_000 : 3_000;
        Throughput t = Throughput.of(ticks(ops), Throughput.ONE_SECOND_NANOS);
        assertThat(t.tickCount()).isEqualTo(21);
        assertThat(t.opsPerSecond()).isCloseTo(20_000, within(1e-6));
        assertThat(t.windowOpsPerSecond()).containsExactly(10_000.0, 30_000.0);
        assertThat(t.minWindow()).isEqualTo(10_000.0);
        assertThat(t.maxWindow()).isEqualTo(30_000.0);
    }

    @Test
    void tooFewTicksGiveZero() {
        assertThat(Throughput.of(List.of(new WsbenchTick(0, 0, 0, 5)), Throughput.ONE_SECOND_NANOS).opsPerSecond()).isZero();
    }

    @Test
    void aGuestClockThatRunsSlowIsSeenAgainstTheHostsClock() {
        List<WsbenchTick> ticks = new ArrayList<>();
        for (int i = 0; i <= 10; i++) ticks.add(new WsbenchTick(i * 500_000_000L, i, i * 100_000_000L, 1_000)); // 0.1 s of guest time per 0.5 s
        Throughput t = Throughput.of(ticks, Throughput.ONE_SECOND_NANOS);
        assertThat(t.opsPerSecond()).as("by the guest's clock").isCloseTo(10_000, within(1e-6));
        assertThat(t.guestClockRate()).isCloseTo(0.2, within(1e-9));
        assertThat(t.opsPerHostSecond()).as("by the host's clock").isCloseTo(2_000, within(1e-6));
        assertThat(Throughput.of(ticks(5, 5), Throughput.ONE_SECOND_NANOS).guestClockRate()).as("no host times: unknown").isZero();
    }
}
