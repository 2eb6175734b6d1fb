package dev.thaw.measure;

import dev.thaw.guest.WsbenchTick;
import dev.thaw.qemu.QemuVm;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * The throughput ratio of two guests measured paired: they take turns (QMP {@code stop} and
 * {@code cont}), so each sees the same host conditions as its partner's neighbouring segment, and
 * each segment of A is divided by the next segment of B. On this shared host one-second rates swing
 * by 20-30%, and unpaired before/after windows of one guest measure the neighbours as much as the
 * guest. The first part of each segment is skipped (a resumed TCG guest ramps up).
 */
public final class PairedThroughput {
    /** @param ratios A's rate over B's, one per pair */
    public record Result(int pairCount, double median, double q1, double q3, List<Double> ratios) {}

    private PairedThroughput() {}

    public static Result measure(QemuVm a, QemuVm b, int pairs, Duration segment, Duration skip) throws InterruptedException {
        a.qmp().stop();
        b.qmp().stop();
        List<Double> ratios = new ArrayList<>();
        for (int i = 0; i < pairs; i++) {
            double rateA = runAlone(a, segment, skip);
            double rateB = runAlone(b, segment, skip);
            if (rateB > 0) ratios.add(rateA / rateB);
        }
        a.qmp().cont();
        b.qmp().cont();
        double[] sorted = ratios.stream().mapToDouble(Double::doubleValue).sorted().toArray();
        return new Result(sorted.length, quantile(sorted, 0.5), quantile(sorted, 0.25), quantile(sorted, 0.75), List.copyOf(ratios));
    }

    /** Runs one guest alone for a segment; its ops per second after the skipped start, from tick arrival times. */
    static double runAlone(QemuVm vm, Duration segment, Duration skip) throws InterruptedException {
        vm.qmp().cont();
        long from = System.nanoTime() + skip.toNanos();
        Thread.sleep(segment.toMillis());
        long to = System.nanoTime();
        vm.qmp().stop();
        long ops = WsbenchTick.opsArrivedBetween(WsbenchTick.all(vm.console().snapshot()), from, to);
        return ops * 1e9 / (to - from);
    }

    static double quantile(double[] sorted, double q) {
        if (sorted.length == 0) return Double.NaN;
        double pos = q * (sorted.length - 1);
        int lo = (int) Math.floor(pos);
        int hi = (int) Math.ceil(pos);
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
    }
}
