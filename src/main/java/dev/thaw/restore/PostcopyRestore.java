package dev.thaw.restore;

import dev.thaw.estimate.PageRef;
import dev.thaw.image.CheckpointImage;
import dev.thaw.migration.RamBlock;
import dev.thaw.migration.ReturnPathMessage;
import dev.thaw.migration.ReturnPathReader;
import dev.thaw.migration.StreamFormatException;
import dev.thaw.migration.StreamWriter;
import dev.thaw.migration.Wire;
import dev.thaw.qemu.QemuVm;
import dev.thaw.qemu.QmpClient;
import dev.thaw.qemu.QmpException;
import dev.thaw.util.ChannelStreams;
import dev.thaw.util.CountingOutputStream;
import dev.thaw.util.StallWatchdog;
import java.io.BufferedOutputStream;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.OutputStream;
import java.net.StandardSocketOptions;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Lazy and working-set restore: Thaw as the postcopy migration source of a fresh QEMU.
 *
 * <pre>
 *  header+configuration, OPEN_RETURN_PATH, PING 1, POSTCOPY_ADVISE, RAM START (block list)
 *  working set as precopy pages (ws mode; in predicted order)
 *  POSTCOPY_RAM_DISCARD of exactly the pages not sent (at least one range: QEMU 7.2 deadlocks otherwise)
 *  PING 2, PACKAGED(LISTEN, device state, PING 3, RUN)            -> the guest runs
 *  pages: demand requests first (with neighbours), the rest in the background, never one twice
 *  RAM END, EOF; then the destination answers SHUT(0)
 * </pre>
 *
 * <p>Threads: the caller's thread is the page scheduler and the only writer of the stream; a
 * return-path reader, started before the package is written (requests arrive while the device
 * state loads), queues page requests. A request preempts background work at the next chunk
 * boundary; background chunks are small and the socket send buffer is limited, so a requested
 * page waits behind at most about a chunk plus the send buffer.
 *
 * <p>Zero pages are not sent in the background: POSTCOPY_ADVISE discarded all guest RAM, so after
 * EOF every page never sent reads as zero. A request for a zero page is answered with a ZERO record.
 * Every non-zero page of the image is sent before EOF, and the result accounts for every page.
 *
 * <p>Failure: a dead QEMU, a broken connection or a protocol error ends the restore with an error
 * and kills the QEMU. A Thaw that is killed instead leaves QEMU paused in postcopy (its vCPUs wait
 * for pages forever); see docs/protocol.md.
 */
public final class PostcopyRestore {
    private static final Logger log = LoggerFactory.getLogger(PostcopyRestore.class);
    private static final int PAGE = Wire.TARGET_PAGE_BYTES;
    /** The background chunk right after a request: a later request waits behind at most this many pages. */
    public static final int MIN_CHUNK_PAGES = 4;
    /** The region around a demand fault that the background stream sends next: 2 MiB ({@link Options#withFaultRegion}). */
    public static final int DEFAULT_FAULT_REGION_PAGES = 512;


