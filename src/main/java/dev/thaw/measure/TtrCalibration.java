package dev.thaw.measure;

import dev.thaw.guest.DemoGuest;
import dev.thaw.guest.GuestImage;
import dev.thaw.guest.WsbenchTick;
import dev.thaw.qemu.Accel;
import dev.thaw.qemu.QemuVersion;
import dev.thaw.qemu.QemuVm;
import java.io.PrintStream;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * Calibrates TTR(w, u) on a guest that was never saved (issue: time to responsiveness): its
 * workload runs undisturbed, so every "restore" cut out of its run should be responsive from the
 * first window. The run is cut into segments; each takes its rate before from its first part (as a
 * restore takes the rate before the save) and is observed over the rest as if restored at its
 * start. For each window w and threshold u the report gives the share of segments whose TTR is 0,
 * which must be close to 1 for (w, u) to be usable on this host, and the MMU(w) of the segments. Both
 * measures are calibrated: the operation rate against the segment's rate before (TTR), and, where
 * the guest reports it, the share of time not stalled (the stall TTR).
 */
public final class TtrCalibration {
    public static final long[] WINDOWS_MILLIS = {500, 1000, 2000};
    public static final double[] THRESHOLDS = {0.7, 0.8, 0.9};

    /** What a cell's utilization is: the operation rate against the rate before, or the share of time not stalled. */
    public enum Measure { RATE, UNSTALLED }

    public record Cell(Measure measure, long windowMillis, double threshold, int segments, int passedFromFirstWindow, double medianMmu,
                       double minMmu) {
        public double passShare() {
            return segments == 0 ? 0 : (double) passedFromFirstWindow / segments;
        }
    }

    public record Report(long memoryMiB, long totalMiB, long wsMiB, String accel, double beforeSeconds, double observedSeconds, int segments,
                         List<Cell> cells) {}

    private TtrCalibration() {}

    public static Report run(DemoGuest guest, GuestImage image, QemuVersion qemu, Accel accel, Duration before, Duration observed, int segments,
                             PrintStream log) throws InterruptedException {
        List<WsbenchTick> ticks;
        try (QemuVm vm = QemuVm.launch(guest.vmConfig("thaw-ttr-calibration", image, qemu, accel))) {
            var console = vm.console().cursorFromStart();
            DemoGuest.awaitReady(vm, console, DemoGuest.BOOT_TIMEOUT);
            DemoGuest.collectTicks(console, Duration.ofSeconds(2)); // past the start of the workload
            Duration total = before.plus(observed).multipliedBy(segments);
            log.printf("  observing the never-saved guest for %d s ...%n", total.toSeconds());
            ticks = DemoGuest.collectTicks(console, total.plusSeconds(1)); // the last segment's late ticks too
        }
        List<Cell> cells = new ArrayList<>(cells(Measure.RATE, ticks, before, observed, segments));
        if (WsbenchTick.stallsReported(ticks)) cells.addAll(cells(Measure.UNSTALLED, ticks, before, observed, segments));
        int used = cells.getFirst().segments();
        return new Report(guest.memoryMiB(), guest.totalMiB(), guest.wsMiB(), accel.qemuName(), before.toMillis() / 1e3,
                observed.toMillis() / 1e3, used, cells);
    }

    private static List<Cell> cells(Measure measure, List<WsbenchTick> ticks, Duration before, Duration observed, int segments) {
        long segmentNanos = before.plus(observed).toNanos();
        long start = ticks.getFirst().hostNanos();
        List<List<Double>> mmus = new ArrayList<>();
        int[][] passed = new int[WINDOWS_MILLIS.length][THRESHOLDS.length];
        for (int w = 0; w < WINDOWS_MILLIS.length; w++) mmus.add(new ArrayList<>());
        int used = 0;
        for (int k = 0; k < segments; k++) {
            long segStart = start + k * segmentNanos;
            long origin = segStart + before.toNanos();
            List<WsbenchTick> pre = ticks.stream().filter(t -> t.hostNanos() > segStart && t.hostNanos() <= origin).toList();
            // A second of ticks either side: ticks reach the host late and in bursts, and the intervals that span the origin and
            // the end must be there, or the first and the last window lack up to a tick's work (only what falls within counts).
            List<WsbenchTick> post = ticks.stream().filter(t -> t.hostNanos() > origin - 1_000_000_000L
                    && t.hostNanos() <= origin + observed.toNanos() + 1_000_000_000L).toList();
            if (pre.size() < 3 || post.size() < 3) continue;
            Responsiveness r = measure == Measure.RATE
                    ? new Responsiveness(Responsiveness.fromTicks(post, origin), Throughput.of(pre, Throughput.ONE_SECOND_NANOS).opsPerSecond(),
                            observed.toNanos())
                    : new Responsiveness(Responsiveness.unstalledFromTicks(post, origin),
                            1e9 * Responsiveness.stallReference(Responsiveness.unstalledShare(pre)), observed.toNanos());
            used++;
            for (int w = 0; w < WINDOWS_MILLIS.length; w++) {
                long windowNanos = WINDOWS_MILLIS[w] * 1_000_000L;
                mmus.get(w).add(r.mmu(windowNanos, 0));
                for (int u = 0; u < THRESHOLDS.length; u++) {
                    if (r.ttrNanos(windowNanos, THRESHOLDS[u]).filter(t -> t == 0).isPresent()) passed[w][u]++;
                }
            }
        }
        List<Cell> cells = new ArrayList<>();
        for (int w = 0; w < WINDOWS_MILLIS.length; w++) {
            List<Double> m = mmus.get(w).stream().sorted().toList();
            for (int u = 0; u < THRESHOLDS.length; u++) {
                cells.add(new Cell(measure, WINDOWS_MILLIS[w], THRESHOLDS[u], used, passed[w][u], m.isEmpty() ? Double.NaN : m.get(m.size() / 2),
                        m.isEmpty() ? Double.NaN : m.getFirst()));
            }
        }
        return cells;
    }

    public static String markdown(Report r) {
        StringBuilder out = new StringBuilder(String.format("Never-saved guest, %d MiB RAM, T=%d MiB, W=%d MiB, %s; %d segments of %.0f s"
                + " (rate from the first %.0f s, then %.0f s observed).%n%n", r.memoryMiB(), r.totalMiB(), r.wsMiB(), r.accel(), r.segments(),
                r.beforeSeconds() + r.observedSeconds(), r.beforeSeconds(), r.observedSeconds()));
        out.append("| utilization | window w | threshold u | responsive from the first window | median MMU(w) | lowest MMU(w) |\n"
                + "|---|---|---|---|---|---|\n");
        for (Cell c : r.cells()) {
            out.append(String.format("| %s | %d ms | %.1f | %d of %d (%.0f%%) | %.2f | %.2f |%n",
                    c.measure() == Measure.RATE ? "ops against the rate before" : "time not stalled", c.windowMillis(), c.threshold(),
                    c.passedFromFirstWindow(), c.segments(), 100 * c.passShare(), c.medianMmu(), c.minMmu()));
        }
        return out.toString();
    }
}
