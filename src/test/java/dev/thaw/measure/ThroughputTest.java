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
}