    /**
     * @param workingSet         pages to send before the guest starts, in the order to send them (empty: lazy)
     * @param backgroundFirst    pages the background stream sends before the rest (by address), in this order
     * @param neighbourPages     pages after a requested one sent with it (HotRestore sends 4 per fault: 3)
     * @param collapseHugePages  after completion, collapse guest RAM into huge pages (MADV_COLLAPSE)
     * @param hugetlbGuestRam    back {@code pc.ram} with 2 MiB hugetlb pages on the destination
     * @param chunkPages         the most background pages per section. The chunk starts at
     *                           {@link #MIN_CHUNK_PAGES}, doubles after every chunk sent without a request
     *                           in between, and falls back to the minimum at each request (CRIU's
     *                           lazy-pages rule): while the guest faults, a request waits behind a few
     *                           pages; while it does not, the stream runs in large chunks
     * @param sendBufferBytes    the socket send buffer (small: a request waits behind at most this)
     * @param holdBackground     no background pages for this long after the package is sent (tracing; see {@link #withTracing})
     * @param backgroundBytesPerSecond pace of the background stream, 0 for none ({@link #withBackgroundRate})
     * @param faultRegionPages   the aligned region around each demand fault that the background stream sends next, most
     *                           recent fault first; 0 for address order only ({@link #withFaultRegion})
     */
    public record Options(String vmName, List<PageRef> workingSet, List<PageRef> backgroundFirst, int neighbourPages, int chunkPages,
                          int sendBufferBytes, Duration stallTimeout, Duration completionTimeout, boolean collapseHugePages,
                          boolean hugetlbGuestRam, Duration holdBackground, long backgroundBytesPerSecond, int faultRegionPages) {
        public static Options lazy(String vmName) {
            // At most 32 pages (128 KiB) per chunk and a 64 KiB send buffer: a request waits behind at most
            // 192 KiB of background data, about 0.4 ms at the 450-550 MB/s measured here.
            return new Options(vmName, List.of(), List.of(), 3, 32, 64 << 10, Duration.ofSeconds(60), Duration.ofSeconds(120), false, false,
                    Duration.ZERO, 0, DEFAULT_FAULT_REGION_PAGES);
        }

        public Options withWorkingSet(List<PageRef> pages) {
            return new Options(vmName, List.copyOf(pages), backgroundFirst, neighbourPages, chunkPages, sendBufferBytes, stallTimeout,
                    completionTimeout, collapseHugePages, hugetlbGuestRam, holdBackground, backgroundBytesPerSecond, faultRegionPages);
        }

        /** Pages the background stream sends first, in this order (the predicted pages beyond the prefetched working set). */
        public Options withBackgroundFirst(List<PageRef> pages) {
            return new Options(vmName, workingSet, List.copyOf(pages), neighbourPages, chunkPages, sendBufferBytes, stallTimeout,
                    completionTimeout, collapseHugePages, hugetlbGuestRam, holdBackground, backgroundBytesPerSecond, faultRegionPages);
        }

        /**
         * The scheduler's knobs: the largest background chunk in pages and the socket send buffer in bytes.
         * Together they bound what a demand page can queue behind (docs/protocol.md, head-of-line).
         */
        public Options withScheduling(int maxChunkPages, int sendBufferByteSize) {
            if (maxChunkPages < MIN_CHUNK_PAGES || maxChunkPages > 4096) {
                throw new IllegalArgumentException("chunk pages: expected " + MIN_CHUNK_PAGES + "..4096, actual " + maxChunkPages);
            }
            if (sendBufferByteSize < 4096 || sendBufferByteSize > (64 << 20)) {
                throw new IllegalArgumentException("send buffer: expected 4 KiB..64 MiB, actual " + sendBufferByteSize + " bytes");
            }
            return new Options(vmName, workingSet, backgroundFirst, neighbourPages, maxChunkPages, sendBufferByteSize, stallTimeout,
                    completionTimeout, collapseHugePages, hugetlbGuestRam, holdBackground, backgroundBytesPerSecond, faultRegionPages);
        }

        /**
         * Tracing: for {@code hold} after the guest starts, send only what it asks for, without neighbours, so that every
         * page it touches first in that time faults once and in order (the post-save trace); then stream the rest as usual.
         */
        public Options withTracing(Duration hold) {
            if (hold.isNegative()) throw new IllegalArgumentException("trace period: expected >= 0, actual " + hold);
            return new Options(vmName, workingSet, backgroundFirst, 0, chunkPages, sendBufferBytes, stallTimeout,
                    completionTimeout, collapseHugePages, hugetlbGuestRam, hold, backgroundBytesPerSecond, faultRegionPages);
        }

        /**
         * Paces the background stream to at most this many bytes per second (0: as fast as it goes). On a host with few
         * cores the stream's work (Thaw reading and writing pages, QEMU placing them) competes with the guest's vCPU;
         * pacing trades a later completion for a faster guest meanwhile. Demand pages are never paced.
         */
        public Options withBackgroundRate(long bytesPerSecond) {
            if (bytesPerSecond < 0) throw new IllegalArgumentException("background rate: expected >= 0, actual " + bytesPerSecond);
            return new Options(vmName, workingSet, backgroundFirst, neighbourPages, chunkPages, sendBufferBytes, stallTimeout,
                    completionTimeout, collapseHugePages, hugetlbGuestRam, holdBackground, bytesPerSecond, faultRegionPages);
        }

        /**
         * The background stream's order after a demand fault: the rest of the fault's aligned region of this many pages
         * (from the fault onwards, then its start), most recent fault first, before the predicted queue and the address
         * order. A fault says the guest is working there now; its neighbourhood is the best guess of what it touches next
         * (a 2 MiB region is a guest huge page or buddy block). 0: predicted queue, then address order only.
         */
        public Options withFaultRegion(int pages) {
            if (pages < 0 || pages > (1 << 20) || (pages & (pages - 1)) != 0) {
                throw new IllegalArgumentException("fault region: expected 0 or a power of two up to 2^20 pages, actual " + pages);
            }
            return new Options(vmName, workingSet, backgroundFirst, neighbourPages, chunkPages, sendBufferBytes, stallTimeout,
                    completionTimeout, collapseHugePages, hugetlbGuestRam, holdBackground, backgroundBytesPerSecond, pages);
        }

        /** After completion, collapse guest RAM into transparent huge pages ({@link HugePages}). */
        public Options withCollapseHugePages(boolean collapse) {
            return new Options(vmName, workingSet, backgroundFirst, neighbourPages, chunkPages, sendBufferBytes, stallTimeout,
                    completionTimeout, collapse, hugetlbGuestRam, holdBackground, backgroundBytesPerSecond, faultRegionPages);
        }

        /**
         * Back the restored guest's RAM ({@code pc.ram}) with 2 MiB hugetlb pages: full speed at once
         * (no 4 KiB phase), but every fault and background step moves a whole 2 MiB page.
         */
        public Options withHugetlbGuestRam(boolean hugetlb) {
            return new Options(vmName, workingSet, backgroundFirst, neighbourPages, chunkPages, sendBufferBytes, stallTimeout,
                    completionTimeout, collapseHugePages, hugetlb, holdBackground, backgroundBytesPerSecond, faultRegionPages);
        }
    }

