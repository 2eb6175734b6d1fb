package dev.thaw.restore;

import dev.thaw.migration.Wire;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
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
 * <p>Pages next to each other in the queue are read as one run ({@link #runs}), up to {@value #MAX_RUN_PAGES} pages. Each run is
 * handed to the kernel with {@code posix_fadvise(POSIX_FADV_WILLNEED)}, which starts its reads and returns: thousands of
 * scattered single-page runs are then in flight at once instead of read one after another (at 4 GiB with a scattered working set
 * that was ~58k reads, ~6 s one by one from a cold disk), at most {@code windowBytes} of them not yet read (asked with a
 * {@code RWF_NOWAIT} read), so that the guest's own faults do not queue behind all of it. A mapped restore holds the prefetch
 * until QEMU is up ({@link #qemuStarted}). Where {@code posix_fadvise} is not available the runs are read in order.
 */
public final class PageCachePrefetch implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(PageCachePrefetch.class);
    static final int MAX_RUN_PAGES = 256;
    private static final int O_RDONLY = 0;
    private static final int POSIX_FADV_WILLNEED = 3;
    private static final MethodHandle OPEN;
    private static final MethodHandle FADVISE;
    private static final MethodHandle CLOSE;
    /** {@code preadv2}, to ask with {@code RWF_NOWAIT} whether a page is read (in the page cache and up to date). */
    private static final MethodHandle PREADV2;
    private static final int RWF_NOWAIT = 0x8;

    static {
        MethodHandle open = null;
        MethodHandle fadvise = null;
        MethodHandle close = null;
        MethodHandle preadv2 = null;
        try {
            Linker linker = Linker.nativeLinker();
            var libc = linker.defaultLookup();
            open = linker.downcallHandle(libc.find("open").orElseThrow(), FunctionDescriptor.of(ValueLayout.JAVA_INT,
                    ValueLayout.ADDRESS, ValueLayout.JAVA_INT), Linker.Option.firstVariadicArg(2));
            fadvise = linker.downcallHandle(libc.find("posix_fadvise").orElseThrow(), FunctionDescriptor.of(ValueLayout.JAVA_INT,
                    ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT));
            close = linker.downcallHandle(libc.find("close").orElseThrow(), FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT));
            preadv2 = libc.find("preadv2").map(f -> linker.downcallHandle(f, FunctionDescriptor.of(ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT,
                    ValueLayout.ADDRESS, ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT))).orElse(null);
        } catch (RuntimeException | LinkageError e) {
            log.debug("posix_fadvise not available ({}): prefetch reads run by run", e.toString());
        }
        OPEN = open;
        FADVISE = fadvise;
        CLOSE = close;
        PREADV2 = preadv2;
    }

    /** A run of pages of the file: {@code pageCount} pages from {@code firstPage}. */
    public record Run(long firstPage, int pageCount) {}

    /** What the prefetch did by the time it was asked: pages read, or handed to the kernel's readahead. */
    public record Stats(long pagesRead, long runCount, long elapsedNanos, boolean finished, boolean advised) {}

    /** The default bound of advised reads in flight: at 0.2-1.2 GB/s, 30-170 ms of the disk's time. */
    public static final long DEFAULT_WINDOW_BYTES = 32L << 20;
    /**
     * At most this many runs advised and not yet read, whatever their size: a scattered working set is single pages, and 32 MiB
     * of them is 8k reads queued ahead of each of the guest's own faults (4 GiB, W=256 MiB scattered, cold: the guest did 0.48x
     * of its work before the save in its first 8 s, against 0.83x for the mapped file without a prefetch).
     */
    static final int MAX_RUNS_IN_FLIGHT = 64;
    /** The longest a held prefetch waits for {@link #qemuStarted}. */
    static final long HOLD_TIMEOUT_NANOS = 10_000_000_000L;
    /** An advised run not in the page cache after this long is taken as read (the kernel may drop advice under pressure). */
    static final long RUN_TIMEOUT_NANOS = 200_000_000L;

    private final long windowBytes;
    private final java.util.concurrent.CountDownLatch qemuUp;
    private final Thread thread;
    private final AtomicBoolean stop = new AtomicBoolean();
    private final AtomicLong pagesRead = new AtomicLong();
    private final AtomicLong runsRead = new AtomicLong();
    private final long startedNanos = System.nanoTime();
    private volatile long finishedNanos;
    private volatile boolean advised;

    /**
     * Starts reading {@code pages} (page indexes of the file, in the order the guest is expected to touch them), with at most
     * {@value #DEFAULT_WINDOW_BYTES} bytes of advised reads not yet in the page cache.
     */
    public PageCachePrefetch(Path file, List<Long> pages, String threadName) {
        this(file, pages, threadName, DEFAULT_WINDOW_BYTES);
    }

    /**
     * @param windowBytes at most this many bytes advised and not yet in the page cache (0: no bound, every run advised at once):
     *                    the disk's queue then holds a bounded amount of prefetch, so that QEMU's own reads as it starts (from a
     *                    cold cache: its binary, its libraries, its firmware) and the guest's first faults do not wait behind
     *                    all of it
     */
    public PageCachePrefetch(Path file, List<Long> pages, String threadName, long windowBytes) {
        this(file, pages, threadName, windowBytes, false);
    }

    /** @param holdUntilQemuStarted read nothing until {@link #qemuStarted} (or {@value #HOLD_TIMEOUT_NANOS} ns) */
    public PageCachePrefetch(Path file, List<Long> pages, String threadName, long windowBytes, boolean holdUntilQemuStarted) {
        if (windowBytes < 0) throw new IllegalArgumentException("prefetch window: expected >= 0 bytes, actual " + windowBytes);
        List<Run> runs = runs(pages);
        this.windowBytes = windowBytes;
        this.qemuUp = new java.util.concurrent.CountDownLatch(holdUntilQemuStarted ? 1 : 0);
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
        try {
            // Not before QEMU is up (or a few seconds passed): from a cold cache its start reads its binary, libraries and
            // firmware one small read after another, each waiting behind the prefetch's, however few were in flight (512 MiB
            // demo image, 17k pages, cold, 3 runs: running after 0.27-0.37 s with the prefetch from the start, 0.22-0.28 s
            // held, as without a prefetch).
            qemuUp.await(HOLD_TIMEOUT_NANOS, java.util.concurrent.TimeUnit.NANOSECONDS);
        } catch (InterruptedException e) {
            return;
        }
        if (stop.get()) return;
        if (!advise(file, runs)) readInOrder(file, runs);
    }

    /** Hands every run to the kernel's readahead (it reads them in the background, many at once); false if it cannot. */
    private boolean advise(Path file, List<Run> runs) {
        if (FADVISE == null) return false;
        long size;
        try {
            size = java.nio.file.Files.size(file);
        } catch (IOException e) {
            return false;
        }
        int fd;
        try (Arena arena = Arena.ofConfined()) {
            fd = (int) OPEN.invokeExact(arena.allocateFrom(file.toString()), O_RDONLY);
        } catch (Throwable t) {
            return false;
        }
        if (fd < 0) return false;
        try (Arena arena = Arena.ofConfined()) {
            Window window = new Window(() -> windowBytes, RUN_TIMEOUT_NANOS, windowBytes > 0 ? residency(fd, size, arena) : null,
                    System::nanoTime, () -> java.util.concurrent.locks.LockSupport.parkNanos(100_000), stop::get);
            forEachRun(runs, size, (at, length) -> {
                if (!window.admit(at, length)) return false;
                int error = (int) FADVISE.invokeExact(fd, at, length, POSIX_FADV_WILLNEED);
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
            try {
                int ignored = (int) CLOSE.invokeExact(fd);
            } catch (Throwable ignored) {
                // nothing to do: the descriptor goes with the process at the latest
            }
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

    /**
     * Whether a run is read: its last page's first byte, read with {@code RWF_NOWAIT}, which fails rather than wait for a page
     * not yet read. ({@code mincore} does not tell: it counts a page under readahead I/O as resident from the moment readahead
     * allocated it, so a window measured by it held no reads back at all.) Null where that read is not available or refused on
     * a page just read.
     */
    private static Residency residency(int fd, long fileBytes, Arena arena) throws Throwable {
        if (PREADV2 == null || fileBytes == 0) return null;
        MemorySegment iov = arena.allocate(16, 8); // struct iovec { void *base; size_t len; }
        MemorySegment one = arena.allocate(1);
        iov.set(ValueLayout.ADDRESS, 0, one);
        iov.set(ValueLayout.JAVA_LONG, 8, 1);
        Residency nowait = (at, length) -> {
            long last = Math.max(at, at + length - Wire.TARGET_PAGE_BYTES);
            try {
                return (long) PREADV2.invokeExact(fd, iov, 1, last, RWF_NOWAIT) == 1;
            } catch (Throwable t) {
                return true; // cannot tell: do not hold the prefetch back
            }
        };
        long probe = (long) PREADV2.invokeExact(fd, iov, 1, 0L, 0); // a blocking read: page 0 is now cached
        return probe == 1 && nowait.resident(0, Wire.TARGET_PAGE_BYTES) ? nowait : null;
    }

    /** Whether a run of the file is read into the page cache. */
    @FunctionalInterface
    interface Residency {
        boolean resident(long at, long length);
    }

    /**
     * The bound on advised reads in flight, pure: {@link #admit} waits (pausing between looks) until the runs advised before
     * leave room for the next, a run counting until it is resident or {@code runTimeoutNanos} old. Not thread-safe: one
     * prefetch thread.
     */
    static final class Window {
        private final java.util.function.LongSupplier windowBytes;
        private final long runTimeoutNanos;
        private final Residency residency;
        private final java.util.function.LongSupplier clock;
        private final Runnable pause;
        private final java.util.function.BooleanSupplier stopped;
        private final java.util.ArrayDeque<long[]> inFlight = new java.util.ArrayDeque<>(); // {at, length, advisedNanos}
        private long inFlightBytes;

        Window(java.util.function.LongSupplier windowBytes, long runTimeoutNanos, Residency residency, java.util.function.LongSupplier clock, Runnable pause,
               java.util.function.BooleanSupplier stopped) {
            this.windowBytes = windowBytes;
            this.runTimeoutNanos = runTimeoutNanos;
            this.residency = residency;
            this.clock = clock;
            this.pause = pause;
            this.stopped = stopped;
        }

        /** Waits for room for a run of {@code length} bytes at {@code at} and counts it as in flight; false if stopped meanwhile. */
        boolean admit(long at, long length) {
            if (residency == null || windowBytes.getAsLong() == 0) return true;
            while (!inFlight.isEmpty() && (inFlightBytes + length > windowBytes.getAsLong() || inFlight.size() >= MAX_RUNS_IN_FLIGHT)) {
                if (stopped.getAsBoolean()) return false;
                long[] oldest = inFlight.peekFirst();
                if (residency.resident(oldest[0], oldest[1]) || clock.getAsLong() - oldest[2] >= runTimeoutNanos) {
                    inFlight.removeFirst();
                    inFlightBytes -= oldest[1];
                } else {
                    pause.run();
                }
            }
            inFlight.addLast(new long[] {at, length, clock.getAsLong()});
            inFlightBytes += length;
            return true;
        }

        long inFlightBytes() {
            return inFlightBytes;
        }
    }

    /** QEMU is up: a prefetch held for QEMU's start begins. */
    public void qemuStarted() {
        qemuUp.countDown();
    }

    public Stats stats() {
        long end = finishedNanos;
        return new Stats(pagesRead.get(), runsRead.get(), (end == 0 ? System.nanoTime() : end) - startedNanos, end != 0, advised);
    }

    /** Stops the reads (the guest needs nothing more from it); waits up to 5 s for the thread. */
    @Override
    public void close() {
        stop.set(true);
        qemuUp.countDown();
        try {
            thread.join(5000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
