package dev.thaw.measure;

import java.util.Arrays;

/** What a host-side client of an application guest (RedisLoad, PostgresLoad) measured: its successful requests and failures. */
public interface ClientRequests {
    /** Completion of each successful request, from the run's origin. */
    long[] doneNanos();

    /** Each successful request's latency, in the same order. */
    long[] latencyNanos();

    long failures();

    /** The first failure's description, or null when none failed. */
    String firstFailure();

    default int requestCount() {
        return doneNanos().length;
    }

    /** Successful requests completed in (fromNanos, toNanos] from the origin. */
    default long completedBetween(long fromNanos, long toNanos) {
        return Arrays.stream(doneNanos()).filter(t -> t > fromNanos && t <= toNanos).count();
    }

    default RequestLatency latency() {
        return RequestLatency.of(latencyNanos(), failures());
    }
}
