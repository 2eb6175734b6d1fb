package dev.thaw.restore;

import dev.thaw.image.CheckpointImage;
import dev.thaw.migration.Wire;
import dev.thaw.schedule.PageRange;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * Reads and decompresses a list of page ranges on its own thread while the caller writes them: the working set to prefetch
 * (started before the restoring QEMU is launched, so its reads overlap QEMU's start) and the whole image of an eager
 * restore ({@link EagerStreams}). At most {@code maxBytesAhead} are held in memory; the reader waits for the writer beyond
 * that. Batch buffers handed back with {@link #release} are filled again, so a whole image's worth of 1 MiB arrays is not
 * garbage to collect on a host whose other core loads the stream into QEMU.
 */
final class PageReadAhead implements AutoCloseable {
    private static final int PAGE = Wire.TARGET_PAGE_BYTES;
    /** Target pages per batch handed to the sender (1 MiB). */
    static final int BATCH_PAGES = 256;

    /** Consecutive units read, their pages back to back in {@code data}; {@code zero[i]} marks zero pages. */
    record Batch(List<PageRange> units, byte[] data, boolean[] zero) {
        int pageCount() {
            return zero.length;
        }
    }

    private sealed interface Item permits Next, End, Failed {}

    private record Next(Batch batch) implements Item {}

    private record End() implements Item {}

    private record Failed(RuntimeException cause) implements Item {}

    private final BlockingQueue<Item> queue;
    private final BlockingQueue<byte[]> spare;
    private final Thread reader;
    private volatile boolean closed;

    /** @param threadName the reader thread's name ({@code prefetch-reader-VM}, {@code eager-reader}) */
    PageReadAhead(CheckpointImage image, List<PageRange> units, long maxBytesAhead, String threadName) {
        this(image, units, 0, maxBytesAhead, threadName);
    }

    /** @param cutUnit no batch holds both units before this index and units from it (the sender writes something between) */
    PageReadAhead(CheckpointImage image, List<PageRange> units, int cutUnit, long maxBytesAhead, String threadName) {
        int capacity = (int) Math.max(2, Math.min(4096, maxBytesAhead / ((long) BATCH_PAGES * PAGE)));
        this.queue = new ArrayBlockingQueue<>(capacity);
        this.spare = new ArrayBlockingQueue<>(capacity + 2);
        this.reader = Thread.ofPlatform().daemon().name(threadName).start(() -> read(image, List.copyOf(units), cutUnit));
    }

    /** Hands a written batch's buffer back to be filled again. */
    void release(Batch batch) {
        if (batch.data().length == BATCH_PAGES * PAGE) spare.offer(batch.data());
    }

    private void read(CheckpointImage image, List<PageRange> units, int cutUnit) {
        try {
            try {
                int i = 0;
                while (i < units.size() && !closed) {
                    List<PageRange> batchUnits = new ArrayList<>();
                    int pages = 0;
                    while (i < units.size() && (pages == 0 || pages + units.get(i).pageCount() <= BATCH_PAGES && i != cutUnit)) {
                        pages += units.get(i).pageCount();
                        batchUnits.add(units.get(i++));
                    }
                    byte[] recycled = pages == BATCH_PAGES ? spare.poll() : null;
                    byte[] data = recycled != null ? recycled : new byte[pages * PAGE];
                    boolean[] zero = new boolean[pages];
                    int at = 0;
                    for (PageRange u : batchUnits) {
                        for (int p = u.firstPage(); p < u.endPage(); p++, at++) {
                            zero[at] = !image.readPage(u.block(), p, data, at * PAGE);
                        }
                    }
                    if (!put(new Next(new Batch(batchUnits, data, zero)))) return;
                }
                put(new End());
            } catch (RuntimeException e) {
                put(new Failed(e));
            }
        } catch (InterruptedException e) {
            // not interrupted by close (see there): nothing more to read either way
        }
    }

    /** Queues an item once there is room; false if closed meanwhile. */
    private boolean put(Item item) throws InterruptedException {
        while (!closed) {
            if (queue.offer(item, 50, TimeUnit.MILLISECONDS)) return true;
        }
        return false;
    }

    /**
     * The next batch, in the order of the units; null after the last.
     *
     * @throws RuntimeException the reader's failure (a damaged extent names its file and offset), or a timeout
     */
    Batch next(Duration timeout) throws InterruptedException {
        Item item = queue.poll(timeout.toNanos(), TimeUnit.NANOSECONDS);
        return switch (item) {
            case null -> throw new RestoreException("the prefetch reader produced nothing for " + timeout.toSeconds() + " s", null);
            case Next n -> n.batch();
            case End e -> {
                queue.put(e); // later calls see the end too
                yield null;
            }
            case Failed f -> throw f.cause();
        };
    }

    /**
     * Stops the reader and waits for its current extent read: never by an interrupt, since one landing in or before a
     * FileChannel read closes that channel, the image's own, which other readers (demand faults, clones) go on using.
     */
    @Override
    public void close() {
        closed = true;
        try {
            reader.join(CLOSE_WAIT.toMillis()); // one extent's read; a pack still arriving from object storage may take longer
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private static final Duration CLOSE_WAIT = Duration.ofSeconds(10);
}