    /** One page request as it arrived, for the trace and the learned working set. */
    public record Fault(int block, int page, long atNanos, boolean alreadySent) {}

    /**
     * Times are nanoseconds after the restore began.
     *
     * @param runningNanos       the guest running (QEMU's RESUME event after it processed RUN)
     * @param completedNanos     SHUT(0) received: every page placed, userfaultfd released
     * @param demandFaults       page requests for pages not yet sent
     * @param prefetchedPages    working-set pages sent before the guest started
     * @param demandPages        pages sent because of a request (neighbours included)
     * @param backgroundPages    pages sent by the background stream
     * @param zeroPagesUnsent    zero pages never sent (they read as zero after completion)
     * @param faultServiceNanos  per demand fault: request read to page written to the socket
     * @param faultQueueNanos    per demand fault: request read to the scheduler taking it (the part spent behind background work)
     * @param prefetched         the working-set pages sent before the guest started, in order
     * @param vcpuBlockedMillis  QEMU's postcopy-blocktime: the time vCPUs spent waiting for missing pages, summed over vCPUs
     *                           (the guest's view of every fault: QEMU's fault thread, Thaw, the socket, placing); -1 if not reported
     */
    public record Result(QemuVm vm, long qemuReadyNanos, long runningNanos, long completedNanos, long demandFaults,
                         long duplicateRequests, long prefetchedPages, long demandPages, long backgroundPages, long zeroPagesUnsent,
                         long pageCount, long streamBytes, List<Fault> faults, long[] faultServiceNanos, RestoreEventLog events,
                         java.util.Optional<HugePages.CollapseReport> collapse, long[] faultQueueNanos, long vcpuBlockedMillis,
                         List<PageRef> prefetched) {
        /** The pages demand faults asked for (requests for pages already sent left out), in arrival order. */
        public List<PageRef> faultedPages() {
            return faults.stream().filter(f -> !f.alreadySent()).map(f -> new PageRef(f.block(), f.page())).distinct().toList();
        }
    }

    private PostcopyRestore() {}

