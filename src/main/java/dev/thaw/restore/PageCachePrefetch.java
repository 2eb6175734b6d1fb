package dev.thaw.restore;

import dev.thaw.migration.Wire;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Reads pages of a mapped RAM file into the host's page cache, in the working set's queue order, on its own thread, from
 * before QEMU is launched and while the guest starts (FaaSnap's loading set): the guest's first touches of those pages are
 * then minor faults instead of reads from the disk, each with the kernel's readahead around it. A page already cached costs a
 * copy and no I/O, so from a warm cache this does nothing useful and little harm.
 *
 * <p>Pages next to each other in the queue are read as one run ({@link #runs}), up to {@value #MAX_RUN_PAGES} pages.
 */
public final class PageCachePrefetch implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(PageCachePrefetch.class);
    static final int MAX_RUN_PAGES = 256;

    /** A run of pages of the file: {@code pageCount} pages from {@code firstPage}. */
    public record Run(long firstPage, int pageCount) {}

    /** What the prefetch did by the time it was asked. */
    public record Stats(long pagesRead, long runCount, long elapsedNanos, boolean finished) {}

    private final Thread thread;
    private final AtomicBoolean stop = new AtomicBoolean();
    private final AtomicLong pagesRead = new AtomicLong();
    private final AtomicLong runsRead = new AtomicLong();
    private final long startedNanos = System.nanoTime();
    private volatile long finishedNanos;

    /** Starts reading {@code pages} (page indexes of the file, in the order the guest is expected to touch them). */
    public PageCachePrefetch(Path file, List<Long> pages, String threadName) {
        List<Run> runs = runs(pages);
        this.thread = Thread.ofPlatform().daemon().name(threadName).start(() -> read(file, runs));
    }

    /**
     * Pages in queue order as runs: a page that directly follows the previous one extends its run. Pure.
     */
    public static List<Run> runs(List<Long> pages) {
        List<Run> out = new ArrayList<>();
        long first = -1;
        int count = 0;
        for (long p : pages) {
            if (p < 0) throw new IllegalArgumentException("prefetch: expected page indexes >= 0, actual " + p);
            if (count > 0 && p == first + count && count < MAX_RUN_PAGES) {
                count++;
                continue;
            }
            if (count > 0) out.add(new Run(first, count));
            first = p;
            count = 1;
        }
        if (count > 0) out.add(new Run(first, count));
        return out;
    }

    private void read(Path file, List<Run> runs) {
        ByteBuffer buffer = ByteBuffer.allocateDirect(MAX_RUN_PAGES * Wire.TARGET_PAGE_BYTES);
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = ch.size();
            for (Run r : runs) {
                if (stop.get()) break;
                long at = r.firstPage() * Wire.TARGET_PAGE_BYTES;
                if (at >= size) continue; // beyond the file: nothing there to cache
                buffer.clear().limit((int) Math.min((long) r.pageCount() * Wire.TARGET_PAGE_BYTES, size - at));
                while (buffer.hasRemaining()) {
                    int n = ch.read(buffer, at + buffer.position());
                    if (n < 0) break;
                }
                pagesRead.addAndGet(r.pageCount());
                runsRead.incrementAndGet();
            }
        } catch (IOException e) {
            // Only a hint: the guest's own faults read what this did not.
            log.warn("prefetching {} into the page cache stopped: {}", file, e.getMessage());
        } finally {
            finishedNanos = System.nanoTime();
        }
    }

    public Stats stats() {
        long end = finishedNanos;
        return new Stats(pagesRead.get(), runsRead.get(), (end == 0 ? System.nanoTime() : end) - startedNanos, end != 0);
    }

    /** Stops the reads (the guest needs nothing more from it); waits up to 5 s for the thread. */
    @Override
    public void close() {
        stop.set(true);
        try {
            thread.join(5000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
