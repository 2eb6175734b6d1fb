package dev.thaw.measure;

import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.function.BooleanSupplier;
import redis.clients.jedis.DefaultJedisClientConfig;
import redis.clients.jedis.HostAndPort;
import redis.clients.jedis.Jedis;
import redis.clients.jedis.JedisClientConfig;
import redis.clients.jedis.exceptions.JedisException;

/**
 * The host-side client of the Redis guest: one connection, a closed loop of GETs of uniformly
 * random hot keys ({@code key:0 .. key:hot-1}), each request's completion time and latency kept.
 * Every reply is checked against what the guest stored ({@code value:N}, padded): a restore that
 * lost or mixed up memory shows up as a wrong value, not as a fast one. A request that fails or
 * times out counts as a failure and the client reconnects, so a guest that is not yet reachable
 * (or stopped for a save) costs time, not the run.
 */
public final class RedisLoad {
    /** A slow request is one, not a failure, up to this long (a lazily restored guest can be slow for a while). */
    static final int SOCKET_TIMEOUT_MILLIS = 2_000;
    static final int CONNECT_TIMEOUT_MILLIS = 1_000;

    /**
     * @param doneNanos    completion of each successful request, from {@code originNanos}
     * @param latencyNanos each successful request's latency, in the same order
     */
    public record Result(long originNanos, long[] doneNanos, long[] latencyNanos, long failures, String firstFailure)
            implements ClientRequests {}

    private RedisLoad() {}

    /**
     * Runs until {@code deadlineNanos} (System.nanoTime) or until {@code stop} says so.
     *
     * @param originNanos the time the result's times count from
     */
    public static Result run(int port, long hotKeys, long originNanos, long deadlineNanos, BooleanSupplier stop, long seed) {
        JedisClientConfig config = DefaultJedisClientConfig.builder().connectionTimeoutMillis(CONNECT_TIMEOUT_MILLIS)
                .socketTimeoutMillis(SOCKET_TIMEOUT_MILLIS).serverDefaultProtocol().build();
        SplittableRandom rnd = new SplittableRandom(seed);
        long[] done = new long[1 << 14];
        long[] latency = new long[1 << 14];
        int n = 0;
        long failures = 0;
        String firstFailure = null;
        Jedis jedis = null;
        try {
            while (System.nanoTime() < deadlineNanos && !stop.getAsBoolean()) {
                try {
                    if (jedis == null) jedis = new Jedis(new HostAndPort("127.0.0.1", port), config);
                    long key = rnd.nextLong(hotKeys);
                    long sent = System.nanoTime();
                    String value = jedis.get("key:" + key);
                    long now = System.nanoTime();
                    String expected = "value:" + key;
                    if (value == null || !value.startsWith(expected)
                            || (value.length() > expected.length() && value.charAt(expected.length()) != '\0')) {
                        throw new IllegalStateException("Redis answered GET key:" + key + " with "
                                + (value == null ? "nil" : "'" + value.substring(0, Math.min(40, value.length())) + "'")
                                + ": expected '" + expected + "' (padded): the guest's memory is not what was saved");
                    }
                    if (n == done.length) {
                        done = Arrays.copyOf(done, n * 2);
                        latency = Arrays.copyOf(latency, n * 2);
                    }
                    done[n] = now - originNanos;
                    latency[n] = now - sent;
                    n++;
                } catch (JedisException e) {
                    failures++;
                    if (firstFailure == null) firstFailure = e.toString();
                    if (jedis != null) jedis.close();
                    jedis = null;
                    sleepQuietly(20); // not reachable yet, or stopped: try again shortly
                }
            }
        } finally {
            if (jedis != null) jedis.close();
        }
        return new Result(originNanos, Arrays.copyOf(done, n), Arrays.copyOf(latency, n), failures, firstFailure);
    }

    private static void sleepQuietly(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
