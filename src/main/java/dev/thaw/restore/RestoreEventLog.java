package dev.thaw.restore;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The compact event log of one restore: 16 bytes per event, nanoseconds after the restore began.
 * Written by the scheduler thread only (request arrivals are logged when it takes them, with the
 * time the return-path reader stamped them).
 *
 * <pre>
 * file   "THAWEVT1", then events
 * event  u8 type | u8 0 | u16 block | u32 page or count | u64 nanoseconds      (little-endian)
 * </pre>
 */
public final class RestoreEventLog {
    /** Event types; 0 is never valid. */
    public enum Type {
        INVALID, QEMU_READY, PACKAGE_SENT, RUNNING, REQUEST, DEMAND_SENT, BACKGROUND_SENT, EOF_SENT, SHUT, COMPLETED, PREFETCH_SENT, DUPLICATE_REQUEST,
        /** QEMU's postcopy/listen thread moved to SCHED_IDLE; value: threads moved. */
        LISTEN_IDLE,
        /** A broken connection was recovered (QEMU's postcopy recovery); value: the pages QEMU reported it holds. */
        RECOVERED,
        /** The prefetch's whole 2 MiB regions were sent, before the discard (PageScheduler.wholeRegions); value: their pages. */
        WHOLE_REGIONS_SENT,
        /** The idle sender had not run for {@link DemandBoost#STARVED}: the background's threads at normal priority from then on. */
        BACKGROUND_PROMOTED,
        /**
         * EOF waited after the last page until QEMU had loaded the device state (PageSender.Health#mayEnd); value: the wait
         * in microseconds (only waits over 10 ms are logged).
         */
        EOF_HELD,
        /** A placed prefetch (PostcopyRestore.Transport#withPlacedPrefetch) was placed: QEMU answered its PING; value: its pages. */
        PREFETCH_PLACED;

        static Type of(int code) {
            return code > 0 && code < values().length ? values()[code] : INVALID;
        }
    }

    /** One event; {@code value} is the page for REQUEST and DEMAND_SENT, a page count for the *_SENT batches. */
    public record Event(Type type, int block, long value, long nanos) {}

    static final byte[] MAGIC = "THAWEVT1".getBytes(java.nio.charset.StandardCharsets.US_ASCII);
    private long[] words = new long[4096];
    private int count;

    public synchronized void add(Type type, int block, long value, long nanos) {
        if (2 * count + 2 > words.length) words = Arrays.copyOf(words, words.length * 2);
        words[2 * count] = ((long) type.ordinal()) | ((long) (block & 0xFFFF) << 16) | ((value & 0xFFFFFFFFL) << 32);
        words[2 * count + 1] = nanos;
        count++;
    }

    public synchronized int size() {
        return count;
    }

    public synchronized Event get(int i) {
        long w = words[2 * i];
        return new Event(Type.of((int) (w & 0xFF)), (int) ((w >>> 16) & 0xFFFF), w >>> 32, words[2 * i + 1]);
    }

    /** Writes atomically. */
    public synchronized void write(Path file) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(MAGIC.length + 16 * count).order(ByteOrder.LITTLE_ENDIAN);
        b.put(MAGIC);
        for (int i = 0; i < 2 * count; i++) b.putLong(words[i]);
        Path tmp = Files.createTempFile(file.getParent(), ".events", ".tmp");
        try {
            Files.write(tmp, b.array());
            Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE);
        } finally {
            Files.deleteIfExists(tmp); // after a failed write (a full disk)
        }
    }

    public static RestoreEventLog read(Path file) throws IOException {
        byte[] bytes = Files.readAllBytes(file);
        if (bytes.length < MAGIC.length || !Arrays.equals(bytes, 0, MAGIC.length, MAGIC, 0, MAGIC.length)
                || (bytes.length - MAGIC.length) % 16 != 0) {
            throw new IOException(file + ": expected an event log ('THAWEVT1' and 16-byte events), actual " + bytes.length + " bytes"
                    + " that do not form one");
        }
        ByteBuffer b = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).position(MAGIC.length);
        RestoreEventLog log = new RestoreEventLog();
        while (b.hasRemaining()) {
            long w = b.getLong();
            long t = b.getLong();
            if (Type.of((int) (w & 0xFF)) == Type.INVALID) {
                throw new IOException(file + " at offset " + (b.position() - 16) + ": expected an event type 1-" + (Type.values().length - 1)
                        + ", actual " + (w & 0xFF));
            }
            if (t < 0) {
                throw new IOException(file + " at offset " + (b.position() - 8) + ": expected nanoseconds >= 0 after the restore began, actual " + t);
            }
            if (2 * log.count + 2 > log.words.length) log.words = Arrays.copyOf(log.words, log.words.length * 2);
            log.words[2 * log.count] = w;
            log.words[2 * log.count + 1] = t;
            log.count++;
        }
        return log;
    }

    /** Each demand request's wait, {@code [arrival, served]}: served when the next demand batch went out after it arrived. */
    public List<long[]> demandWaits() {
        List<long[]> out = new ArrayList<>();
        List<Long> pending = new ArrayList<>();
        for (int i = 0; i < size(); i++) {
            Event e = get(i);
            switch (e.type()) {
                case REQUEST -> pending.add(e.nanos());
                case DEMAND_SENT -> {
                    for (long a : pending) out.add(new long[] {a, e.nanos()});
                    pending.clear();
                }
                default -> { }
            }
        }
        return out;
    }
}
