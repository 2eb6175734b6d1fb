package dev.thaw.measure;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.thaw.guest.WsbenchTick;
import dev.thaw.testing.Seeds;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

class AfterRestoreTest {
    @Test
    void theMmuCurveIsTheLowestMeanOfEveryWindow() {
        List<Double> curve = AfterRestore.mmuCurve(List.of(0.0, 0.0, 1.0, 1.0, 0.5, 1.0));
        assertThat(curve).hasSize(6);
        assertThat(curve.get(0)).isZero();
        assertThat(curve.get(1)).isZero();
        assertThat(curve.get(2)).isCloseTo(1 / 3.0, within(1e-12));
        assertThat(curve.get(3)).isCloseTo(0.5, within(1e-12));
        assertThat(curve.get(5)).isCloseTo(3.5 / 6, within(1e-12));
    }

    @Test
    void theMmuCurveMatchesABruteForceMinimum() {
        Random rnd = Seeds.random("AfterRestoreTest.theMmuCurveMatchesABruteForceMinimum");
        List<Double> steps = new ArrayList<>();
        for (int i = 0; i < 40; i++) steps.add(rnd.nextDouble() * 1.2);
        List<Double> curve = AfterRestore.mmuCurve(steps);
        for (int k = 1; k <= steps.size(); k++) {
            double min = Double.MAX_VALUE;
            for (int i = 0; i + k <= steps.size(); i++) {
                double sum = 0;
                for (int j = i; j < i + k; j++) sum += steps.get(j);
                min = Math.min(min, sum / k);
            }
            assertThat(curve.get(k - 1)).as("window of %d steps (seed printed above)", k).isCloseTo(min, within(1e-9));
        }
    }

    static final long MS = 1_000_000L;

    /**
     * A restored console as the bench saw it (issue 12: TTR 0.71 s for a guest running after 1.08 s): the guest was saved at
     * its clock's 50.06 s, 60 ms into a tick's interval, with its last two ticks still in its serial driver's buffer, which
     * sends them once the restored guest runs. The guest runs 1.08 s after the restore's start, then at exactly the rate
     * before. Placed on the guest's clock, the buffered ticks and the first new one (60 of its 100 ops done before the save)
     * fall before 1.08 s: none of that may be credited.
     */
    @Test
    void workDoneBeforeTheSaveIsNotCreditedToTheRestoreEvenWhenItsTicksArriveAfterIt() {
        long origin = 100_000 * MS;
        long running = 1_080 * MS;
        long savedGuest = 50_060 * MS;
        double rate = 1000; // ops/s before the save: a tick of 100 ms does 100
        List<WsbenchTick> ticks = new ArrayList<>();
        long arrival = origin + running + 5 * MS;
        ticks.add(new WsbenchTick(arrival, 498, 49_900 * MS, 100)); // printed before the save, sent after the restore
        ticks.add(new WsbenchTick(arrival + MS, 499, 50_000 * MS, 100));
        for (int i = 0; i < 60; i++) {
            long guest = 50_100 * MS + i * 100 * MS; // the first tick 40 ms after the guest runs again
            long printed = origin + running + (guest - savedGuest);
            ticks.add(new WsbenchTick(printed + 2 * MS, 500 + i, guest, 100));
        }
        AfterRestore after = AfterRestore.fromTicks(ticks, origin, running, rate, Duration.ofSeconds(5));
        // Nothing before the guest ran: the steps of 250 ms up to 1.0 s are empty, and TTR is not earlier than running.
        assertThat(after.utilizationPerStep().subList(0, 4)).containsOnly(0.0);
        assertThat(after.ttrSeconds()).hasValueSatisfying(t -> assertThat(t).isGreaterThanOrEqualTo(1.08));
        // The first 5 s after it hold 5 s of work at the rate before, less the 2 ms the console adds: no more.
        assertThat(after.relativeThroughput()).isCloseTo(1.0, within(0.005));
        // The guest ran at the rate before from 1.08 s: responsive from then, not 0.2 s earlier by a window that reaches past it.
        assertThat(after.ttrSeconds()).hasValueSatisfying(t -> assertThat(t).isCloseTo(1.08, within(1e-9)));
    }

