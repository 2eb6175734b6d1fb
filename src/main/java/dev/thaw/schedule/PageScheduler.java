package dev.thaw.schedule;

import dev.thaw.estimate.PageRef;
import dev.thaw.migration.Wire;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Optional;

/**
 * Decides which destination host page a postcopy restore sends next (the rules are in package-info). It hands out every
 * unit at most once and knows nothing of sockets, threads or clocks: the restore session asks and sends. Not thread-safe.
 */
public final class PageScheduler {
    /** Bounds the fault regions kept (the oldest go); 4096 regions of 2 MiB are 8 GiB. */
    static final int MAX_FAULT_RANGES = 4096;
    private static final long PAGE_BYTES = Wire.TARGET_PAGE_BYTES;
    /** Target pages in a 2 MiB region: one transparent huge page of guest RAM. */
    public static final int REGION_PAGES = 512;
    /** A region is prefetched whole only if at least half of it is working set. */
    static final int WHOLE_REGION_MIN_SET_PAGES = REGION_PAGES / 2;
    /** ... and it costs at most this many non-zero pages the working set does not hold (an eighth of the region). */
    static final int WHOLE_REGION_MAX_EXTRA_PAGES = REGION_PAGES / 8;

    private final List<BlockShape> blocks;
    private final ZeroPages zeros;
    private final SchedulePolicy policy;
    private final List<PageRef> predicted;
    private final BitSet[] sent;
    /** The rest of recent faults' regions, the newest fault's on top. */
    private final ArrayDeque<Region> regions = new ArrayDeque<>();
    private int predictedCursor;
    private int addressBlock;
    private int addressPage;
    private int chunkPages = SchedulePolicy.MIN_CHUNK_PAGES;
    private long backgroundBytes;
    /** Bytes the background handed out by address order, after the predicted queue: what a busy pace holds. */
    private long addressOrderBytes;
    /** Paces the background while the guest computes; null without a busy pace, or once dropped. */
    private BusyPace busyPace;
    private long backgroundClockNanos = Long.MIN_VALUE;
    /** Whether {@link #wholeRegions} handed out a region: then the discard is the whole complement. */
    private boolean wholeRegionsHandedOut;

    /** Pages {@code [next, end)} of a block that the background sends before the predicted queue. */
    private static final class Region {
        final int block;
        int next;
        final int end;

        Region(int block, int next, int end) {
            this.block = block;
            this.next = next;
            this.end = end;
        }
    }

    /**
     * A page request's outcome.
     *
     * @param duplicate the requested page was handed out already (the destination has it in flight): nothing to send
     * @param units     the requested page's unit, then its neighbours' (on 4 KiB blocks), in the order to send them
     */
    public record Demand(boolean duplicate, List<PageRange> units) {}

    /**
     * What to discard on the destination before LISTEN.
     *
     * @param ranges    one unit not handed out; after whole regions, the runs of pages not handed out, per block in address order
     * @param takenBack the unit taken back because nothing was left to discard (QEMU 7.2 needs one discard before LISTEN);
     *                  it is sent again later
     */
    public record Discards(List<PageRange> ranges, Optional<PageRange> takenBack) {}

    /**
     * @param predicted the pages the background stream sends first after fault regions, in this order (the queue beyond the
     *                  prefetched working set)
     */
    public PageScheduler(List<BlockShape> blocks, ZeroPages zeros, SchedulePolicy policy, List<PageRef> predicted) {
        if (blocks.isEmpty()) throw new IllegalArgumentException("blocks: expected at least one RAM block, actual none");
        this.blocks = List.copyOf(blocks);
        this.zeros = zeros;
        this.policy = policy;
        this.busyPace = policy.busyBackgroundBytesPerSecond() > 0 ? new BusyPace(policy.busyBackgroundBytesPerSecond()) : null;
        this.predicted = List.copyOf(predicted);
        this.sent = new BitSet[blocks.size()];
        for (int b = 0; b < blocks.size(); b++) sent[b] = new BitSet(blocks.get(b).pageCount());
    }

    public SchedulePolicy policy() {
        return policy;
    }

    /** Whether the page's unit was handed out already. */
    public boolean isSent(int block, int page) {
        checkPage(block, page);
        return sent[block].get(page);
    }

    /** The working set before the guest starts: the unit of each page not handed out yet, in the order given. */
    public List<PageRange> prefetch(List<PageRef> pages) {
        List<PageRange> units = new ArrayList<>(pages.size());
        for (PageRef ref : pages) {
            checkPage(ref.block(), ref.page());
            PageRange u = claim(ref.block(), ref.page());
            if (u != null) units.add(u);
        }
        return units;
    }

