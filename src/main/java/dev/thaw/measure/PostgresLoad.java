package dev.thaw.measure;

import dev.thaw.guest.PostgresGuest;
import dev.thaw.util.Closing;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.BooleanSupplier;

/**
 * The host-side client of the PostgreSQL guest: one JDBC connection (autocommit: each insert is its own transaction, committed
 * when acknowledged), a closed loop that inserts the next row and reads a random row it knows to exist, each request's
 * completion time and latency kept. Every insert the server acknowledged is recorded with the time its acknowledgement
 * arrived, so a check can ask which rows a saved guest must hold; every read checks the row's payload, so a restore that lost
 * or mixed up rows shows up as a wrong answer, not as a fast one. A request that fails or times out counts as a failure (an
 * insert then is not acknowledged: it may or may not have been committed) and the client reconnects.
 */
public final class PostgresLoad {
    public static final String TABLE = "thaw_rows";
    static final int PAYLOAD_BYTES = 200;
    /** A slow request is one, not a failure, up to this long (the JDBC URL's socketTimeout). */
    static final int SOCKET_TIMEOUT_MILLIS = 30_000;

    /**
     * @param doneNanos    completion of each successful request (inserts and reads), from {@code originNanos}
     * @param latencyNanos each successful request's latency, in the same order
     * @param ackedIds     the ids of the inserts the server acknowledged, in order
     * @param ackedAtNanos when each acknowledgement arrived (System.nanoTime), in the same order
     */
    public record Result(long originNanos, long[] doneNanos, long[] latencyNanos, long failures, String firstFailure, long[] ackedIds,
                         long[] ackedAtNanos) implements ClientRequests {
        /** The ids whose acknowledgement arrived before {@code nanos} (System.nanoTime). */
        public long[] ackedBefore(long nanos) {
            List<Long> ids = new ArrayList<>();
            for (int i = 0; i < ackedIds.length; i++) if (ackedAtNanos[i] < nanos) ids.add(ackedIds[i]);
            return ids.stream().mapToLong(Long::longValue).toArray();
        }
    }

    private PostgresLoad() {}

    /** The payload of row {@code id}: its id, padded to {@value #PAYLOAD_BYTES} characters. */
    static String payload(long id) {
        String s = "row:" + id + ":";
        return s + "x".repeat(PAYLOAD_BYTES - s.length());
    }

    /** Creates the client's table in the guest's database if it does not exist. */
    public static void createTable(int port) throws SQLException {
        try (Connection c = DriverManager.getConnection(PostgresGuest.jdbcUrl(port)); Statement s = c.createStatement()) {
            s.execute("CREATE TABLE IF NOT EXISTS " + TABLE + " (id bigint PRIMARY KEY, payload text NOT NULL,"
                    + " written_at timestamptz NOT NULL DEFAULT now())");
        }
    }

    /** Inserts row {@code id} and returns once the server acknowledged it. */
    public static void insert(int port, long id) throws SQLException {
        try (Connection c = DriverManager.getConnection(PostgresGuest.jdbcUrl(port));
             PreparedStatement p = c.prepareStatement("INSERT INTO " + TABLE + " (id, payload) VALUES (?, ?)")) {
            p.setLong(1, id);
            p.setString(2, payload(id));
            p.executeUpdate();
        }
    }

    /**
     * The ids among {@code ids} the table lacks, and (as a failure) any row whose payload is not the one its id was written
     * with.
     */
    public static long[] missing(int port, long[] ids) throws SQLException {
        try (Connection c = DriverManager.getConnection(PostgresGuest.jdbcUrl(port));
             PreparedStatement p = c.prepareStatement("SELECT id, payload FROM " + TABLE + " WHERE id = ANY (?)")) {
            p.setArray(1, c.createArrayOf("bigint", Arrays.stream(ids).boxed().toArray()));
            java.util.Set<Long> found = new java.util.HashSet<>();
            try (ResultSet r = p.executeQuery()) {
                while (r.next()) {
                    long id = r.getLong(1);
                    checkPayload(id, r.getString(2));
                    found.add(id);
                }
            }
            return Arrays.stream(ids).filter(id -> !found.contains(id)).toArray();
        }
    }

    /**
     * The rows with ids up to {@code maxId}: how many, the largest id, and an MD5 of every such row's id and payload in id order.
     *
     * @param md5Hex the MD5 of {@code id:payload} of each row, joined by commas, in id order
     */
    public record Rows(long count, long maxId, String md5Hex) {}

    /** The table's rows with ids up to {@code maxId} ({@link Long#MAX_VALUE}: all of them), summed up as {@link Rows}. */
    public static Rows rowsUpTo(int port, long maxId) throws SQLException {
        try (Connection c = DriverManager.getConnection(PostgresGuest.jdbcUrl(port));
             PreparedStatement p = c.prepareStatement("SELECT count(*), coalesce(max(id), 0), md5(coalesce(string_agg(id::text || ':' ||"
                     + " payload, ',' ORDER BY id), '')) FROM " + TABLE + " WHERE id <= ?")) {
            p.setLong(1, maxId);
            try (ResultSet r = p.executeQuery()) {
                r.next();
                return new Rows(r.getLong(1), r.getLong(2), r.getString(3));
            }
        }
    }

