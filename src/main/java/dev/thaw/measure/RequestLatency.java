package dev.thaw.measure;

import dev.thaw.restore.RestoreTimeline;
import java.util.Arrays;

/** Latency of a client's requests: count, median, 99th percentile and maximum in microseconds, and failed requests. */
public record RequestLatency(long requests, double p50Micros, double p99Micros, double maxMicros, long failures) {
    public static RequestLatency of(long[] latencyNanos, long failures) {
        long[] sorted = latencyNanos.clone();
        Arrays.sort(sorted);
        return new RequestLatency(sorted.length, RestoreTimeline.percentile(sorted, 0.5), RestoreTimeline.percentile(sorted, 0.99),
                sorted.length == 0 ? 0 : sorted[sorted.length - 1] / 1e3, failures);
    }
}
