package dev.thaw.restore;

import dev.thaw.migration.Wire;
import dev.thaw.util.PageCache;
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
 * Reads pages of a mapped RAM file into the host's page cache, in the working set's queue order, on its own thread, while the
 * guest starts (FaaSnap's loading set): the guest's first touches of those pages are then minor faults instead of reads from
 * the disk, each with the kernel's readahead around it. A page already cached costs a copy and no I/O, so from a warm cache
 * this does nothing useful and little harm.
 *
 * <p>Pages next to each other in the file are read as one run ({@link #runs}), up to {@value #MAX_RUN_PAGES} pages. Each run is
 * handed to the kernel with {@code posix_fadvise(POSIX_FADV_WILLNEED)}, which starts its reads (returning once the device queue takes them): thousands of
 * scattered single-page runs are then in flight at once instead of read one after another (at 4 GiB with a scattered working set
 * that was ~58k reads, ~6 s one by one from a cold disk). A mapped restore holds the prefetch until it has sent QEMU what it
 * reads from the image ({@link #release}): from a cold cache every read that QEMU's start or that stream waits for would
 * otherwise queue behind the prefetch's. Where {@code posix_fadvise} is not available the runs are read in order.
 */
public final class PageCachePrefetch implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(PageCachePrefetch.class);
    static final int MAX_RUN_PAGES = 256;
    /**
     * Pages between two wanted ones that are read rather than split into two reads: none. Filling gaps of 2, 4 or 8 pages read
     * 1.2-2.6x the bytes of a 4 GiB guest's scattered 66k-page working set and made it resident no sooner (0.84-1.51 s for every
     * gap and for queue order, from a cold cache: this disk's ~60-75k reads per second bound it, docs/benchmarks.md).
     */
    public static final int GAP_PAGES = 0;
    /** A run of pages of the file: {@code pageCount} pages from {@code firstPage}. */
    public record Run(long firstPage, int pageCount) {}

    /** What the prefetch did by the time it was asked: pages read, or handed to the kernel's readahead. */
    public record Stats(long pagesRead, long runCount, long elapsedNanos, boolean finished, boolean advised) {}

    /** The longest a held prefetch waits for {@link #release}. */
    static final long HOLD_TIMEOUT_NANOS = 10_000_000_000L;

    private final java.util.concurrent.CountDownLatch released;
    private final Thread thread;
    private final AtomicBoolean stop = new AtomicBoolean();
    private final AtomicLong pagesRead = new AtomicLong();
    private final AtomicLong runsRead = new AtomicLong();
    private final long startedNanos = System.nanoTime();
    private volatile long finishedNanos;
    private volatile boolean advised;

    /** Starts reading {@code pages} (page indexes of the file, in the order the guest is expected to touch them) at once. */
    public PageCachePrefetch(Path file, List<Long> pages, String threadName) {
        this(file, pages, threadName, false);
    }

    /** @param held read nothing until {@link #release} (or {@value #HOLD_TIMEOUT_NANOS} ns) */
    public PageCachePrefetch(Path file, List<Long> pages, String threadName, boolean held) {
        List<Run> runs = runs(pages, GAP_PAGES);
        this.released = new java.util.concurrent.CountDownLatch(held ? 1 : 0);
        this.thread = Thread.ofPlatform().daemon().name(threadName).start(() -> read(file, runs));
    }

    /**
     * The pages as runs of the file to read: sorted by address, a page within {@code gapPages} of the previous run's end extends it
     * (the gap is read too) up to {@value #MAX_RUN_PAGES} pages, and the runs in the order of their earliest page in the queue. In
     * queue order one run per page: a working set traced in the order the guest touched it is in random address order (wsbench's
     * contiguous 64 MiB became 16k single-page reads, queued ahead of the guest's own faults, each of which the kernel reads with
     * its readahead window around it: the mapped file alone was sooner). Merged, the same pages are a few large reads, and the
     * earliest-touched ones still go first. Pure.
     */
    public static List<Run> runs(List<Long> pages, int gapPages) {
        if (gapPages < 0) throw new IllegalArgumentException("prefetch gap: expected >= 0 pages, actual " + gapPages);
        java.util.Map<Long, Integer> firstInQueue = new java.util.HashMap<>();
        for (int i = 0; i < pages.size(); i++) {
            long p = pages.get(i);
            if (p < 0) throw new IllegalArgumentException("prefetch: expected page indexes >= 0, actual " + p);
            firstInQueue.putIfAbsent(p, i);
        }
        long[] sorted = firstInQueue.keySet().stream().mapToLong(Long::longValue).sorted().toArray();
        record Ranked(Run run, int earliestInQueue) {}
        List<Ranked> runs = new ArrayList<>();
        int i = 0;
        while (i < sorted.length) {
            long first = sorted[i];
            long end = first + 1;
            int earliest = firstInQueue.get(first);
            int j = i + 1;
            while (j < sorted.length && sorted[j] - end <= gapPages && sorted[j] + 1 - first <= MAX_RUN_PAGES) {
                end = sorted[j] + 1;
                earliest = Math.min(earliest, firstInQueue.get(sorted[j]));
                j++;
            }
            runs.add(new Ranked(new Run(first, (int) (end - first)), earliest));
            i = j;
        }
        runs.sort(java.util.Comparator.comparingInt(Ranked::earliestInQueue));
        return runs.stream().map(Ranked::run).toList();
    }

    private void read(Path file, List<Run> runs) {
        try {
            released.await(HOLD_TIMEOUT_NANOS, java.util.concurrent.TimeUnit.NANOSECONDS);
        } catch (InterruptedException e) {
            return;
        }
        if (stop.get()) return;
        if (!advise(file, runs)) readInOrder(file, runs);
    }

    /** Hands every run to the kernel's readahead (it reads them in the background, many at once); false if it cannot. */
    private boolean advise(Path file, List<Run> runs) {
        if (PageCache.unavailable().isPresent()) return false;
        long size;
        PageCache.Advice advice;
        try {
            size = java.nio.file.Files.size(file);
            advice = PageCache.open(file);
        } catch (IOException e) {
            return false;
        }
        try (advice) {
            forEachRun(runs, size, (at, length) -> {
                int error = advice.willNeed(at, length);
                if (error != 0) {
                    log.warn("prefetching {} into the page cache: posix_fadvise failed with error {}; the guest's faults read the rest",
                            file, error);
                }
                return error == 0;
            });
        } catch (Throwable t) {
            log.warn("prefetching {} into the page cache stopped: {}", file, t.toString());
        } finally {
            advised = true;
            finishedNanos = System.nanoTime();
        }
        return true;
    }

    private void readInOrder(Path file, List<Run> runs) {
        ByteBuffer buffer = ByteBuffer.allocateDirect(MAX_RUN_PAGES * Wire.TARGET_PAGE_BYTES);
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            forEachRun(runs, ch.size(), (at, length) -> {
                buffer.clear().limit((int) length);
                while (buffer.hasRemaining()) {
                    if (ch.read(buffer, at + buffer.position()) < 0) break;
                }
                return true;
            });
        } catch (Throwable e) {
            // Only a hint: the guest's own faults read what this did not.
            log.warn("prefetching {} into the page cache stopped: {}", file, e.toString());
        } finally {
            finishedNanos = System.nanoTime();
        }
    }

    /** What is done with one run: {@code length} bytes from {@code at}, within the file; false to stop. */
    @FunctionalInterface
    private interface RunAction {
        boolean apply(long at, long length) throws Throwable;
    }

    /** The runs in order, those beyond the file's end skipped and the last one cut at it, until stopped or the action says so. */
    private void forEachRun(List<Run> runs, long fileBytes, RunAction action) throws Throwable {
        for (Run r : runs) {
            if (stop.get()) return;
            long at = r.firstPage() * Wire.TARGET_PAGE_BYTES;
            if (at >= fileBytes) continue; // beyond the file: nothing there to cache
            if (!action.apply(at, Math.min((long) r.pageCount() * Wire.TARGET_PAGE_BYTES, fileBytes - at))) return;
            pagesRead.addAndGet(r.pageCount());
            runsRead.incrementAndGet();
        }
    }

    /** What the restore waited for is sent: the prefetch begins (if it was held). */
    public void release() {
        released.countDown();
    }

    public Stats stats() {
        long end = finishedNanos;
        return new Stats(pagesRead.get(), runsRead.get(), (end == 0 ? System.nanoTime() : end) - startedNanos, end != 0, advised);
    }

    /** Stops the reads (the guest needs nothing more from it); waits up to 5 s for the thread. */
    @Override
    public void close() {
        stop.set(true);
        released.countDown();
        try {
            thread.join(5000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
