package dev.thaw.schedule;

/**
 * The scheduler's knobs (package-info lists the rules they tune).
 *
 * @param neighbourPages          pages after a requested one sent with it on 4 KiB blocks (HotRestore sends 4 per fault: 3)
 * @param maxChunkPages           the most background pages per chunk: a request waits behind at most this many
 * @param faultRegionPages        the aligned region around each demand fault that the background sends next; 0: none
 * @param holdBackgroundNanos     no background pages for this long after the guest starts (tracing)
 * @param backgroundBytesPerSecond pace of the background stream, 0 for none; demand pages are never paced
 * @param busyBackgroundBytesPerSecond pace of the background while the guest's vCPUs compute ({@link BusyPace}), 0 for none
 * @param wholeRegionPrefetch     prefetch the working set's nearly full 2 MiB regions whole, before the discard, so that each
 *                                may land in one transparent huge page ({@link PageScheduler#wholeRegions}); off by default:
 *                                no sooner at 512 MiB and later at 4 GiB here (docs/benchmarks.md, eleventh session)
 */
public record SchedulePolicy(int neighbourPages, int maxChunkPages, int faultRegionPages, long holdBackgroundNanos,
                             long backgroundBytesPerSecond, long busyBackgroundBytesPerSecond, boolean wholeRegionPrefetch) {
    /** The background chunk right after a request: a later request waits behind at most this many pages. */
    public static final int MIN_CHUNK_PAGES = 4;
    /** The most pages per background chunk that {@link #maxChunkPages} may be set to. */
    public static final int MAX_CHUNK_PAGES = 4096;
    /** 2 MiB: a guest huge page or buddy block; region sizes 512 KiB-32 MiB measured the same at 4 GiB (docs/benchmarks.md). */
    public static final int DEFAULT_FAULT_REGION_PAGES = 512;
    /** At most 32 pages (128 KiB) per chunk: with a 64 KiB send buffer a request waits behind at most 192 KiB. */
    public static final int DEFAULT_MAX_CHUNK_PAGES = 32;
    /**
     * A ws restore's busy pace: 64 MB/s, a tenth of the unpaced stream here. At 4 GiB, W=256 scattered, cold, it kept the guest
     * responsive from when it ran in 4 of 5 repetitions (stall TTR 0.82 s at the median, against 3.43 s unpaced; the restore
     * completed after 60 s instead of 7 s).
     */
    public static final long DEFAULT_WS_BUSY_BACKGROUND_BYTES_PER_SECOND = 64_000_000L;

    public SchedulePolicy {
        if (neighbourPages < 0 || neighbourPages > 511) {
            throw new IllegalArgumentException("neighbour pages: expected 0..511, actual " + neighbourPages);
        }
        if (maxChunkPages < MIN_CHUNK_PAGES || maxChunkPages > MAX_CHUNK_PAGES) {
            throw new IllegalArgumentException("chunk pages: expected " + MIN_CHUNK_PAGES + ".." + MAX_CHUNK_PAGES + ", actual "
                    + maxChunkPages);
        }
        if (faultRegionPages < 0 || faultRegionPages > (1 << 20) || (faultRegionPages & (faultRegionPages - 1)) != 0) {
            throw new IllegalArgumentException("fault region: expected 0 or a power of two up to 2^20 pages, actual " + faultRegionPages);
        }
        if (holdBackgroundNanos < 0) throw new IllegalArgumentException("trace period: expected >= 0 ns, actual " + holdBackgroundNanos);
        if (backgroundBytesPerSecond < 0) {
            throw new IllegalArgumentException("background rate: expected >= 0 bytes/s, actual " + backgroundBytesPerSecond);
        }
        if (busyBackgroundBytesPerSecond < 0) {
            throw new IllegalArgumentException("busy guest's background rate: expected >= 0 bytes/s, actual " + busyBackgroundBytesPerSecond);
        }
    }

    public static SchedulePolicy defaults() {
        return new SchedulePolicy(3, DEFAULT_MAX_CHUNK_PAGES, DEFAULT_FAULT_REGION_PAGES, 0, 0, 0, false);
    }

    /**
     * Tracing: for {@code holdNanos} after the guest starts only what it asks for, without neighbours, so that every page it
     * touches first in that time faults once and in order (the post-save trace); then the rest as usual.
     */
    public SchedulePolicy tracing(long holdNanos) {
        return new SchedulePolicy(0, maxChunkPages, faultRegionPages, holdNanos, backgroundBytesPerSecond, busyBackgroundBytesPerSecond,
                wholeRegionPrefetch);
    }

    public SchedulePolicy withNeighbourPages(int pages) {
        return new SchedulePolicy(pages, maxChunkPages, faultRegionPages, holdBackgroundNanos, backgroundBytesPerSecond,
                busyBackgroundBytesPerSecond, wholeRegionPrefetch);
    }

    public SchedulePolicy withMaxChunkPages(int pages) {
        return new SchedulePolicy(neighbourPages, pages, faultRegionPages, holdBackgroundNanos, backgroundBytesPerSecond,
                busyBackgroundBytesPerSecond, wholeRegionPrefetch);
    }

    public SchedulePolicy withFaultRegionPages(int pages) {
        return new SchedulePolicy(neighbourPages, maxChunkPages, pages, holdBackgroundNanos, backgroundBytesPerSecond,
                busyBackgroundBytesPerSecond, wholeRegionPrefetch);
    }

    public SchedulePolicy withBackgroundBytesPerSecond(long bytesPerSecond) {
        return new SchedulePolicy(neighbourPages, maxChunkPages, faultRegionPages, holdBackgroundNanos, bytesPerSecond,
                busyBackgroundBytesPerSecond, wholeRegionPrefetch);
    }

    public SchedulePolicy withBusyBackgroundBytesPerSecond(long bytesPerSecond) {
        return new SchedulePolicy(neighbourPages, maxChunkPages, faultRegionPages, holdBackgroundNanos, backgroundBytesPerSecond,
                bytesPerSecond, wholeRegionPrefetch);
    }

    public SchedulePolicy withWholeRegionPrefetch(boolean whole) {
        return new SchedulePolicy(neighbourPages, maxChunkPages, faultRegionPages, holdBackgroundNanos, backgroundBytesPerSecond,
                busyBackgroundBytesPerSecond, whole);
    }
}