    /**
     * The stall TTR follows the guest's stalled time, not its rate: a guest whose rate halves for two seconds without stalling
     * (this host's memory speed) is responsive by it from the moment it runs, while one that stalls half of each tick for its
     * first two seconds (pages not there yet) becomes responsive once a whole window lies past those seconds.
     */
    @Test
    void theStallTtrFollowsStalledTimeNotTheRate() {
        long origin = 0;
        long running = 500 * MS;
        double rate = 1000;
        List<WsbenchTick> slow = new ArrayList<>();
        List<WsbenchTick> stalling = new ArrayList<>();
        for (int i = 0; i <= 60; i++) {
            long guest = 10_000 * MS + i * 100 * MS; // the guest clock; placed so the first tick is at running
            long host = running + i * 100 * MS;
            boolean early = i >= 1 && i <= 20; // the first two seconds after running
            slow.add(new WsbenchTick(host, i, guest, early ? 50 : 100, 2 * MS));
            stalling.add(new WsbenchTick(host, i, guest, early ? 50 : 100, early ? 50 * MS : 2 * MS));
        }
        AfterRestore bySpeed = AfterRestore.fromTicks(slow, origin, running, rate, Duration.ofSeconds(5));
        AfterRestore byStalls = AfterRestore.fromTicks(stalling, origin, running, rate, Duration.ofSeconds(5));
        // By the rate both look alike: half speed until 2.5 s, so a 1 s window reaches 0.8 once at most 0.4 s of it lies before.
        assertThat(bySpeed.ttrSeconds()).hasValueSatisfying(t -> assertThat(t).isCloseTo(2.1, within(0.011)));
        assertThat(byStalls.ttrSeconds()).isEqualTo(bySpeed.ttrSeconds());
        // By stalled time they differ: 2% stalled throughout is responsive from running on; 50% for 2 s is not until ~2.5 s.
        assertThat(bySpeed.stallTtrSeconds()).hasValueSatisfying(t -> assertThat(t).isCloseTo(0.5, within(1e-9)));
        assertThat(bySpeed.unstalledMmu()).isCloseTo(0.49, within(0.001)); // the first window: 0.5 s before running, then 98%
        assertThat(byStalls.stallTtrSeconds()).hasValueSatisfying(t -> assertThat(t).isCloseTo(2.5 - 0.08 / 0.48, within(0.011)));
        // A guest that reports no stalled time has no stall TTR.
        List<WsbenchTick> old = slow.stream().map(t -> new WsbenchTick(t.hostNanos(), t.seq(), t.guestNanos(), t.opCount())).toList();
        assertThat(AfterRestore.fromTicks(old, origin, running, rate, Duration.ofSeconds(5)).stallsReported()).isFalse();
    }
    /**
     * A host on which the guest stalls 15% of the time undisturbed (the fourteenth session's): against the absolute share no
     * window reaches 0.9, so a restore is never responsive; against the source's own 85% it is from running on, and a source
     * share below a half is not taken as the reference.
     */
    @Test
    void theStallTtrIsRelativeToTheSourcesOwnStalledShare() {
        long running = 500 * MS;
        List<WsbenchTick> before = new ArrayList<>();
        List<WsbenchTick> after = new ArrayList<>();
        for (int i = 0; i <= 60; i++) {
            before.add(new WsbenchTick(i * 100 * MS, i, 1_000 * MS + i * 100 * MS, 100, 15 * MS));
            after.add(new WsbenchTick(running + i * 100 * MS, i, 10_000 * MS + i * 100 * MS, 100, 15 * MS));
        }
        double share = Responsiveness.unstalledShare(before);
        assertThat(share).isCloseTo(0.85, within(1e-9));
        assertThat(AfterRestore.fromTicks(after, 0, running, 1000, Duration.ofSeconds(5)).stallTtrSeconds()).as("absolute").isEmpty();
        AfterRestore relative = AfterRestore.fromTicks(after, 0, running, 1000, share, Duration.ofSeconds(5));
        assertThat(relative.stallTtrSeconds()).hasValueSatisfying(t -> assertThat(t).isCloseTo(0.5, within(1e-9)));
        // Stalling more than before (30% against 15%) is not responsive, relative or not.
        List<WsbenchTick> worse = after.stream().map(t -> new WsbenchTick(t.hostNanos(), t.seq(), t.guestNanos(), t.opCount(), 30 * MS)).toList();
        assertThat(AfterRestore.fromTicks(worse, 0, running, 1000, share, Duration.ofSeconds(5)).stallTtrSeconds()).isEmpty();
        assertThat(Responsiveness.stallReference(0.2)).as("a mostly stalled source").isEqualTo(0.5);
        assertThat(Responsiveness.stallReference(Double.NaN)).as("unknown: absolute").isEqualTo(1.0);
        assertThat(Responsiveness.unstalledShare(List.of())).isNaN();
    }
}