    public static Result restore(CheckpointImage image, Options options, Consumer<String> progress) {
        if (options.hugetlbGuestRam() && options.collapseHugePages()) {
            throw new IllegalArgumentException("--collapse-huge-pages and --hugetlb exclude each other: hugetlb guest RAM is in"
                    + " 2 MiB pages from the start, and MADV_COLLAPSE does not apply to it");
        }
        for (RamBlock b : image.ramBlocks()) {
            if (b.pageByteSize() != PAGE) {
                throw new RestoreException("RAM block " + b.name() + " was saved with " + b.pageByteSize() + "-byte pages: this"
                        + " restore reads images of 4 KiB pages (expected 4096)", null);
            }
        }
        long started = System.nanoTime();
        dev.thaw.qemu.VmConfig config = IncomingQemu.config(image, options.vmName());
        List<RamBlock> destination = image.ramBlocks();
        Runnable release = null;
        if (options.hugetlbGuestRam()) {
            long ramBytes = config.memoryMiB() << 20;
            boolean hasRam = destination.stream().anyMatch(b -> b.name().equals("pc.ram") && b.usedByteSize() == ramBytes);
            if (!hasRam || ramBytes % HugePages.HUGE_PAGE_BYTES != 0) {
                throw new RestoreException("hugetlb guest RAM: expected a block pc.ram of " + ramBytes + " bytes, a multiple of 2 MiB, actual "
                        + destination.stream().map(b -> b.name() + "=" + b.usedByteSize()).toList(), null);
            }
            // With the id pc.ram the block keeps its name, so an image of an ordinary guest restores into it.
            config = config.withExtraArgs(List.of("-object", "memory-backend-memfd,id=pc.ram,size=" + config.memoryMiB()
                    + "M,hugetlb=on,hugetlbsize=2M", "-machine", "memory-backend=pc.ram"));
            destination = destination.stream().map(b -> b.name().equals("pc.ram")
                    ? new RamBlock(b.name(), b.usedByteSize(), HugePages.HUGE_PAGE_BYTES) : b).toList();
            release = HugePages.allowHugetlbPages(ramBytes / HugePages.HUGE_PAGE_BYTES);
        }
        QemuVm vm;
        try {
            vm = QemuVm.launch(config);
        } catch (RuntimeException e) {
            if (release != null) release.run();
            throw e;
        }
        if (release != null) vm.onClose(release);
        try {
            return new Session(image, destination, options, vm, started, progress).run();
        } catch (RuntimeException e) {
            vm.close();
            throw e;
        }
    }

    /** One restore: the scheduler state, owned by the caller's thread. */
    private static final class Session {
        private final CheckpointImage image;
        private final Options options;
        private final QemuVm vm;
        private final long started;
        private final Consumer<String> progress;
        private final List<RamBlock> blocks;
        private final BitSet[] sent;
        private final Map<String, Integer> blockIndex = new HashMap<>();
        private final LinkedBlockingQueue<ReturnPathMessage.PageRequest> requests = new LinkedBlockingQueue<>();
        private final CompletableFuture<Integer> shut = new CompletableFuture<>();
        private final List<Fault> faults = new ArrayList<>();
        private final List<Long> serviceNanos = new ArrayList<>();
        private final List<Long> queueNanos = new ArrayList<>();
        private final AtomicLong bytes = new AtomicLong();
        private final AtomicLong waitingProgress = new AtomicLong(); // moves while the scheduler waits by design: not a stall
        private final RestoreEventLog events = new RestoreEventLog();
        private final byte[] page = new byte[PAGE];
        private volatile String returnPathFailure;
        private StreamWriter writer;
        private int sid;
        private long demandFaults;
        private long duplicates;
        private long prefetched;
        private long demandPages;
        private long backgroundPages;

        /** Page ranges {block, next page, end page} the background stream sends first, the newest fault's on top. */
        private final ArrayDeque<int[]> faultRanges = new ArrayDeque<>();
        /** Bounds the fault ranges kept (the oldest go); 4096 regions of 2 MiB are 8 GiB. */
        private static final int MAX_FAULT_RANGES = 4096;

        /** Target pages per destination host page, per block: 1, or 512 for a 2 MiB hugetlb block. */
        private final int[] unitPages;

        Session(CheckpointImage image, List<RamBlock> destinationBlocks, Options options, QemuVm vm, long started, Consumer<String> progress) {
            this.image = image;
            this.options = options;
            this.vm = vm;
            this.started = started;
            this.progress = progress;
            this.blocks = destinationBlocks;
            this.unitPages = destinationBlocks.stream().mapToInt(b -> (int) (b.pageByteSize() / PAGE)).toArray();
            this.sent = new BitSet[blocks.size()];
            for (int i = 0; i < blocks.size(); i++) {
                sent[i] = new BitSet(blocks.get(i).pageCount());
                blockIndex.put(blocks.get(i).name(), i);
            }
        }

        private long now() {
            return System.nanoTime() - started;
        }

