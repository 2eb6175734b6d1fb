package dev.thaw.measure;

import dev.thaw.guest.WsbenchTick;
import java.util.ArrayList;
import java.util.List;

/**
 * Guest throughput from wsbench ticks, on the guest's own clock (host arrival times jitter with
 * serial output and scheduling).
 *
 * @param tickCount      ticks used
 * @param opsPerSecond   mean rate over the whole span
 * @param windowOpsPerSecond the rate in each consecutive window of {@code windowNanos}
 */
/**
 * @param opsPerSecond          ops per second of the guest's clock (wsbench's own timing)
 * @param guestClockRate        guest seconds per host second over the ticks (host time: when Thaw read each tick); 1 for a
 *                              guest whose clock keeps time, 0 when unknown
 * @param opsPerHostSecond      ops per second of the host's clock
 */
public record Throughput(int tickCount, double opsPerSecond, long windowNanos, List<Double> windowOpsPerSecond, double guestClockRate,
                         double opsPerHostSecond) {
    public static final long ONE_SECOND_NANOS = 1_000_000_000L;

    /**
     * Summarizes ticks. Each tick's ops were done in the interval ending at its guest time, so the
     * first tick only marks the start of the span.
     */
    public static Throughput of(List<WsbenchTick> ticks, long windowNanos) {
        if (ticks.size() < 2) {
            return new Throughput(ticks.size(), 0, windowNanos, List.of(), 0, 0);
        }
        long start = ticks.getFirst().guestNanos();
        long end = ticks.getLast().guestNanos();
        long ops = 0;
        for (int i = 1; i < ticks.size(); i++) ops += ticks.get(i).opCount();
        double mean = end > start ? ops * 1e9 / (end - start) : 0;

        List<Double> windows = new ArrayList<>();
        long windowStart = start;
        long windowOps = 0;
        for (int i = 1; i < ticks.size(); i++) {
            WsbenchTick t = ticks.get(i);
            windowOps += t.opCount();
            if (t.guestNanos() - windowStart >= windowNanos) {
                windows.add(windowOps * 1e9 / (t.guestNanos() - windowStart));
                windowStart = t.guestNanos();
                windowOps = 0;
            }
        }
        long hostSpan = ticks.getLast().hostNanos() - ticks.getFirst().hostNanos();
        double clock = hostSpan > 0 ? (end - start) / (double) hostSpan : 0;
        return new Throughput(ticks.size(), mean, windowNanos, List.copyOf(windows), clock, hostSpan > 0 ? ops * 1e9 / hostSpan : 0);
    }

    public double minWindow() {
        return windowOpsPerSecond.stream().mapToDouble(Double::doubleValue).min().orElse(0);
    }

    public double maxWindow() {
        return windowOpsPerSecond.stream().mapToDouble(Double::doubleValue).max().orElse(0);
    }
}