    /**
     * The 2 MiB regions of the working set to prefetch whole, before the discard (rule 2 in package-info): each region of a
     * 4 KiB block where at least {@link #WHOLE_REGION_MIN_SET_PAGES} non-zero pages are in {@code pages} and at most
     * {@link #WHOLE_REGION_MAX_EXTRA_PAGES} non-zero pages are not. Until the first discard QEMU leaves guest RAM eligible for
     * transparent huge pages, so the region's first page written may populate all of it at once: one fault instead of 512.
     * For that the region's every page must be sent (the zero ones as zero records, which QEMU only reads), and its non-zero
     * pages first: a read of an untouched region (a zero record) maps the shared huge zero page, and some kernels serve the
     * first write to that with 4 KiB pages (docs/protocol.md). Regions in the order of their first page in {@code pages}; each as runs of non-zero pages
     * by address, then runs of zero pages. All its pages are handed out.
     */
    public List<PageRange> wholeRegions(List<PageRef> pages) {
        LinkedHashMap<Long, int[]> setPages = new LinkedHashMap<>(); // region key -> non-zero pages in the set
        BitSet[] inSet = new BitSet[blocks.size()];
        for (PageRef ref : pages) {
            checkPage(ref.block(), ref.page());
            BlockShape shape = blocks.get(ref.block());
            int region = ref.page() / REGION_PAGES;
            if (shape.unitPages() != 1 || (region + 1) * REGION_PAGES > shape.pageCount()) continue;
            if (inSet[ref.block()] == null) inSet[ref.block()] = new BitSet(shape.pageCount());
            if (inSet[ref.block()].get(ref.page()) || zeros.isZero(ref.block(), ref.page())) continue;
            inSet[ref.block()].set(ref.page());
            setPages.computeIfAbsent(((long) ref.block() << 32) | region, k -> new int[1])[0]++;
        }
        List<PageRange> units = new ArrayList<>();
        for (var e : setPages.entrySet()) {
            if (e.getValue()[0] < WHOLE_REGION_MIN_SET_PAGES) continue;
            int block = (int) (e.getKey() >>> 32);
            int first = (int) (e.getKey() & 0xFFFF_FFFFL) * REGION_PAGES;
            int end = first + REGION_PAGES;
            int handedOut = sent[block].nextSetBit(first);
            if (handedOut >= 0 && handedOut < end) continue;
            BitSet zero = new BitSet(REGION_PAGES);
            int extra = 0;
            for (int p = first; p < end; p++) {
                if (zeros.isZero(block, p)) zero.set(p - first);
                else if (!inSet[block].get(p)) extra++;
            }
            if (extra > WHOLE_REGION_MAX_EXTRA_PAGES) continue;
            for (boolean zeroPass : new boolean[] {false, true}) {
                for (int p = zeroPass ? zero.nextSetBit(0) : zero.nextClearBit(0); p >= 0 && p < REGION_PAGES; ) {
                    int runEnd = zeroPass ? zero.nextClearBit(p) : zero.nextSetBit(p);
                    if (runEnd < 0 || runEnd > REGION_PAGES) runEnd = REGION_PAGES;
                    units.add(new PageRange(block, first + p, runEnd - p));
                    p = zeroPass ? zero.nextSetBit(runEnd) : zero.nextClearBit(runEnd);
                }
            }
            sent[block].set(first, end);
            wholeRegionsHandedOut = true;
        }
        return units;
    }

    /**
     * What to discard before LISTEN. QEMU 7.2 needs one discard (LISTEN deadlocks without it), and its first discard turns
     * transparent huge pages off for guest RAM; the pages not prefetched are missing already, since POSTCOPY_ADVISE discarded
     * all of guest RAM and the discard goes before any page. So one unit not handed out is enough: the first one. Only after
     * whole regions ({@link #wholeRegions}, sent before the discard into huge pages) is it the whole complement, which also
     * takes back any zero page a huge page brought in outside them. If every unit was handed out, the last unit of the first
     * block is taken back to be the discard (see {@link Discards#takenBack}). Until the eleventh session it was always the
     * complement: one range per run of pages not prefetched, which a 4 GiB guest with a scattered working set turned into
     * 66k ranges, each one madvise in QEMU, before the first page went.
     */
    public Discards discards() {
        List<PageRange> ranges = new ArrayList<>();
        for (int b = 0; b < blocks.size(); b++) {
            int count = blocks.get(b).pageCount();
            int firstFree = sent[b].nextClearBit(0);
            if (!wholeRegionsHandedOut && firstFree < count) {
                return new Discards(List.of(new PageRange(b, firstFree, blocks.get(b).unitPages())), Optional.empty());
            }
            for (int p = firstFree; p < count; ) {
                int end = sent[b].nextSetBit(p);
                if (end < 0 || end > count) end = count;
                ranges.add(new PageRange(b, p, end - p));
                p = sent[b].nextClearBit(end);
            }
        }
        if (!ranges.isEmpty()) return new Discards(List.copyOf(ranges), Optional.empty());
        int unit = blocks.getFirst().unitPages();
        int first = blocks.getFirst().pageCount() - unit;
        if (first < 0) throw new IllegalStateException("discards: block 0 has no pages to take back");
        sent[0].clear(first, first + unit);
        PageRange back = new PageRange(0, first, unit);
        return new Discards(List.of(back), Optional.of(back));
    }