        Result run() {
            long qemuReady = System.nanoTime() - started;
            events.add(RestoreEventLog.Type.QEMU_READY, 0, 0, qemuReady);
            QmpClient qmp = vm.qmp();
            Path socket = vm.runDir().resolve("incoming.sock");
            try {
                qmp.migrateSetCapabilities(Map.of("postcopy-ram", true, "events", true, "postcopy-blocktime", true));
                qmp.migrateIncoming("unix:" + socket);
            } catch (QmpException e) {
                throw new RestoreException(vm.name() + ": QEMU refused the postcopy setup (is userfaultfd usable? see thaw doctor): "
                        + e.getMessage(), e);
            }
            try (SocketChannel channel = IncomingQemu.connect(socket, vm, Duration.ofSeconds(10));
                 StallWatchdog watchdog = new StallWatchdog("postcopy-" + vm.name(), () -> bytes.get() + waitingProgress.get(),
                         options.stallTimeout(), channel)) {
                channel.setOption(StandardSocketOptions.SO_SNDBUF, options.sendBufferBytes());
                Thread reader = Thread.ofPlatform().daemon().name("return-path-" + vm.name()).start(() -> readReturnPath(channel));
                OutputStream out = new BufferedOutputStream(new CountingOutputStream(ChannelStreams.output(channel), bytes), 256 << 10);
                writer = new StreamWriter(out, blocks);
                sid = image.manifest().ramSectionId();
                long running;
                try {
                    sendUpToSwitch();
                    running = System.nanoTime() - started;
                    events.add(RestoreEventLog.Type.PACKAGE_SENT, 0, 0, running);
                    progress.accept(String.format("guest running after %.2f s; serving pages", running / 1e9));
                    servePages();
                    writer.openRamSection(sid, true);
                    writer.closeRamSection(sid);
                    writer.eof();
                    writer.flush();
                    events.add(RestoreEventLog.Type.EOF_SENT, 0, 0, now());
                } catch (IOException e) {
                    throw failure("sending pages failed after " + bytes.get() + " bytes" + (watchdog.stalled()
                            ? " (QEMU read nothing for " + options.stallTimeout().toSeconds() + " s)" : "") + ": " + e.getMessage(), e);
                }
                int status = awaitShut();
                if (status != 0) throw failure("the destination finished with SHUT status " + status + " (it saw an error)", null);
                long completed = System.nanoTime() - started;
                events.add(RestoreEventLog.Type.SHUT, 0, status, completed);
                QmpClient.MigrationInfo done = IncomingQemu.awaitCompleted(vm, options.completionTimeout());
                events.add(RestoreEventLog.Type.COMPLETED, 0, 0, now());
                // QEMU's own measure of the guest's stall (capability postcopy-blocktime): per vCPU, fault to page placed.
                long blockedMillis = done.raw().path("postcopy-blocktime").asLong(-1);
                reader.join(5000);
                // The guest ran from the moment QEMU processed RUN, which it reports with the RESUME event.
                long resumed = vm.qmp().events().snapshot().stream().filter(e -> e.is("RESUME")).findFirst()
                        .map(e -> e.receivedNanos() - started).orElse(running);
                events.add(RestoreEventLog.Type.RUNNING, 0, 0, resumed);
                java.util.Optional<HugePages.CollapseReport> collapse = java.util.Optional.empty();
                if (options.collapseHugePages()) {
                    // Only now: while postcopy runs QEMU keeps guest RAM MADV_NOHUGEPAGE and every collapse fails.
                    collapse = java.util.Optional.of(HugePages.collapse(vm.pid(), vm.config().memoryMiB() << 20));
                }
                return result(qemuReady, resumed, completed, collapse, blockedMillis);
            } catch (IOException e) {
                throw failure("connection to the incoming socket failed: " + e.getMessage(), e);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw failure("interrupted", e);
            }
        }

        private Result result(long qemuReady, long running, long completed, java.util.Optional<HugePages.CollapseReport> collapse,
                              long vcpuBlockedMillis) {
            long total = 0;
            long zeroUnsent = 0;
            for (int b = 0; b < blocks.size(); b++) {
                int count = blocks.get(b).pageCount();
                total += count;
                for (int p = sent[b].nextClearBit(0); p < count; p = sent[b].nextClearBit(p + 1)) {
                    if (!image.isZero(b, p)) {
                        // QEMU would read it as zero: silent corruption. Never let it pass.
                        throw failure("page " + p + " of block " + blocks.get(b).name() + " was never sent", null);
                    }
                    zeroUnsent++;
                }
            }
            long[] service = serviceNanos.stream().mapToLong(Long::longValue).toArray();
            return new Result(vm, qemuReady, running, completed, demandFaults, duplicates, prefetched, demandPages, backgroundPages,
                    zeroUnsent, total, bytes.get(), List.copyOf(faults), service, events, collapse,
                    queueNanos.stream().mapToLong(Long::longValue).toArray(), vcpuBlockedMillis, options.workingSet());
        }

