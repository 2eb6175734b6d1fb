package dev.thaw.measure;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

class ResponsivenessTest {
    static final long MS = 1_000_000L;

    /** Ticks every 100 ms from {@code from} to {@code to}, each with rate * 0.1 s * factor(t) ops. */
    static List<Responsiveness.Progress> ticks(long from, long to, double rate, java.util.function.LongToDoubleFunction factor) {
        List<Responsiveness.Progress> out = new ArrayList<>();
        for (long t = from; t <= to; t += 100 * MS) {
            out.add(new Responsiveness.Progress(t - 100 * MS, t, Math.round(rate * 0.1 * factor.applyAsDouble(t))));
        }
        return out;
    }

    @Test
    void stallThenFullSpeedGivesTtrAtTheEndOfTheStall() {
        // Guest runs from 0.5 s at 30% until 2.0 s, then at full speed until 10 s.
        List<Responsiveness.Progress> p = ticks(600 * MS, 10_000 * MS, 1000, t -> t <= 2000 * MS ? 0.3 : 1.0);
        Responsiveness r = new Responsiveness(p, 1000, 10_000 * MS);
        // Progress is spread over each tick's 100 ms: a window (s, s + 1 s] with s in [1.9, 2.0) holds
        // (2.0 - s) s at 30% and the rest at 100%: 1 - 0.7 (2.0 - s) >= 0.9 from s = 1.86 on (1.857 rounded up to the grid).
        assertThat(r.ttrNanos(1000 * MS, 0.9)).contains(1860 * MS);
        // The worst window is the first: (0, 1 s] holds only the slow progress from 0.5 s on (5 ticks of 30).
        assertThat(r.mmu(1000 * MS, 0)).isCloseTo(0.15, within(1e-9));
        assertThat(r.mmu(1000 * MS, 2000 * MS)).isCloseTo(1.0, within(1e-9));
        assertThat(r.utilization(3000 * MS, 1000 * MS)).isCloseTo(1.0, within(1e-9));
    }

    @Test
    void aGuestThatNeverRecoversHasNoTtr() {
        Responsiveness r = new Responsiveness(ticks(100 * MS, 5000 * MS, 1000, t -> 0.5), 1000, 5000 * MS);
        assertThat(r.ttrNanos(1000 * MS, 0.9)).isEmpty();
        assertThat(r.ttrNanos(1000 * MS, 0.4)).as("every window holds ten half-speed ticks").contains(0L);
    }

    @Test
    void aLateDipMovesTtrPastIt() {
        // Full speed, except a dip at 4.0-4.5 s.
        Responsiveness r = new Responsiveness(ticks(100 * MS, 8000 * MS, 1000, t -> t > 4000 * MS && t <= 4500 * MS ? 0.0 : 1.0),
                1000, 8000 * MS);
        // Windows overlapping the dip by more than 0.1 s fall below 0.9; the last such starts just before 4.4 s.
        assertThat(r.ttrNanos(1000 * MS, 0.9)).contains(4400 * MS);
    }

    @Test
    void arrivalJitterDoesNotMoveUtilizationByAWholeTick() {
        // Reports arrive late by 0-40 ms but still cover their 100 ms: a steady guest stays near 1.0.
        Random random = new Random(5);
        List<Responsiveness.Progress> p = new ArrayList<>();
        for (long t = 100 * MS; t <= 6000 * MS; t += 100 * MS) {
            long arrival = t + random.nextInt(40) * MS;
            p.add(new Responsiveness.Progress(arrival - 100 * MS, arrival, 100));
        }
        Responsiveness r = new Responsiveness(p, 1000, 6000 * MS);
        assertThat(r.mmu(1000 * MS, 200 * MS)).isGreaterThan(0.93);
        assertThat(r.ttrNanos(1000 * MS, 0.9)).contains(0L);
    }

    @Test
    void slidingWindowsMatchTheDirectSum() {
        Random random = new Random(11);
        List<Responsiveness.Progress> p = ticks(0, 6000 * MS, 1000, t -> random.nextDouble() * 1.2);
        Responsiveness r = new Responsiveness(p, 1000, 6000 * MS);
        for (long s = 0; s + 1000 * MS <= 6000 * MS; s += 370 * MS) {
            long start = s - s % Responsiveness.STEP_NANOS;
            assertThat(r.utilization(start, 1000 * MS)).isGreaterThanOrEqualTo(r.mmu(1000 * MS, 0) - 1e-12);
        }
    }

    @Test
    void ticksArePlacedOnTheGuestClockNotOnTheirBurstyArrival() {
        // The guest prints a tick every 100 ms of its clock (which starts at 5 s here); the host reads them late and in bursts
        // of three, the least-delayed 2 ms after printing. The origin (host time 0) is 1 s before the first tick.
        long origin = 1_000 * MS;
        List<dev.thaw.guest.WsbenchTick> ticks = new ArrayList<>();
        for (int i = 0; i < 30; i++) {
            long guest = 5_000 * MS + i * 100 * MS;
            long printedAtHost = origin + 1_000 * MS + i * 100 * MS;
            long read = printedAtHost + 2 * MS + (2 - i % 3) * 100 * MS; // bursts: read when every third tick is printed
            ticks.add(new dev.thaw.guest.WsbenchTick(read, i, guest, 1000));
        }
        List<Responsiveness.Progress> p = Responsiveness.fromTicks(ticks, origin);
        assertThat(p).hasSize(29);
        assertThat(p.getFirst().fromNanos()).isEqualTo(1_002 * MS);
        assertThat(p.getFirst().toNanos()).isEqualTo(1_102 * MS);
        // Evenly spread at 10,000 ops/s: every 1 s window after the first tick has the same utilization.
        Responsiveness r = new Responsiveness(p, 10_000, 3_900 * MS);
        assertThat(r.utilization(1_102 * MS, 1_000 * MS)).isCloseTo(1.0, within(1e-9));
        assertThat(r.utilization(1_452 * MS, 1_000 * MS)).isCloseTo(1.0, within(1e-9));
        // The window from 1.00 s holds 0.998 s of progress (>= 0.99); the one from 0.99 s only 0.988 s.
        assertThat(r.ttrNanos(1_000 * MS, 0.99)).contains(1_000 * MS);
    }
}