    /**
     * A page request from the destination: its unit and, on 4 KiB blocks, up to {@code neighbourPages} following pages not
     * handed out yet; the fault's region goes on top of the background order, and the next chunk is the smallest.
     */
    public Demand request(int block, int page) {
        checkPage(block, page);
        if (sent[block].get(page)) return new Demand(true, List.of());
        List<PageRange> units = new ArrayList<>(1 + policy.neighbourPages());
        units.add(claim(block, page));
        BlockShape shape = blocks.get(block);
        if (shape.unitPages() == 1) {
            int limit = Math.min(shape.pageCount(), page + 1 + policy.neighbourPages());
            for (int n = page + 1; n < limit; n++) {
                PageRange u = claim(block, n);
                if (u != null) units.add(u);
            }
        }
        followFault(block, page);
        chunkPages = SchedulePolicy.MIN_CHUNK_PAGES;
        return new Demand(false, units);
    }

    /**
     * Postcopy recovery: the destination's received bitmaps, one per block, become the units handed out. A unit handed out on
     * the broken connection but not placed is handed out again (once); the background starts over (no fault regions, the
     * predicted queue and the address cursor from the start) and skips what was received. The hold and pace go on.
     *
     * @param received bit {@code p} of block {@code b}: the destination has page {@code p}; a unit with any page received
     *                 counts as received whole (QEMU places a host page at once)
     */
    public void resume(List<BitSet> received) {
        if (received.size() != blocks.size()) {
            throw new IllegalArgumentException("received bitmaps: expected one per block (" + blocks.size() + "), actual " + received.size());
        }
        for (int b = 0; b < blocks.size(); b++) {
            BlockShape shape = blocks.get(b);
            BitSet r = received.get(b);
            if (r.length() > shape.pageCount()) {
                throw new IllegalArgumentException("received bitmap of block " + b + ": expected pages below " + shape.pageCount()
                        + ", actual page " + (r.length() - 1));
            }
            sent[b].clear();
            int unit = shape.unitPages();
            for (int p = r.nextSetBit(0); p >= 0; p = r.nextSetBit(p - p % unit + unit)) {
                int first = p - p % unit;
                sent[b].set(first, Math.min(first + unit, shape.pageCount()));
            }
        }
        regions.clear();
        predictedCursor = 0;
        addressBlock = 0;
        addressPage = 0;
        chunkPages = SchedulePolicy.MIN_CHUNK_PAGES;
    }

    /**
     * The guest's vCPUs' time on a CPU so far (summed), read at {@code nowNanos}: with a busy pace
     * ({@link SchedulePolicy#busyBackgroundBytesPerSecond}) it decides whether the guest computes. Ignored without one.
     */
    public void vcpuRunTime(long nowNanos, long runNanos, int vcpuCount) {
        if (busyPace != null) busyPace.vcpuRunTime(nowNanos, runNanos, vcpuCount);
    }

    public boolean hasBusyPace() {
        return busyPace != null;
    }

    /** No busy pace from now on: the guest's vCPU time cannot be read, and a pace without it would hold the stream for good. */
    public void dropBusyPace() {
        busyPace = null;
    }

    /** The guest runs from now: the hold and the pace of the background count from here. */
    public void guestStarted(long nowNanos) {
        backgroundClockNanos = nowNanos;
    }

    /**
     * How long the background must wait at {@code nowNanos}: until the hold ends, or until the bytes it sent are back under
     * its pace; 0 to go on. Before {@link #guestStarted} there is no background.
     */
    public long backgroundWaitNanos(long nowNanos) {
        if (backgroundClockNanos == Long.MIN_VALUE) throw new IllegalStateException("background before the guest started");
        long due = backgroundClockNanos + policy.holdBackgroundNanos();
        if (policy.backgroundBytesPerSecond() > 0) {
            due += (long) (backgroundBytes * 1e9 / policy.backgroundBytesPerSecond()); // a double: no overflow past 9 GB
        }
        long wait = Math.max(0, due - nowNanos);
        // The busy pace holds only the rest of memory: what the guest is predicted to touch (the queue, its faults' regions)
        // goes at full speed, or the guest would fault on it instead.
        if (wait == 0 && busyPace != null && regions.isEmpty() && predictedCursor >= predicted.size()) {
            wait = busyPace.waitNanos(nowNanos, addressOrderBytes);
        }
        return wait;
    }