        /** Everything before and including the package that starts the guest. */
        private void sendUpToSwitch() throws IOException {
            writer.raw(image.headerAndConfiguration());
            writer.openReturnPath();
            writer.ping(1);
            writer.postcopyAdvise();
            writer.ramStart(sid, true);
            List<PageRef> ws = options.workingSet();
            for (int i = 0; i < ws.size(); i += 256) {
                writer.openRamSection(sid, false);
                int n = 0;
                for (PageRef ref : ws.subList(i, Math.min(ws.size(), i + 256))) {
                    n += sendUnit(ref.block(), ref.page());
                }
                writer.closeRamSection(sid);
                prefetched += n;
                events.add(RestoreEventLog.Type.PREFETCH_SENT, 0, n, now());
            }
            sendDiscards();
            writer.ping(2);
            ByteArrayOutputStream pkg = new ByteArrayOutputStream();
            StreamWriter inner = new StreamWriter(pkg, blocks);
            inner.command(Wire.CMD_POSTCOPY_LISTEN, new byte[0]);
            inner.raw(image.deviceState());
            inner.ping(3);
            inner.command(Wire.CMD_POSTCOPY_RUN, new byte[0]);
            writer.packaged(pkg.toByteArray());
            writer.forgetLastBlock(); // the listen thread reads on: name the block in the first record
            writer.flush();
        }

        /** Discards exactly the pages not sent before LISTEN, per block (docs/protocol.md: THP and the 7.2 LISTEN defect). */
        private void sendDiscards() throws IOException {
            boolean any = false;
            for (int b = 0; b < blocks.size(); b++) {
                int count = blocks.get(b).pageCount();
                List<long[]> ranges = new ArrayList<>();
                for (int p = sent[b].nextClearBit(0); p < count; ) {
                    int end = sent[b].nextSetBit(p);
                    if (end < 0 || end > count) end = count;
                    ranges.add(new long[] {(long) p * PAGE, (long) (end - p) * PAGE});
                    p = sent[b].nextClearBit(end);
                }
                if (ranges.isEmpty()) continue;
                any = true;
                long[] starts = ranges.stream().mapToLong(r -> r[0]).toArray();
                long[] lengths = ranges.stream().mapToLong(r -> r[1]).toArray();
                int max = StreamWriter.maxDiscardRanges(blocks.get(b).name());
                for (int i = 0; i < starts.length; i += max) {
                    writer.discard(b, starts, lengths, i, Math.min(max, starts.length - i));
                }
            }
            if (!any) {
                // Every page went before LISTEN: discard one host page so that a discard precedes LISTEN; it is sent again later.
                int unit = unitPages[0];
                int first = blocks.get(0).pageCount() - unit;
                writer.discard(0, new long[] {(long) first * PAGE}, new long[] {(long) unit * PAGE}, 0, 1);
                sent[0].clear(first, first + unit);
                prefetched -= unit;
            }
        }

        /** Demand first, background otherwise, until every non-zero page is sent. */
        private void servePages() throws IOException {
            int predicted = 0;
            int bgBlock = 0;
            int bgPage = 0;
            long lastReport = System.nanoTime();
            int chunk = MIN_CHUNK_PAGES;
            List<ReturnPathMessage.PageRequest> batch = new ArrayList<>();
            long holdUntil = System.nanoTime() + options.holdBackground().toNanos();
            while (true) {
                checkHealthy();
                batch.clear();
                requests.drainTo(batch);
                long backgroundWaitNanos = backgroundWaitNanos(holdUntil);
                if (batch.isEmpty() && backgroundWaitNanos > 0) {
                    // Tracing or pacing: no background now, only requests. Short waits keep the health check going, and the
                    // watchdog must not take the quiet stream for a stall.
                    ReturnPathMessage.PageRequest r;
                    try {
                        r = requests.poll(Math.min(backgroundWaitNanos, 10_000_000L), TimeUnit.NANOSECONDS);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        throw failure("interrupted while waiting for page requests", e);
                    }
                    if (r != null) batch.add(r);
                    requests.drainTo(batch);
                    if (batch.isEmpty()) {
                        waitingProgress.set(System.nanoTime());
                        continue;
                    }
                }
                if (!batch.isEmpty()) {
                    serveRequests(batch);
                    chunk = MIN_CHUNK_PAGES;
                    continue;
                }
                // The next chunk of background pages: the regions of recent faults first, then the predicted pages, then
                // non-zero pages not yet sent, by address.
                int inChunk = 0;
                boolean open = false;
                while (!faultRanges.isEmpty() && inChunk < chunk) {
                    int[] range = faultRanges.peek();
                    int b = range[0];
                    int p = sent[b].nextClearBit(range[1]);
                    p -= p % unitPages[b];
                    if (p >= range[2]) {
                        faultRanges.pop();
                        continue;
                    }
                    range[1] = p + unitPages[b];
                    if (allZero(b, p)) continue;
                    inChunk += sendBackgroundUnit(b, p, open);
                    open = true;
                }
                while (predicted < options.backgroundFirst().size() && inChunk < chunk) {
                    PageRef ref = options.backgroundFirst().get(predicted++);
                    if (sent[ref.block()].get(ref.page()) || image.isZero(ref.block(), ref.page())) continue;
                    inChunk += sendBackgroundUnit(ref.block(), ref.page(), open);
                    open = true;
                }
                while (bgBlock < blocks.size() && inChunk < chunk) {
                    if (bgPage >= blocks.get(bgBlock).pageCount()) {
                        bgBlock++;
                        bgPage = 0;
                        continue;
                    }
                    int p = bgPage;
                    bgPage += unitPages[bgBlock];
                    if (sent[bgBlock].get(p) || allZero(bgBlock, p)) continue;
                    inChunk += sendBackgroundUnit(bgBlock, p, open);
                    open = true;
                }
                if (open) {
                    writer.closeRamSection(sid);
                    writer.flush();
                    events.add(RestoreEventLog.Type.BACKGROUND_SENT, bgBlock < blocks.size() ? bgBlock : 0, inChunk, now());
                }
                if (bgBlock >= blocks.size()) return;
                backgroundSentBytes += (long) inChunk * PAGE;
                chunk = Math.min(options.chunkPages(), chunk * 2);
                if (System.nanoTime() - lastReport > 250_000_000L) {
                    lastReport = System.nanoTime();
                    progress.accept(String.format("serving pages: %d demand faults, %d background pages", demandFaults, backgroundPages));
                }
            }
        }