    private static final java.util.regex.Pattern UP_TO = java.util.regex.Pattern.compile("^(\\d+) rows up to id (\\d+), ");

    /** The line the bench's check compares (pure): the rows and pg_amcheck's verdict. */
    static String checkLine(Rows rows, PostgresGuest.Amcheck amcheck) {
        return String.format("%d rows up to id %d, md5 %s; pg_amcheck %s", rows.count(), rows.maxId(), rows.md5Hex(), amcheck.passed()
                ? "passed" : "FAILED, exit " + amcheck.exitStatus() + ": " + amcheck.output().lines().reduce((x, y) -> y).orElse(""));
    }

    /** The largest id a {@link #checkLine} names (pure). */
    static long maxIdOf(String checkLine) {
        java.util.regex.Matcher m = UP_TO.matcher(checkLine);
        if (!m.find()) {
            throw new IllegalArgumentException("the source's check: expected 'N rows up to id M, ...', actual '" + checkLine + "'");
        }
        return Long.parseLong(m.group(2));
    }

    /** How many rows the table holds. */
    public static long count(int port) throws SQLException {
        try (Connection c = DriverManager.getConnection(PostgresGuest.jdbcUrl(port)); Statement s = c.createStatement();
             ResultSet r = s.executeQuery("SELECT count(*) FROM " + TABLE)) {
            r.next();
            return r.getLong(1);
        }
    }

    private static void checkPayload(long id, String payload) {
        if (!payload(id).equals(payload)) {
            throw new IllegalStateException("PostgreSQL answered row " + id + " with '" + (payload == null ? "null"
                    : payload.substring(0, Math.min(40, payload.length()))) + "': expected '" + payload(id).substring(0, 40)
                    + "...' (the row as written): the guest's database is not what was saved");
        }
    }

    /**
     * Runs until {@code deadlineNanos} (System.nanoTime) or until {@code stop} says so: inserts rows {@code firstId},
     * {@code firstId + 1}, ... and after each insert reads a random row among {@code knownIds} and the ones acknowledged so far.
     *
     * @param originNanos the time the result's times count from
     */
    public static Result run(int port, long firstId, long[] knownIds, long originNanos, long deadlineNanos, BooleanSupplier stop,
                             long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        LongList done = new LongList();
        LongList latency = new LongList();
        LongList acked = new LongList();
        LongList ackedAt = new LongList();
        long failures = 0;
        String firstFailure = null;
        long nextId = firstId;
        Connection c = null;
        PreparedStatement insert = null;
        PreparedStatement read = null;
        try {
            while (System.nanoTime() < deadlineNanos && !stop.getAsBoolean()) {
                try {
                    if (c == null) {
                        c = DriverManager.getConnection(PostgresGuest.jdbcUrl(port));
                        insert = c.prepareStatement("INSERT INTO " + TABLE + " (id, payload) VALUES (?, ?)");
                        read = c.prepareStatement("SELECT payload FROM " + TABLE + " WHERE id = ?");
                    }
                    long id = nextId++;
                    insert.setLong(1, id);
                    insert.setString(2, payload(id));
                    long sent = System.nanoTime();
                    insert.executeUpdate();
                    long now = System.nanoTime();
                    acked.add(id);
                    ackedAt.add(now);
                    done.add(now - originNanos);
                    latency.add(now - sent);

                    long known = knownIds.length + acked.size();
                    long pick = rnd.nextLong(known);
                    long readId = pick < knownIds.length ? knownIds[(int) pick] : acked.get((int) (pick - knownIds.length));
                    read.setLong(1, readId);
                    sent = System.nanoTime();
                    String payload;
                    try (ResultSet r = read.executeQuery()) {
                        payload = r.next() ? r.getString(1) : null;
                    }
                    now = System.nanoTime();
                    if (payload == null) {
                        throw new IllegalStateException("PostgreSQL has no row " + readId + ": expected it (acknowledged"
                                + (pick < knownIds.length ? " before" : " in this run") + "): the guest's database is not what was saved");
                    }
                    checkPayload(readId, payload);
                    done.add(now - originNanos);
                    latency.add(now - sent);
                } catch (SQLException e) {
                    failures++;
                    if (firstFailure == null) firstFailure = e.toString();
                    Closing.quietly(c);
                    c = null;
                    sleepQuietly(20); // not reachable yet, or stopped: try again shortly
                }
            }
        } finally {
            Closing.quietly(c);
        }
        return new Result(originNanos, done.toArray(), latency.toArray(), failures, firstFailure, acked.toArray(), ackedAt.toArray());
    }

    private static void sleepQuietly(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** A growing array of longs. */
    private static final class LongList {
        private long[] values = new long[1 << 12];
        private int size;

        void add(long v) {
            if (size == values.length) values = Arrays.copyOf(values, size * 2);
            values[size++] = v;
        }

        long get(int i) {
            return values[i];
        }

        int size() {
            return size;
        }

        long[] toArray() {
            return Arrays.copyOf(values, size);
        }
    }
}