    /**
     * The next background chunk: units of recent faults' regions, then of the predicted queue, then non-zero units by
     * address, together at least one and about {@link #currentChunkPages} pages. Empty once every non-zero page was handed
     * out ({@link #finished}).
     */
    public List<PageRange> nextBackground() {
        int limit = chunkPages;
        List<PageRange> chunk = new ArrayList<>();
        int pages = 0;
        while (!regions.isEmpty() && pages < limit) {
            Region r = regions.peek();
            int unit = blocks.get(r.block).unitPages();
            int p = sent[r.block].nextClearBit(r.next);
            p -= p % unit;
            if (p >= r.end) {
                regions.pop();
                continue;
            }
            r.next = p + unit;
            if (allZero(r.block, p)) continue;
            PageRange u = claim(r.block, p);
            chunk.add(u);
            pages += u.pageCount();
        }
        while (predictedCursor < predicted.size() && pages < limit) {
            PageRef ref = predicted.get(predictedCursor++);
            if (ref.block() >= blocks.size() || ref.page() >= blocks.get(ref.block()).pageCount()) continue;
            if (sent[ref.block()].get(ref.page()) || zeros.isZero(ref.block(), ref.page())) continue;
            PageRange u = claim(ref.block(), ref.page());
            chunk.add(u);
            pages += u.pageCount();
        }
        int beforeAddressOrder = pages;
        while (addressBlock < blocks.size() && pages < limit) {
            BlockShape shape = blocks.get(addressBlock);
            int p = sent[addressBlock].nextClearBit(addressPage);
            p -= p % shape.unitPages();
            if (p >= shape.pageCount()) {
                addressBlock++;
                addressPage = 0;
                continue;
            }
            addressPage = p + shape.unitPages();
            if (sent[addressBlock].get(p) || allZero(addressBlock, p)) continue;
            PageRange u = claim(addressBlock, p);
            chunk.add(u);
            pages += u.pageCount();
        }
        backgroundBytes += pages * PAGE_BYTES;
        addressOrderBytes += (long) (pages - beforeAddressOrder) * PAGE_BYTES;
        if (!chunk.isEmpty()) chunkPages = Math.min(policy.maxChunkPages(), chunkPages * 2);
        return chunk;
    }

    /** The size the next background chunk aims at: doubles after each chunk, back to the minimum at each request. */
    public int currentChunkPages() {
        return chunkPages;
    }

    /** Every non-zero page was handed out: the stream may end (EOF). */
    public boolean finished() {
        return addressBlock >= blocks.size();
    }

    /**
     * Pages never handed out, all of which must be zero: after EOF QEMU reads them as zero, so a non-zero one would be
     * silent corruption.
     *
     * @throws IllegalStateException naming the first non-zero page never handed out
     */
    public long zeroPagesUnsent() {
        long count = 0;
        for (int b = 0; b < blocks.size(); b++) {
            int pageCount = blocks.get(b).pageCount();
            for (int p = sent[b].nextClearBit(0); p < pageCount; p = sent[b].nextClearBit(p + 1)) {
                if (!zeros.isZero(b, p)) throw new IllegalStateException("page " + p + " of block " + b + " was never sent");
                count++;
            }
        }
        return count;
    }

    /** Marks the unit holding the page handed out; null if it was already. */
    private PageRange claim(int block, int page) {
        int unit = blocks.get(block).unitPages();
        int first = page - page % unit;
        if (sent[block].get(first)) return null;
        sent[block].set(first, first + unit);
        return new PageRange(block, first, unit);
    }

    /** Queues the rest of the fault's region: from the fault onwards on top, then the region's start. */
    private void followFault(int block, int page) {
        int region = policy.faultRegionPages();
        if (region <= blocks.get(block).unitPages()) return;
        int start = page - page % region;
        int end = Math.min(blocks.get(block).pageCount(), start + region);
        while (regions.size() >= MAX_FAULT_RANGES - 1) regions.removeLast();
        if (start < page) regions.push(new Region(block, start, page));
        regions.push(new Region(block, page, end));
    }

    private boolean allZero(int block, int first) {
        for (int q = first; q < first + blocks.get(block).unitPages(); q++) {
            if (!zeros.isZero(block, q)) return false;
        }
        return true;
    }

    private void checkPage(int block, int page) {
        if (block < 0 || block >= blocks.size() || page < 0 || page >= blocks.get(block).pageCount()) {
            throw new IllegalArgumentException("page: expected a block below " + blocks.size() + " and a page inside it, actual "
                    + block + "/" + page);
        }
    }
}
