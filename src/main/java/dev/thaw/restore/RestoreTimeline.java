package dev.thaw.restore;

import dev.thaw.restore.RestoreEventLog.Event;
import dev.thaw.restore.RestoreEventLog.Type;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * What a restore's event log says, summarized: when the guest ran and the restore completed,
 * how long demand faults waited (request read to page written), how fast the background stream
 * went, and how faults spread over time. Pure: no QEMU, no threads.
 *
 * @param faultsPer100Ms demand faults in each 100 ms after the guest started running
 */
public record RestoreTimeline(double qemuReadySeconds, double runningSeconds, double eofSeconds, double completedSeconds,
                              long prefetchedPages, long demandFaults, long duplicateRequests, long demandPagesSent,
                              long backgroundPages, double backgroundPagesPerSecond,
                              double serviceMedianMicros, double serviceP99Micros, double serviceMaxMicros,
                              List<Integer> faultsPer100Ms) {

    public static RestoreTimeline of(RestoreEventLog log) {
        double qemuReady = 0, running = 0, eof = 0, completed = 0;
        long prefetched = 0, faults = 0, duplicates = 0, demandSent = 0, background = 0;
        long firstBackground = -1, lastBackground = -1;
        List<Long> faultTimes = new ArrayList<>();
        for (int i = 0; i < log.size(); i++) {
            Event e = log.get(i);
            switch (e.type()) {
                case QEMU_READY -> qemuReady = e.nanos() / 1e9;
                case RUNNING -> running = e.nanos() / 1e9;
                case EOF_SENT -> eof = e.nanos() / 1e9;
                case COMPLETED -> completed = e.nanos() / 1e9;
                case PREFETCH_SENT -> prefetched += e.value();
                case REQUEST -> {
                    faults++;
                    faultTimes.add(e.nanos());
                }
                case DUPLICATE_REQUEST -> duplicates++;
                case DEMAND_SENT -> demandSent += e.value();
                case BACKGROUND_SENT -> {
                    background += e.value();
                    if (firstBackground < 0) firstBackground = e.nanos();
                    lastBackground = e.nanos();
                }
                default -> { }
            }
        }
        long[] s = log.demandWaits().stream().mapToLong(w -> w[1] - w[0]).sorted().toArray();
        double rate = lastBackground > firstBackground ? background * 1e9 / (lastBackground - firstBackground) : 0;
        long runningNanos = (long) (running * 1e9);
        // Clamped before the cast: a log from a damaged file may place a fault centuries after the start.
        long span = faultTimes.isEmpty() ? -1 : Math.max(0, (faultTimes.stream().mapToLong(Long::longValue).max().getAsLong()
                - runningNanos) / 100_000_000L);
        int[] histogram = new int[(int) Math.min(span + 1, 10_000)];
        for (long t : faultTimes) {
            long b = (t - runningNanos) / 100_000_000L;
            if (b >= 0 && b < histogram.length) histogram[(int) b]++;
        }
        return new RestoreTimeline(qemuReady, running, eof, completed, prefetched, faults, duplicates, demandSent, background, rate,
                percentile(s, 0.5), percentile(s, 0.99), s.length == 0 ? 0 : s[s.length - 1] / 1e3,
                Arrays.stream(histogram).boxed().toList());
    }

    /** Nearest-rank percentile of sorted nanoseconds, in microseconds; 0 when there are none. */
    public static double percentile(long[] sorted, double q) {
        if (sorted.length == 0) return 0;
        int i = (int) Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
        return sorted[i] / 1e3;
    }
}