        private long backgroundSentBytes;

        /** Sends one unit in the background, opening the chunk's RAM section before its first page; returns the pages sent. */
        private int sendBackgroundUnit(int b, int p, boolean sectionOpen) throws IOException {
            if (!sectionOpen) writer.openRamSection(sid, false);
            int n = sendUnit(b, p);
            backgroundPages += n;
            return n;
        }

        /**
         * Queues the rest of a demand fault's region for the background stream: from the fault onwards on top, then the
         * region's start, so the stream goes on where the guest works now (QEMU's own postcopy source does the like: its
         * scan resumes after the last requested page). Regions already sent drop off when reached.
         */
        private void followFault(int b, int p) {
            int region = options.faultRegionPages();
            if (region <= unitPages[b]) return;
            int start = p - p % region;
            int end = Math.min(blocks.get(b).pageCount(), start + region);
            if (faultRanges.size() >= MAX_FAULT_RANGES - 1) {
                faultRanges.removeLast();
                faultRanges.removeLast();
            }
            if (start < p) faultRanges.push(new int[] {b, start, p});
            faultRanges.push(new int[] {b, p, end});
        }

        /**
         * How long the background stream must wait now: until the trace period ends ({@link Options#withTracing}), or until
         * the bytes it sent since then are back under its pace ({@link Options#withBackgroundRate}); 0 to go on.
         */
        private long backgroundWaitNanos(long holdUntil) {
            long due = holdUntil;
            if (options.backgroundBytesPerSecond() > 0) {
                due += backgroundSentBytes * 1_000_000_000L / options.backgroundBytesPerSecond();
            }
            return Math.max(0, due - System.nanoTime());
        }

        private void serveRequests(List<ReturnPathMessage.PageRequest> batch) throws IOException {
            long taken = System.nanoTime();
            writer.openRamSection(sid, false);
            List<Long> arrivals = new ArrayList<>();
            for (ReturnPathMessage.PageRequest r : batch) {
                int b = blockIndex.get(r.blockName());
                int p = (int) (r.offset() / PAGE);
                boolean already = sent[b].get(p);
                faults.add(new Fault(b, p, r.receivedNanos() - started, already));
                events.add(already ? RestoreEventLog.Type.DUPLICATE_REQUEST : RestoreEventLog.Type.REQUEST, b, p, r.receivedNanos() - started);
                if (already) {
                    duplicates++;
                    continue;
                }
                demandFaults++;
                arrivals.add(r.receivedNanos());
                demandPages += sendUnit(b, p);
                if (unitPages[b] == 1) {
                    int limit = Math.min(blocks.get(b).pageCount(), p + 1 + options.neighbourPages());
                    for (int n = p + 1; n < limit; n++) demandPages += sendUnit(b, n);
                }
                followFault(b, p);
            }
            // One flush for the requested pages and their neighbours: flushing each requested page before its neighbours
            // was measured too (demo image, 5 interleaved pairs): fewer but longer faults, the same total vCPU blocked time.
            writer.closeRamSection(sid);
            writer.flush();
            long now = System.nanoTime();
            for (long a : arrivals) {
                serviceNanos.add(now - a);
                queueNanos.add(taken - a);
            }
            events.add(RestoreEventLog.Type.DEMAND_SENT, 0, arrivals.size(), now - started);
        }

