package dev.thaw.qemu;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import java.util.function.ToLongFunction;

/**
 * An append-only record of what a child process said (QMP events, console lines), which readers
 * follow with {@link Cursor}s. One writer thread appends; any thread may wait for an entry. Once the
 * source is gone ({@link #close}) a wait ends at once instead of running into its timeout.
 */
public final class Journal<T> {
    private final List<T> entries = new ArrayList<>();
    private final int capacity;
    private final long byteBudget;
    private final ToLongFunction<? super T> byteSize;
    private long bytes;
    private long dropped;
    private boolean closed;
    private String closedReason = "";

    /** @param capacity entries kept; older ones are dropped (a cursor behind them skips ahead). */
    public Journal(int capacity) {
        this(capacity, Long.MAX_VALUE, entry -> 0);
    }

    /**
     * @param byteBudget the most memory the entries kept may take, as {@code byteSize} estimates it: a count alone lets a
     *                   chatty source fill the heap (200,000 console lines of 64 KiB are 13 GB)
     */
    public Journal(int capacity, long byteBudget, ToLongFunction<? super T> byteSize) {
        this.capacity = capacity;
        this.byteBudget = byteBudget;
        this.byteSize = byteSize;
    }

    public synchronized void append(T entry) {
        entries.add(entry);
        bytes += byteSize.applyAsLong(entry);
        int excess = 0;
        while (entries.size() - excess > capacity || (bytes > byteBudget && excess < entries.size() - 1)) {
            bytes -= byteSize.applyAsLong(entries.get(excess++));
        }
        if (excess > 0) {
            entries.subList(0, excess).clear();
            dropped += excess;
        }
        notifyAll();
    }

    /** Marks the end: waiting cursors return at once. */
    public synchronized void close(String reason) {
        if (!closed) {
            closed = true;
            closedReason = reason;
            notifyAll();
        }
    }

    public synchronized boolean isClosed() {
        return closed;
    }

    public synchronized String closedReason() {
        return closedReason;
    }

    public synchronized long size() {
        return dropped + entries.size();
    }

    public synchronized List<T> snapshot() {
        return List.copyOf(entries);
    }

    /** A cursor at the current end: it sees only what comes next. */
    public Cursor cursor() {
        return new Cursor(size());
    }

    /** A cursor at the oldest entry still kept. */
    public synchronized Cursor cursorFromStart() {
        return new Cursor(dropped);
    }

    public final class Cursor {
        private long position;

        private Cursor(long position) {
            this.position = position;
        }

        /** The next entry, waiting up to {@code timeout}; empty on timeout or when the journal closed. */
        public Optional<T> next(Duration timeout) throws InterruptedException {
            long deadline = System.nanoTime() + timeout.toNanos();
            synchronized (Journal.this) {
                while (true) {
                    if (position < dropped) {
                        position = dropped;
                    }
                    if (position < dropped + entries.size()) {
                        return Optional.of(entries.get((int) (position++ - dropped)));
                    }
                    long remaining = deadline - System.nanoTime();
                    if (closed || remaining <= 0) {
                        return Optional.empty();
                    }
                    TimeUnit.NANOSECONDS.timedWait(Journal.this, remaining);
                }
            }
        }

        /** Skips entries until one matches; empty on timeout or when the journal closed. */
        public Optional<T> await(Predicate<? super T> predicate, Duration timeout) throws InterruptedException {
            long deadline = System.nanoTime() + timeout.toNanos();
            while (true) {
                long remaining = deadline - System.nanoTime();
                Optional<T> entry = next(Duration.ofNanos(Math.max(0, remaining)));
                if (entry.isEmpty()) return entry;
                if (predicate.test(entry.get())) return entry;
            }
        }

        /** Everything appended since this cursor's position, without waiting. */
        public List<T> drain() {
            synchronized (Journal.this) {
                if (position < dropped) position = dropped;
                List<T> out = List.copyOf(entries.subList((int) (position - dropped), entries.size()));
                position = dropped + entries.size();
                return out;
            }
        }
    }
}
