package dev.thaw.measure;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.thaw.restore.RestoreEventLog;
import dev.thaw.restore.RestoreEventLog.Type;
import dev.thaw.testing.Seeds;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

class HostStallTest {
    static final long MS = 1_000_000;

    @Test
    void overlappingWaitsCountOnceAndTheTimeBeforeRunningIsStalled() {
        RestoreEventLog log = new RestoreEventLog();
        log.add(Type.RUNNING, 0, 0, 100 * MS);
        log.add(Type.REQUEST, 0, 1, 200 * MS);
        log.add(Type.REQUEST, 0, 2, 250 * MS);
        log.add(Type.DEMAND_SENT, 0, 2, 380 * MS); // serves both: [200, 380] and [250, 380]
        log.add(Type.REQUEST, 0, 3, 1_500 * MS);
        log.add(Type.DEMAND_SENT, 0, 1, 1_550 * MS);
        assertThat(log.demandWaits()).hasSize(3);

        HostStall h = HostStall.of(log, 50 * MS, 3_000 * MS, 250 * MS);
        // Shifted by 50 ms: stalled [0, 150], [250, 430], [1550, 1600].
        assertThat(h.stalledPerStep()).hasSize(12);
        assertThat(h.stalledPerStep().get(0)).isCloseTo(150 / 250.0, within(1e-9));
        assertThat(h.stalledPerStep().get(1)).isCloseTo(180 / 250.0, within(1e-9));
        assertThat(h.stalledPerStep().get(2)).isZero();
        assertThat(h.stalledPerStep().get(6)).isCloseTo(50 / 250.0, within(1e-9));
        // A window of 1 s reaches 0.8 once at most 200 ms of stall are left in it: (150 - s) + 180 <= 200 from s = 0.13 s on;
        // but the guest runs only from 0.15 s, and is not responsive before.
        assertThat(h.ttrSeconds()).hasValueSatisfying(t -> assertThat(t).isCloseTo(0.15, within(1e-9)));
        assertThat(h.mmu()).isCloseTo(1 - 0.33, within(1e-9));
    }

    @Test
    void anEagerRestoreStallsUntilItRuns() {
        HostStall h = HostStall.eager(1_100 * MS, 4_000 * MS, 250 * MS);
        assertThat(h.stalledPerStep().subList(0, 4)).containsOnly(1.0);
        assertThat(h.stalledPerStep().get(4)).isCloseTo(100 / 250.0, within(1e-9));
        assertThat(h.stalledPerStep().subList(5, 16)).containsOnly(0.0);
        // Windows from 0.9 s on hold at least 0.8 s of running, but the guest runs only from 1.1 s.
        assertThat(h.ttrSeconds()).hasValueSatisfying(t -> assertThat(t).isCloseTo(1.1, within(1e-9)));
        assertThat(h.mmu()).isZero();
    }

    @Test
    void theVcpuRunTimeEstimateFollowsTheShareOfTimeTheVcpuRan() {
        // Sampled every 50 ms: no run time until 1 s, half of the time until 2 s, all of it after.
        List<long[]> samples = new java.util.ArrayList<>();
        long ran = 0;
        for (long t = 0; t <= 4_000; t += 50) {
            samples.add(new long[] {t * MS, ran * MS});
            ran += t < 1_000 ? 0 : t < 2_000 ? 25 : 50;
        }
        HostStall h = HostStall.fromVcpuRunTime(samples, 1.0, 1_000 * MS, 4_000 * MS, 250 * MS);
        assertThat(h.stalledPerStep()).hasSize(16);
        assertThat(h.stalledPerStep().subList(0, 4)).allSatisfy(x -> assertThat(x).isCloseTo(1.0, within(1e-9)));
        assertThat(h.stalledPerStep().subList(4, 8)).allSatisfy(x -> assertThat(x).isCloseTo(0.5, within(1e-9)));
        assertThat(h.stalledPerStep().subList(8, 16)).allSatisfy(x -> assertThat(x).isCloseTo(0.0, within(1e-9)));
        // A 1 s window from s in [1, 2] holds 0.5 (2 - s) + (s - 1) = 0.5 s of progress: 0.8 from s = 1.6 on.
        assertThat(h.ttrSeconds()).hasValueSatisfying(t -> assertThat(t).isCloseTo(1.6, within(0.011)));
        // Before the save the vCPU ran half the time: running all the time now is full speed, not double.
        HostStall capped = HostStall.fromVcpuRunTime(samples, 0.5, 1_000 * MS, 4_000 * MS, 250 * MS);
        assertThat(capped.stalledPerStep().subList(4, 16)).allSatisfy(x -> assertThat(x).isCloseTo(0.0, within(1e-9)));
    }

    @Test
    void stalledTimeIsTheUnionOfTheWaits() {
        Random rnd = Seeds.random("HostStallTest.stalledTimeIsTheUnionOfTheWaits");
        RestoreEventLog log = new RestoreEventLog();
        long running = rnd.nextLong(500 * MS);
        log.add(Type.RUNNING, 0, 0, running);
        boolean[] busy = new boolean[5_000]; // 1 ms cells
        for (int i = 0; i < running / MS; i++) busy[i] = true;
        long t = running / MS + 1;
        while (t < 4_500) {
            long arrival = t;
            int batch = 1 + rnd.nextInt(3);
            for (int k = 0; k < batch; k++) log.add(Type.REQUEST, 0, k, (arrival + k) * MS);
            long served = arrival + batch + rnd.nextInt(40);
            log.add(Type.DEMAND_SENT, 0, batch, served * MS);
            for (long c = arrival; c < served; c++) busy[(int) c] = true;
            t = served + rnd.nextInt(200);
        }
        HostStall h = HostStall.of(log, 0, 5_000 * MS, 250 * MS);
        List<Double> steps = h.stalledPerStep();
        assertThat(steps).hasSize(20).allSatisfy(s -> assertThat(s).isBetween(0.0, 1.0));
        long busyMs = 0;
        for (int i = 0; i < busy.length; i++) if (busy[i]) busyMs++;
        double stalledMs = steps.stream().mapToDouble(s -> s * 250).sum();
        // Cell rounding of the running time costs at most 1 ms.
        assertThat(stalledMs).as("stalled ms (seed printed above)").isCloseTo(busyMs, within(1.0 + 1e-6));
    }
}