        /**
         * Sends the destination host page holding target page {@code p}, unless it was sent already;
         * returns the target pages sent. A 2 MiB host page goes as its 512 target pages back to back,
         * zero ones included: QEMU places it when the last one arrives, and nothing may come between.
         */
        private int sendUnit(int b, int p) throws IOException {
            int unit = unitPages[b];
            int first = p - p % unit;
            if (sent[b].get(first)) return 0;
            sent[b].set(first, first + unit);
            for (int q = first; q < first + unit; q++) {
                if (image.readPage(b, q, page, 0)) writer.page(b, q, page, 0);
                else writer.zeroPage(b, q);
            }
            return unit;
        }

        private boolean allZero(int b, int first) {
            for (int q = first; q < first + unitPages[b]; q++) {
                if (!image.isZero(b, q)) return false;
            }
            return true;
        }

        private void readReturnPath(SocketChannel channel) {
            ReturnPathReader rp = new ReturnPathReader(ChannelStreams.input(channel));
            try {
                while (true) {
                    ReturnPathMessage m = rp.next();
                    switch (m) {
                        case ReturnPathMessage.PageRequest r -> {
                            validate(blocks, blockIndex, r);
                            requests.add(r);
                        }
                        case ReturnPathMessage.Shut s -> {
                            shut.complete(s.status());
                            return;
                        }
                        case ReturnPathMessage.Pong p -> log.debug("{}: PONG {}", vm.name(), p.value());
                        case ReturnPathMessage.Other o -> log.debug("{}: ignoring return-path message type {}", vm.name(), o.type());
                    }
                }
            } catch (EOFException e) {
                returnPathFailure = "the destination closed the connection before SHUT";
            } catch (IOException e) {
                returnPathFailure = "the return path failed: " + e.getMessage();
            } catch (StreamFormatException e) {
                returnPathFailure = "protocol error on the return path: " + e.getMessage();
                try {
                    channel.close(); // the destination cannot be served safely any more
                } catch (IOException ignored) {
                    // closing anyway
                }
            }
            shut.completeExceptionally(new IllegalStateException(returnPathFailure));
        }

        private void checkHealthy() {
            if (returnPathFailure != null) throw failure(returnPathFailure, null);
            if (!vm.isAlive()) throw failure("QEMU died", null);
        }

        private int awaitShut() throws InterruptedException {
            try {
                return shut.get(options.completionTimeout().toMillis(), TimeUnit.MILLISECONDS);
            } catch (java.util.concurrent.TimeoutException e) {
                throw failure("no SHUT from the destination within " + options.completionTimeout().toSeconds() + " s after EOF", e);
            } catch (java.util.concurrent.ExecutionException e) {
                throw failure(e.getCause().getMessage(), e.getCause());
            }
        }

        private RestoreException failure(String what, Throwable cause) {
            return new RestoreException(vm.name() + ": postcopy restore failed: " + what + "; " + vm.describeState(), cause);
        }

    }

    /**
     * A page request must name a block of the image and one whole host page (4 KiB, or 2 MiB for a hugetlb block) inside it; anything
     * else means the destination and the image disagree, and serving on would corrupt the guest.
     */
    static void validate(List<RamBlock> blocks, Map<String, Integer> blockIndex, ReturnPathMessage.PageRequest r) {
        Integer b = blockIndex.get(r.blockName());
        if (b == null) {
            throw new StreamFormatException(-1, "page request for unknown RAM block '" + r.blockName() + "': expected one of "
                    + blockIndex.keySet());
        }
        long size = blocks.get(b).usedByteSize();
        long pageBytes = blocks.get(b).pageByteSize();
        if (r.offset() < 0 || r.offset() % pageBytes != 0 || r.length() != pageBytes || r.offset() + r.length() > size) {
            throw new StreamFormatException(-1, String.format("page request for block %s: expected a %d-byte page below 0x%x,"
                    + " actual offset 0x%x length %d", r.blockName(), pageBytes, size, r.offset(), r.length()));
        }
    }
}
