package dev.thaw.restore;

import dev.thaw.estimate.PageRef;
import dev.thaw.image.CheckpointImage;
import dev.thaw.migration.RamBlock;
import dev.thaw.migration.ReturnPathMessage;
import dev.thaw.migration.ReturnPathReader;
import dev.thaw.migration.StreamFormatException;
import dev.thaw.migration.StreamWriter;
import dev.thaw.migration.Wire;
import dev.thaw.qemu.Journal;
import dev.thaw.qemu.QemuVm;
import dev.thaw.schedule.BlockShape;
import dev.thaw.schedule.PageRange;
import dev.thaw.schedule.PageScheduler;
import dev.thaw.schedule.SchedulePolicy;
import dev.thaw.qemu.QmpClient;
import dev.thaw.qemu.QmpEvent;
import dev.thaw.qemu.QmpException;
import dev.thaw.util.ChannelStreams;
import dev.thaw.util.DirectChannelOutput;
import dev.thaw.util.StallWatchdog;
import dev.thaw.util.ThreadPriority;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.net.StandardSocketOptions;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;
import java.time.Duration;
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
 *  POSTCOPY_RAM_DISCARD of one unit not prefetched (QEMU 7.2 deadlocks without one; ADVISE discarded all RAM already)
 *  working set as precopy pages (ws mode; in predicted order; with --whole-regions its full 2 MiB regions go
 *  before the discard, which is then every page not sent)
 *  PING 2, PACKAGED(LISTEN, device state, PING 3, RUN)            -> the guest runs
 *  pages: demand requests first (with neighbours), the rest in the background, never one twice
 *  RAM END, EOF; then the destination answers SHUT(0)
 * </pre>
 *
 * <p>Threads: the caller's thread writes everything up to RUN, then hands the pages over to a
 * sender: {@link PageSender} (the only writer of the one connection; requests first, background
 * otherwise) or, with preempt, {@link PreemptSender} (requests on a second connection, a
 * background thread on the main one). A return-path reader, started before the package is written
 * (requests arrive while the device state loads), queues page requests.
 *
 * <p>Zero pages are not sent in the background: POSTCOPY_ADVISE discarded all guest RAM, so after
 * EOF every page never sent reads as zero. A request for a zero page is answered with a ZERO record.
 * Every non-zero page of the image is sent before EOF, and the result accounts for every page.
 *
 * <p>Failure: a dead QEMU or a protocol error ends the restore with an error and kills the QEMU. A
 * connection that breaks after the guest started is recovered ({@link PostcopyRecovery}: QEMU pauses,
 * Thaw reconnects, learns which pages QEMU holds and sends the rest; docs/protocol.md, "Postcopy
 * recovery"). A Thaw that is killed leaves QEMU paused in postcopy (its vCPUs wait for pages); another
 * Thaw resumes it the same way ({@link #resume}, through QEMU's spare monitor: {@link dev.thaw.qemu.SpareMonitor}).
 */
public final class PostcopyRestore {
    /**
     * Whether demand raises the background's idle threads ({@link DemandBoost}): a trial, off unless {@code -Dthaw.demandBoost=true}.
     * Demand was served sooner with it, but a lazy restore took 2.5x the faults and was responsive later (docs/benchmarks.md,
     * twelfth session). The starvation guard runs either way.
     */
    static final boolean DEMAND_BOOST = Boolean.getBoolean("thaw.demandBoost");

    private static final Logger log = LoggerFactory.getLogger(PostcopyRestore.class);
    /** The PING after a placed prefetch ({@link Transport#withPlacedPrefetch}): 1-3 go before and inside the package. */
    private static final int PLACED_PING = 4;
    private static final int PAGE = Wire.TARGET_PAGE_BYTES;

    /** How the destination backs guest RAM. */
    public enum GuestRam {
        /** QEMU's default: 4 KiB pages while postcopy runs. */
        DEFAULT,
        /** After completion, collapse guest RAM into transparent huge pages ({@link HugePages}). */
        COLLAPSE_AFTER,
        /**
         * {@code pc.ram} in 2 MiB hugetlb pages: full speed at once (no 4 KiB phase), but every fault and background step
         * moves a whole 2 MiB page.
         */
        HUGETLB,
        /**
         * Whichever of DEFAULT and HUGETLB {@link GuestRamChoice} picks for this restore on this host; {@link Restorer} resolves
         * it before the restore starts (this class refuses it).
         */
        AUTO
    }

    /**
     * What to send first.
     *
     * @param workingSet      pages to send before the guest starts, in the order to send them (empty: lazy)
     * @param backgroundFirst pages the background stream sends before the rest (by address), in this order
     */
    public record Pages(List<PageRef> workingSet, List<PageRef> backgroundFirst) {
        public Pages {
            workingSet = List.copyOf(workingSet);
            backgroundFirst = List.copyOf(backgroundFirst);
        }
    }

    /**
     * The connection to the destination.
     *
     * @param sendBufferBytes   the socket send buffer: a demand page waits behind at most this (and a chunk)
     * @param stallTimeout      no byte moving for this long ends the restore
     * @param completionTimeout the wait for SHUT and {@code completed} after EOF
     * @param preempt           demand pages on QEMU's postcopy-preempt channel ({@link #withPreempt})
     * @param placedPrefetch    the working set after LISTEN, placed by QEMU's listen thread, the guest held until it is
     *                          ({@link #withPlacedPrefetch}; a trial)
     */
    public record Transport(int sendBufferBytes, Duration stallTimeout, Duration completionTimeout, boolean preempt,
                            boolean placedPrefetch) {
        public static final int DEFAULT_SEND_BUFFER_BYTES = 64 << 10;

        public Transport {
            if (sendBufferBytes < 4096 || sendBufferBytes > (64 << 20)) {
                throw new IllegalArgumentException("send buffer: expected 4 KiB..64 MiB, actual " + sendBufferBytes + " bytes");
            }
        }

        public static Transport defaults() {
            return new Transport(DEFAULT_SEND_BUFFER_BYTES, Duration.ofSeconds(60), Duration.ofSeconds(120), false, false);
        }

        /**
         * QEMU's postcopy-preempt channel: demand pages travel on a second connection that the destination reads and places
         * in its own thread ({@code fault-fast}), never behind background pages; a second sender thread of Thaw's streams the
         * background on the main connection meanwhile.
         */
        public Transport withPreempt(boolean on) {
            return new Transport(sendBufferBytes, stallTimeout, completionTimeout, on, placedPrefetch);
        }

        /**
         * The working set sent after the package (LISTEN, the device state, RUN) instead of before it, into a QEMU started
         * with {@code -S}: QEMU's listen thread places each page with {@code UFFDIO_COPY} (the kernel maps it; no page fault
         * in QEMU), a PING after the set comes back once all of it is placed, and only then Thaw sends {@code cont}. Before
         * LISTEN QEMU's main thread copies each page into guest RAM and faults on it, which costs about 15 us a page on a
         * host whose hypervisor shadows page tables (docs/benchmarks.md, fifteenth session). A trial.
         */
        public Transport withPlacedPrefetch(boolean on) {
            return new Transport(sendBufferBytes, stallTimeout, completionTimeout, preempt, on);
        }
    }

    /**
     * A lazy or ws restore's options, by concern: what to send first, the scheduler's policy ({@link SchedulePolicy}),
     * the connection and the guest's RAM.
     */
    public record Options(String vmName, Pages pages, SchedulePolicy policy, Transport transport, GuestRam guestRam,
                          ThreadPriority.Policy backgroundPriority, RestoreIdentity identity, java.util.Optional<StartHeld> startHeld) {
        public Options(String vmName, Pages pages, SchedulePolicy policy, Transport transport, GuestRam guestRam,
                       ThreadPriority.Policy backgroundPriority, RestoreIdentity identity) {
            this(vmName, pages, policy, transport, guestRam, backgroundPriority, identity, java.util.Optional.empty());
        }

        public static Options lazy(String vmName) {
            return new Options(vmName, new Pages(List.of(), List.of()), SchedulePolicy.defaults(), Transport.defaults(), GuestRam.DEFAULT,
                    ThreadPriority.Policy.IDLE, RestoreIdentity.single());
        }

        /**
         * The guest's vCPUs held until someone else sends QMP {@code cont}: QEMU starts with {@code -S}, so RUN leaves the guest
         * {@code paused} with its working set and device state loaded, while the rest of memory streams in the background (a
         * cluster member waiting for START). {@code launched} gets the QEMU as soon as it was started.
         */
        public Options withStartHeld(StartHeld launched) {
            return new Options(vmName, pages, policy, transport, guestRam, backgroundPriority, identity, java.util.Optional.of(launched));
        }

        /**
         * A ws restore: {@code workingSet} prefetched, {@code backgroundFirst} first in the background, and the rest of memory
         * paced while the guest computes ({@link SchedulePolicy#DEFAULT_WS_BUSY_BACKGROUND_BYTES_PER_SECOND}): its working set
         * is in, and a full-speed stream of the rest stalls it (docs/benchmarks.md, tenth session). A lazy restore is not
         * paced: its background brings what the guest is about to touch.
         */
        public static Options ws(String vmName, List<PageRef> workingSet, List<PageRef> backgroundFirst) {
            Options lazy = lazy(vmName);
            return lazy.withWorkingSet(workingSet).withBackgroundFirst(backgroundFirst)
                    .withPolicy(lazy.policy().withBusyBackgroundBytesPerSecond(SchedulePolicy.DEFAULT_WS_BUSY_BACKGROUND_BYTES_PER_SECOND));
        }

        public List<PageRef> workingSet() {
            return pages.workingSet();
        }

        public List<PageRef> backgroundFirst() {
            return pages.backgroundFirst();
        }

        public Options withWorkingSet(List<PageRef> workingSet) {
            return new Options(vmName, new Pages(workingSet, pages.backgroundFirst()), policy, transport, guestRam, backgroundPriority, identity, startHeld);
        }

        /** Pages the background stream sends first, in this order (the predicted pages beyond the prefetched working set). */
        public Options withBackgroundFirst(List<PageRef> backgroundFirst) {
            return new Options(vmName, new Pages(pages.workingSet(), backgroundFirst), policy, transport, guestRam, backgroundPriority, identity, startHeld);
        }

        public Options withPolicy(SchedulePolicy newPolicy) {
            return new Options(vmName, pages, newPolicy, transport, guestRam, backgroundPriority, identity, startHeld);
        }

        public Options withTransport(Transport newTransport) {
            return new Options(vmName, pages, policy, newTransport, guestRam, backgroundPriority, identity, startHeld);
        }

        public Options withGuestRam(GuestRam ram) {
            return new Options(vmName, pages, policy, transport, ram, backgroundPriority, identity, startHeld);
        }

        /**
         * The scheduling class of the threads that stream pages once the guest runs: Thaw's sender and QEMU's
         * {@code postcopy/listen}. IDLE (the default): they take only CPU the guest's vCPU leaves, so on a host with few cores
         * the background costs the guest nothing; a vCPU waiting for a page leaves its core to them.
         */
        public Options withBackgroundPriority(ThreadPriority.Policy priority) {
            return new Options(vmName, pages, policy, transport, guestRam, priority, identity, startHeld);
        }

        /** Who the restored guest is ({@link RestoreIdentity}: its VM generation ID; a clone's ports and MACs). */
        public Options withIdentity(RestoreIdentity newIdentity) {
            return new Options(vmName, pages, policy, transport, guestRam, backgroundPriority, newIdentity, startHeld);
        }

        /** Tracing (the post-save trace): {@link SchedulePolicy#tracing}. */
        public Options withTracing(Duration hold) {
            if (hold.isNegative()) throw new IllegalArgumentException("trace period: expected >= 0, actual " + hold);
            return withPolicy(policy.tracing(hold.toNanos()));
        }
    }

    /** Told the QEMU of a restore whose start is held ({@link Options#withStartHeld}) once it was launched. */
    @FunctionalInterface
    public interface StartHeld {
        void launched(QemuVm vm);
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
        /** Broken connections recovered during the restore (QEMU's postcopy recovery). */
        public long recoveries() {
            long count = 0;
            for (int i = 0; i < events.size(); i++) if (events.get(i).type() == RestoreEventLog.Type.RECOVERED) count++;
            return count;
        }

        /** The pages demand faults asked for (requests for pages already sent left out), in arrival order. */
        public List<PageRef> faultedPages() {
            return faults.stream().filter(f -> !f.alreadySent()).map(f -> new PageRef(f.block(), f.page())).distinct().toList();
        }
    }

    private PostcopyRestore() {}

    /**
     * What a lazy or ws restore leaves in its QEMU's run directory ({@value #MARKER_FILE}), so that a later Thaw can resume a
     * restore whose Thaw died ({@link #resume}): which image, which Thaw, how guest RAM is backed.
     */
    public record Marker(String imageId, String imageDirectory, long thawPid, GuestRam guestRam) {
        public static final String MARKER_FILE = "postcopy-restore.json";
        private static final com.fasterxml.jackson.databind.ObjectMapper JSON = new com.fasterxml.jackson.databind.ObjectMapper();

        void write(Path runDir) {
            try {
                JSON.writeValue(runDir.resolve(MARKER_FILE).toFile(), this);
            } catch (IOException e) {
                log.warn("cannot write {}: {} (a restore left paused could not be resumed)", runDir.resolve(MARKER_FILE), e.toString());
            }
        }

        /** The marker of a run directory, if it holds a readable one. */
        public static java.util.Optional<Marker> read(Path runDir) {
            Path file = runDir.resolve(MARKER_FILE);
            if (!java.nio.file.Files.isRegularFile(file)) return java.util.Optional.empty();
            try {
                return java.util.Optional.of(JSON.readValue(file.toFile(), Marker.class));
            } catch (IOException e) {
                log.warn("ignoring {}: {}", file, e.toString());
                return java.util.Optional.empty();
            }
        }

        /** Whether the Thaw that ran this restore is gone (so its QEMU waits for a new source). */
        public boolean thawGone() {
            return ProcessHandle.of(thawPid).filter(ProcessHandle::isAlive).isEmpty();
        }
    }

    public static Result restore(CheckpointImage image, Options options, Consumer<String> progress) {
        requireFourKiBPages(image);
        if (options.guestRam() == GuestRam.AUTO) {
            throw new IllegalArgumentException("guest RAM: expected DEFAULT, COLLAPSE_AFTER or HUGETLB, actual AUTO (Restorer chooses)");
        }
        long started = System.nanoTime();
        dev.thaw.qemu.VmConfig config = IncomingQemu.config(image, options.vmName(), options.identity())
                .withStartPaused(options.startHeld().isPresent() || options.transport().placedPrefetch());
        if (options.transport().placedPrefetch() && options.policy().wholeRegionPrefetch()) {
            // Whole regions land in transparent huge pages only as precopy pages, before the discard; placed pages are 4 KiB.
            throw new IllegalArgumentException("--placed-prefetch and --whole-regions exclude each other: placed pages go after"
                    + " LISTEN, whole regions before the discard");
        }
        List<RamBlock> destination = destinationBlocks(image, options.guestRam(), config);
        Runnable release = null;
        List<String> launchArgs = List.of();
        if (options.guestRam() == GuestRam.HUGETLB) {
            // With the id pc.ram the block keeps its name, so an image of an ordinary guest restores into it.
            launchArgs = List.of("-object", "memory-backend-memfd,id=pc.ram,size=" + config.memoryMiB()
                    + "M,hugetlb=on,hugetlbsize=2M", "-machine", "memory-backend=pc.ram");
            release = HugePages.allowHugetlbPages((config.memoryMiB() << 20) / HugePages.HUGE_PAGE_BYTES);
        }
        // QEMU starts (0.2-0.3 s of its main thread's CPU here) while the scheduler is built and the prefetch is read, on the
        // other core: the spare monitor lets a later Thaw resume this restore if this one dies (docs/protocol.md).
        Launch launch = Launch.start(config, launchArgs, release);
        PageReadAhead ahead = null;
        try {
            List<BlockShape> shapes = destination.stream().map(b -> new BlockShape(b.pageCount(), (int) (b.pageByteSize() / PAGE))).toList();
            PageScheduler scheduler = new PageScheduler(shapes, image::isZero, options.policy(), options.backgroundFirst());
            // Whole 2 MiB regions first (sent before the discard, so each may land in a transparent huge page), then the rest.
            List<PageRange> whole = options.policy().wholeRegionPrefetch() ? scheduler.wholeRegions(options.workingSet()) : List.of();
            List<PageRange> rest = scheduler.prefetch(options.workingSet());
            // The discards go before the rest of the prefetch (Session.sendUpToSwitch): a unit taken back to have one is not
            // prefetched at all (inside a whole region it is sent before the discard, discarded and sent again later).
            PageScheduler.Discards discards = scheduler.discards();
            if (discards.takenBack().isPresent()) {
                rest = rest.stream().filter(u -> !u.equals(discards.takenBack().get())).toList();
            }
            List<PageRange> prefetch = new java.util.ArrayList<>(whole);
            prefetch.addAll(rest);
            long wholePages = whole.stream().mapToLong(PageRange::pageCount).sum();
            // The working set is read while QEMU starts: the sender then only writes it.
            ahead = new PageReadAhead(image, prefetch, whole.size(), PREFETCH_BYTES_AHEAD, "prefetch-reader-" + options.vmName());
            QemuVm vm = launch.await();
            options.startHeld().ifPresent(h -> h.launched(vm));
            new Marker(image.manifest().imageId(), image.directory().toAbsolutePath().toString(), ProcessHandle.current().pid(),
                    options.guestRam()).write(vm.runDir());
            return new Session(image, destination, options, vm, started, progress, scheduler,
                    new BeforeListen(discards, ahead, wholePages)).run();
        } catch (RuntimeException | Error e) {
            launch.abandon();
            throw e;
        } finally {
            if (ahead != null) ahead.close();
        }
    }

    /**
     * A QEMU being launched on a thread of its own. Exactly one of {@link #await} (the QEMU, closed by its caller from then on)
     * and {@link #abandon} (the QEMU closed once launched, the hugetlb pages allowed for it given back) ends it.
     */
    private static final class Launch {
        private final CompletableFuture<QemuVm> vm = new CompletableFuture<>();

        static Launch start(dev.thaw.qemu.VmConfig config, List<String> launchArgs, Runnable release) {
            Launch l = new Launch();
            try {
                Thread.ofPlatform().daemon().name("launch-" + config.name()).start(() -> {
                    try {
                        QemuVm launched = QemuVm.launch(config, launchArgs, true);
                        if (release != null) launched.onClose(release);
                        l.vm.complete(launched);
                    } catch (Throwable t) {
                        try {
                            if (release != null) release.run();
                        } catch (Throwable r) {
                            t.addSuppressed(r);
                        } finally {
                            l.vm.completeExceptionally(t); // always: await() has no timeout of its own
                        }
                    }
                });
            } catch (Throwable t) { // no thread: nothing launched
                if (release != null) release.run();
                throw t;
            }
            return l;
        }

        /** The launched QEMU; throws the launch's failure. No timeout of its own: {@link QemuVm#launch} bounds its waits. */
        QemuVm await() {
            try {
                return vm.join();
            } catch (java.util.concurrent.CompletionException e) {
                if (e.getCause() instanceof RuntimeException re) throw re;
                if (e.getCause() instanceof Error err) throw err;
                throw e;
            }
        }

        /**
         * After a failure before or during {@link #await}: waits for the launch to end (bounded by {@link QemuVm#launch}'s own
         * timeouts) and closes the QEMU if it came up, on the caller's thread: a command that exits right after the failure would
         * otherwise halt the launch's daemon thread before it closed QEMU or gave back its hugetlb allowance.
         */
        void abandon() {
            QemuVm launched;
            try {
                launched = vm.join();
            } catch (java.util.concurrent.CompletionException | java.util.concurrent.CancellationException e) {
                return; // the launch failed and gave back what it took
            }
            launched.close();
        }
    }

    /**
     * Resumes a lazy or ws restore of {@code image} whose Thaw died, leaving {@code vm} paused in postcopy (or whose
     * connection broke while nobody was there to recover it): QEMU's postcopy recovery from a new connection, then the pages
     * QEMU does not hold, until {@code completed}. The guest ran all along. On failure {@code vm} is killed, as a failed
     * restore's QEMU is.
     *
     * @param vm a QEMU attached to ({@link QemuVm#attach}) whose run directory holds the {@link Marker} of a restore of this image
     */
    public static Result resume(CheckpointImage image, QemuVm vm, Options options, Consumer<String> progress) {
        try {
            requireFourKiBPages(image);
            Marker marker = Marker.read(vm.runDir()).orElseThrow(() -> new RestoreException(vm.name() + ": expected a lazy or ws restore"
                    + " (its " + Marker.MARKER_FILE + " in " + vm.runDir() + "), actual none: this QEMU is not a restore Thaw can resume", null));
            if (!marker.imageId().equals(image.manifest().imageId())) {
                throw new RestoreException(vm.name() + ": expected a restore of image " + image.manifest().imageId() + " ("
                        + image.directory() + "), actual a restore of image " + marker.imageId() + " (" + marker.imageDirectory() + ")", null);
            }
            if (!marker.thawGone() && marker.thawPid() != ProcessHandle.current().pid()) {
                throw new RestoreException(vm.name() + ": its restore is still served by Thaw pid " + marker.thawPid()
                        + " (expected a dead one: resume only a restore whose Thaw is gone)", null);
            }
            if (!dev.thaw.qemu.SpareMonitor.present(vm.runDir())) {
                // A QEMU launched without one: only its QMP socket, which answers only if its main thread is not blocked.
                try {
                    vm.connectQmp(Duration.ofSeconds(10));
                } catch (QmpException e) {
                    throw new RestoreException(vm.name() + ": expected a spare monitor in " + vm.runDir() + " or a QMP socket that answers,"
                            + " actual neither (" + e.getMessage() + "): this paused QEMU cannot be resumed", e);
                }
            }
            if (marker.guestRam() == GuestRam.HUGETLB && marker.thawPid() != ProcessHandle.current().pid()) {
                // The dead Thaw raised the surplus-page allowance for this QEMU and cannot lower it: whoever ends it now does.
                vm.onClose(HugePages.takeOverAllowance((vm.config().memoryMiB() << 20) / HugePages.HUGE_PAGE_BYTES));
            }
            List<RamBlock> destination = destinationBlocks(image, marker.guestRam(), vm.config());
            List<BlockShape> shapes = destination.stream().map(b -> new BlockShape(b.pageCount(), (int) (b.pageByteSize() / PAGE))).toList();
            PageScheduler scheduler = new PageScheduler(shapes, image::isZero, options.policy(), options.backgroundFirst());
            new Marker(marker.imageId(), marker.imageDirectory(), ProcessHandle.current().pid(), marker.guestRam()).write(vm.runDir());
            return new Session(image, destination, options, vm, System.nanoTime(), progress, scheduler, null).resumeAttached();
        } catch (RuntimeException e) {
            vm.close();
            throw e;
        }
    }

    private static void requireFourKiBPages(CheckpointImage image) {
        for (RamBlock b : image.ramBlocks()) {
            if (b.pageByteSize() != PAGE) {
                throw new RestoreException("RAM block " + b.name() + " was saved with " + b.pageByteSize() + "-byte pages: this"
                        + " restore reads images of 4 KiB pages (expected 4096)", null);
            }
        }
    }

    /** The image's blocks as the destination has them: pc.ram in 2 MiB pages for a hugetlb restore. */
    private static List<RamBlock> destinationBlocks(CheckpointImage image, GuestRam guestRam, dev.thaw.qemu.VmConfig config) {
        List<RamBlock> destination = image.ramBlocks();
        if (guestRam != GuestRam.HUGETLB) return destination;
        long ramBytes = config.memoryMiB() << 20;
        boolean hasRam = destination.stream().anyMatch(b -> b.name().equals("pc.ram") && b.usedByteSize() == ramBytes);
        if (!hasRam || ramBytes % HugePages.HUGE_PAGE_BYTES != 0) {
            throw new RestoreException("hugetlb guest RAM: expected a block pc.ram of " + ramBytes + " bytes, a multiple of 2 MiB, actual "
                    + destination.stream().map(b -> b.name() + "=" + b.usedByteSize()).toList(), null);
        }
        return destination.stream().map(b -> b.name().equals("pc.ram") ? new RamBlock(b.name(), b.usedByteSize(), HugePages.HUGE_PAGE_BYTES)
                : b).toList();
    }

    /**
     * The stream before LISTEN: the prefetch read ahead (its first {@code wholeRegionPages} pages whole 2 MiB regions, sent
     * before the discards; the rest after them).
     */
    private record BeforeListen(PageScheduler.Discards discards, PageReadAhead ahead, long wholeRegionPages) {}

    /** The working set read ahead of the sender, at most (a 256 MiB working set is read whole while QEMU starts). */
    static final long PREFETCH_BYTES_AHEAD = 256L << 20;

    /**
     * One restore: the protocol and the return path, owned by the caller's thread. Which page goes next is the
     * {@link PageScheduler}'s decision; the pages after RUN, and their counts, are a sender's.
     */
    private static final class Session implements PageSender.Health {
        private final CheckpointImage image;
        private final Options options;
        private final QemuVm vm;
        private final long started;
        private final Consumer<String> progress;
        private final List<RamBlock> blocks;
        private final PageScheduler scheduler;
        /** What goes before LISTEN; null when resuming a restore whose guest runs already. */
        private final BeforeListen beforeListen;
        private final Map<String, Integer> blockIndex = new HashMap<>();
        private final LinkedBlockingQueue<ReturnPathMessage.PageRequest> requests = new LinkedBlockingQueue<>();
        private final DemandBoost boost;
        private final AtomicLong bytes = new AtomicLong();
        private final AtomicLong waitingProgress = new AtomicLong(); // moves while the scheduler waits by design: not a stall
        private final RestoreEventLog events = new RestoreEventLog();
        /** The connection in use: the first one, then each recovery's. Read by the return-path check from other threads. */
        private volatile Link link;
        private StreamWriter writer;
        private final PageSender.Context context;
        private final PostcopyRecovery<Link> recovery;
        /** The preempt channel's writer (demand pages only), or null without preempt. */
        private StreamWriter preemptWriter;
        /** What is sent once the guest runs, and the count of it; made with the main stream. */
        private PageSender pages;
        /** With preempt, once the guest runs: answers requests on the return path's reader. */
        private volatile PreemptSender preemptSender;
        private int sid;
        private long prefetched;
        /** Whether the discard went: QEMU 7.2 deadlocks in LISTEN without one. */
        private boolean discarded;
        /** QEMU's main thread loaded the device state (RESUME, or a held start's paused state): EOF may go (mayEnd). */
        private volatile boolean deviceStateLoaded;
        /** When the senders first asked whether EOF may go; 0 before. */
        private long mayEndAskedNanos;
        /** QEMU's events read by mayEnd, from the oldest kept on (RESUME may have come before the first question); null before. */
        private Journal<QmpEvent>.Cursor qmpEvents;
        /** Asks QEMU's run state for a held start (no RESUME comes then); null until needed. */
        private Thread heldStatusProbe;
        /** Placed prefetch: completed when QEMU answers the PING after the working set (its listen thread placed all of it). */
        private final CompletableFuture<Void> prefetchPlaced = new CompletableFuture<>();
        /** Placed prefetch: why the guest could not be started once its working set was placed; null while none. */
        private volatile String startFailure;

        Session(CheckpointImage image, List<RamBlock> destinationBlocks, Options options, QemuVm vm, long started, Consumer<String> progress,
                PageScheduler scheduler, BeforeListen beforeListen) {
            this.image = image;
            this.options = options;
            this.vm = vm;
            this.started = started;
            this.progress = progress;
            this.blocks = destinationBlocks;
            this.boost = new DemandBoost(vm.name(), events, started);
            for (int i = 0; i < blocks.size(); i++) blockIndex.put(blocks.get(i).name(), i);
            this.scheduler = scheduler;
            this.beforeListen = beforeListen;
            this.context = new PageSender.Context(vm, scheduler, requests, events, started, this, options.backgroundPriority(), progress,
                    boost);
            this.recovery = new PostcopyRecovery<>(context, blocks, blockIndex, Link::new);
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
                Map<String, Boolean> caps = new java.util.LinkedHashMap<>(Map.of("postcopy-ram", true, "events", true,
                        "postcopy-blocktime", true));
                if (options.transport().preempt()) caps.put("postcopy-preempt", true);
                qmp.migrateSetCapabilities(caps);
                qmp.migrateIncoming("unix:" + socket);
            } catch (QmpException e) {
                if (!vm.isAlive() || e instanceof QmpException.ConnectionLost) {
                    throw failure("QEMU died during the postcopy setup: " + e.getMessage(), e);
                }
                throw new RestoreException(vm.name() + ": QEMU refused the postcopy setup (is userfaultfd usable? see thaw doctor): "
                        + e.getMessage(), e);
            }
            Transport transport = options.transport();
            // With preempt, QEMU 7.2 takes the first connection for the main stream and the second for the preempt channel, and
            // reads nothing on the first until the second is there (docs/protocol.md, "Preempt channel").
            try {
                link = new Link(IncomingQemu.connect(socket, vm, Duration.ofSeconds(10)));
                writer = link.writer;
                try (SocketChannel preemptChannel = transport.preempt() ? IncomingQemu.connect(socket, vm, Duration.ofSeconds(10)) : null) {
                    if (preemptChannel != null) {
                        preemptChannel.setOption(StandardSocketOptions.SO_SNDBUF, transport.sendBufferBytes());
                        preemptWriter = new StreamWriter(new DirectChannelOutput(preemptChannel, 64 << 10, bytes), blocks);
                    }
                    sid = image.manifest().ramSectionId();
                    pages = newPageSender();
                    try {
                        sendUpToSwitch();
                    } catch (IOException e) {
                        throw failure("sending the stream up to the guest's start failed after " + bytes.get() + " bytes: "
                                + e.getMessage(), e);
                    }
                    long running = System.nanoTime() - started;
                    events.add(RestoreEventLog.Type.PACKAGE_SENT, 0, 0, running);
                    progress.accept(String.format("guest running after %.2f s; serving pages", running / 1e9));
                    return finish(qemuReady, running);
                }
            } catch (IOException e) {
                throw failure("connection to the incoming socket failed: " + e.getMessage(), e);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw failure("interrupted", e);
            } finally {
                boost.close();
                if (link != null) link.close();
            }
        }

        /**
         * A QEMU paused in postcopy by a Thaw that died (or a connection that broke) before this one: reconnect, learn what it
         * has, send the rest. The guest has run all along; the image is the one it is being restored from.
         */
        Result resumeAttached() {
            try {
                scheduler.guestStarted(System.nanoTime());
                deviceStateLoaded = true; // the guest ran before this Thaw took it over
                sid = image.manifest().ramSectionId();
                if (!recover("resuming a postcopy restore left paused", null)) {
                    // The dead Thaw had sent everything: the guest is whole and runs; this Thaw only takes it over.
                    progress.accept("QEMU had completed its migration already: nothing to send");
                    long total = blocks.stream().mapToLong(RamBlock::pageCount).sum();
                    return new Result(vm, 0, 0, 0, 0, 0, 0, 0, 0, 0, total, 0, List.of(), new long[0], events, java.util.Optional.empty(),
                            new long[0], -1, List.of());
                }
                return finish(0, 0);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw failure("interrupted", e);
            } finally {
                boost.close();
                if (link != null) link.close();
            }
        }

        /** Serves pages until SHUT (recovering a broken connection), then waits for {@code completed}. */
        private Result finish(long qemuReady, long running) throws InterruptedException {
            Transport transport = options.transport();
            int status = serveUntilShut();
            if (status != 0) throw failure("the destination finished with SHUT status " + status + " (it saw an error)", null);
            long completed = System.nanoTime() - started;
            events.add(RestoreEventLog.Type.SHUT, 0, status, completed);
            try {
                vm.connectQmp(transport.completionTimeout()); // an attached QEMU answers in band again now that it has every page
            } catch (QmpException e) {
                throw failure("QEMU's QMP socket did not answer after the restore: " + e.getMessage(), e);
            }
            IncomingQemu.awaitTeardown(vm, transport.completionTimeout()); // QEMU 7.2 can abort on a query-migrate before it
            QmpClient.MigrationInfo done = IncomingQemu.awaitCompleted(vm, transport.completionTimeout());
            events.add(RestoreEventLog.Type.COMPLETED, 0, 0, now());
            // QEMU's own measure of the guest's stall (capability postcopy-blocktime): per vCPU, fault to page placed.
            long blockedMillis = done.raw().path("postcopy-blocktime").asLong(-1);
            link.reader.join(5000);
            // The guest ran from the moment QEMU processed RUN, which it reports with the RESUME event.
            long resumed = vm.qmp().events().snapshot().stream().filter(e -> e.is("RESUME")).findFirst()
                    .map(e -> e.receivedNanos() - started).orElse(running);
            events.add(RestoreEventLog.Type.RUNNING, 0, 0, resumed);
            java.util.Optional<HugePages.CollapseReport> collapse = java.util.Optional.empty();
            if (options.guestRam() == GuestRam.COLLAPSE_AFTER) {
                // Only now: while postcopy runs QEMU keeps guest RAM MADV_NOHUGEPAGE and every collapse fails.
                collapse = java.util.Optional.of(HugePages.collapse(vm.pid(), vm.config().memoryMiB() << 20));
            }
            return result(qemuReady, resumed, completed, collapse, blockedMillis);
        }

        /**
         * The pages after RUN, RAM END and EOF, and SHUT. A connection that breaks meanwhile (the destination paused in postcopy)
         * is recovered and the pages go on; the destination's status, or 0 if it had completed when the break was seen.
         */
        private int serveUntilShut() throws InterruptedException {
            while (true) {
                String why;
                Throwable cause;
                try {
                    servePages();
                    writer.openRamSection(sid, true);
                    writer.closeRamSection(sid);
                    writer.eof();
                    writer.flush();
                    events.add(RestoreEventLog.Type.EOF_SENT, 0, 0, now());
                    return awaitShut();
                } catch (IOException e) {
                    why = "sending pages failed after " + bytes.get() + " bytes" + (link.watchdog.stalled()
                            ? " (QEMU read nothing for " + options.transport().stallTimeout().toSeconds() + " s)" : "") + ": " + e.getMessage();
                    cause = e;
                } catch (PostcopyRecovery.ConnectionLost e) {
                    why = e.getMessage();
                    cause = e;
                }
                if (preemptWriter != null) throw failure(why + " (a restore with the preempt channel is not recovered)", cause);
                if (!recover(why, cause)) return 0;
            }
        }

        /**
         * Recovers the broken connection ({@link PostcopyRecovery}) and serves on the new one; false if QEMU had completed the
         * migration instead of pausing.
         */
        private boolean recover(String why, Throwable cause) throws InterruptedException {
            java.util.Optional<Link> next = recovery.recover(why, cause, link);
            if (next.isEmpty()) return false;
            link = next.get();
            writer = link.writer;
            if (pages == null) pages = newPageSender();
            else pages.useWriter(writer);
            return true;
        }

        private PageSender newPageSender() {
            return new PageSender(context, image, writer, sid, blockIndex);
        }

        private Result result(long qemuReady, long running, long completed, java.util.Optional<HugePages.CollapseReport> collapse,
                              long vcpuBlockedMillis) {
            long total = blocks.stream().mapToLong(RamBlock::pageCount).sum();
            long zeroUnsent;
            try {
                zeroUnsent = scheduler.zeroPagesUnsent();
            } catch (IllegalStateException e) {
                // QEMU would read it as zero: silent corruption. Never let it pass.
                throw failure(e.getMessage(), e);
            }
            return new Result(vm, qemuReady, running, completed, pages.demandFaults(), pages.duplicates(), prefetched,
                    pages.demandPages(), pages.backgroundPages(), zeroUnsent, total, bytes.get(), pages.faults(), pages.serviceNanos(),
                    events, collapse, pages.queueNanos(), vcpuBlockedMillis, options.workingSet());
        }

        /** Everything before and including the package that starts the guest. */
        private void sendUpToSwitch() throws IOException {
            writer.raw(image.headerAndConfiguration());
            writer.openReturnPath();
            writer.ping(1);
            writer.postcopyAdvise();
            writer.ramStart(sid, true);
            // The discard goes before the working set: QEMU turns transparent huge pages off for guest RAM at the first
            // discard, so each prefetched page populates 4 KiB only. After the pages (as before the fifth session) a scattered
            // working set made QEMU zero-fill nearly every 2 MiB region of guest RAM and split it again at the discard: a
            // 4 GiB guest with a scattered 256 MiB working set ran after about 2 s. With --whole-regions those regions go
            // before the discard (PageScheduler.wholeRegions), the rest after it.
            PageReadAhead ahead = beforeListen.ahead();
            boolean placed = options.transport().placedPrefetch();
            if (beforeListen.wholeRegionPages() == 0) sendDiscards();
            if (!placed) sendPrefetch(ahead);
            if (!discarded) endWholeRegions(); // only whole regions were prefetched
            writer.ping(2);
            ByteArrayOutputStream pkg = new ByteArrayOutputStream();
            StreamWriter inner = new StreamWriter(pkg, blocks);
            inner.command(Wire.CMD_POSTCOPY_LISTEN, new byte[0]);
            inner.raw(image.deviceState());
            inner.ping(3);
            inner.command(Wire.CMD_POSTCOPY_RUN, new byte[0]);
            writer.packaged(pkg.toByteArray());
            writer.forgetLastBlock(); // the listen thread reads on: name the block in the first record
            if (placed) {
                // QEMU, started with -S, stays paused after RUN; its listen thread places these pages, then answers the PING.
                sendPrefetch(ahead);
                writer.ping(PLACED_PING);
                startOncePlaced();
            }
            writer.flush();
            scheduler.guestStarted(System.nanoTime());
        }

        /** The prefetch's batches as the read-ahead hands them over; before the discard the whole regions, then the rest. */
        private void sendPrefetch(PageReadAhead ahead) throws IOException {
            while (true) {
                PageReadAhead.Batch batch;
                try {
                    batch = ahead.next(options.transport().stallTimeout());
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw failure("interrupted while reading the working set", e);
                }
                if (batch == null) break;
                long whole = beforeListen.wholeRegionPages();
                if (prefetched < whole && prefetched + batch.pageCount() > whole) {
                    throw new IllegalStateException("prefetch: expected a batch to end where the whole regions do, at page " + whole
                            + ", actual a batch of pages " + prefetched + ".." + (prefetched + batch.pageCount()));
                }
                if (!discarded && prefetched == whole) endWholeRegions();
                writer.openRamSection(sid, false);
                int at = 0;
                for (PageRange unit : batch.units()) {
                    for (int q = unit.firstPage(); q < unit.endPage(); q++, at++) {
                        if (batch.zero()[at]) writer.zeroPage(unit.block(), q);
                        else writer.page(unit.block(), q, batch.data(), at * PAGE);
                    }
                }
                writer.closeRamSection(sid);
                ahead.release(batch);
                prefetched += batch.pageCount();
                events.add(RestoreEventLog.Type.PREFETCH_SENT, 0, batch.pageCount(), now());
            }
        }

        /**
         * Placed prefetch: once QEMU answered the PING after the working set, {@code cont} (a held start's owner sends it
         * instead). On a thread of its own: the sender serves the device-state load's requests meanwhile.
         */
        private void startOncePlaced() {
            Thread.ofVirtual().name("start-once-placed-" + vm.name()).start(() -> {
                try {
                    prefetchPlaced.get(options.transport().stallTimeout().toMillis(), TimeUnit.MILLISECONDS);
                    events.add(RestoreEventLog.Type.PREFETCH_PLACED, 0, prefetched, now());
                    if (options.startHeld().isEmpty()) vm.qmp().cont(options.transport().stallTimeout());
                } catch (java.util.concurrent.TimeoutException e) {
                    startFailure = "QEMU did not answer the PING after the working set within "
                            + options.transport().stallTimeout().toSeconds() + " s (its listen thread did not place it)";
                } catch (java.util.concurrent.ExecutionException | InterruptedException | QmpException e) {
                    startFailure = "starting the guest once its working set was placed failed: " + e.getMessage();
                }
            });
        }

        private void endWholeRegions() throws IOException {
            events.add(RestoreEventLog.Type.WHOLE_REGIONS_SENT, 0, prefetched, now());
            sendDiscards();
        }

        /** The scheduler's discards: one unit, or after whole regions every page not prefetched (docs/protocol.md: THP, the 7.2 LISTEN defect). */
        private void sendDiscards() throws IOException {
            for (int b = 0; b < blocks.size(); b++) {
                final int block = b;
                List<PageRange> ranges = beforeListen.discards().ranges().stream().filter(r -> r.block() == block).toList();
                if (ranges.isEmpty()) continue;
                long[] starts = ranges.stream().mapToLong(r -> (long) r.firstPage() * PAGE).toArray();
                long[] lengths = ranges.stream().mapToLong(r -> (long) r.pageCount() * PAGE).toArray();
                int max = StreamWriter.maxDiscardRanges(blocks.get(b).name());
                for (int i = 0; i < starts.length; i += max) {
                    writer.discard(b, starts, lengths, i, Math.min(max, starts.length - i));
                }
            }
            discarded = true;
        }

        /** Hands the pages after RUN to a sender: the main connection only, or requests on the preempt channel beside it. */
        private void servePages() throws IOException {
            if (preemptWriter == null) {
                pages.serve();
                return;
            }
            preemptSender = new PreemptSender(pages, preemptWriter, options.transport().stallTimeout());
            preemptSender.serve();
        }

        private void readReturnPath(Link l) {
            ReturnPathReader rp = new ReturnPathReader(ChannelStreams.input(l.channel), blocks);
            try {
                while (true) {
                    ReturnPathMessage m = rp.next();
                    switch (m) {
                        case ReturnPathMessage.PageRequest r -> {
                            validate(blocks, blockIndex, r);
                            PreemptSender inline = preemptSender;
                            if (inline != null && inline.serveInline(r)) continue;
                            requests.add(r);
                            if (DEMAND_BOOST) boost.requestArrived();
                        }
                        case ReturnPathMessage.Shut s -> {
                            l.shut.complete(s.status());
                            return;
                        }
                        case ReturnPathMessage.Pong p -> {
                            log.debug("{}: PONG {}", vm.name(), p.value());
                            if (p.value() == PLACED_PING) prefetchPlaced.complete(null);
                        }
                        case ReturnPathMessage.ReceivedBitmap b -> l.handshake.add(b);
                        case ReturnPathMessage.ResumeAck a -> l.handshake.add(a);
                        case ReturnPathMessage.Other o -> log.debug("{}: ignoring return-path message type {}", vm.name(), o.type());
                    }
                }
            } catch (EOFException e) {
                l.failure = "the destination closed the connection before SHUT";
            } catch (IOException e) {
                // Its class too: a closed or interrupted channel's exception has no message (seen: "failed: null").
                l.failure = "the return path failed: " + e;
            } catch (StreamFormatException e) {
                l.failure = "protocol error on the return path: " + e.getMessage();
                l.protocolError = true;
                l.close(); // the destination cannot be served safely any more
            }
            l.shut.completeExceptionally(l.protocolError ? new IllegalStateException(l.failure)
                    : new PostcopyRecovery.ConnectionLost(l.failure));
        }

        @Override
        public void checkHealthy() {
            Link l = link;
            if (l.protocolError) throw failure(l.failure, null);
            if (!vm.isAlive()) throw failure("QEMU died", null);
            if (startFailure != null) throw failure(startFailure, null);
            if (l.failure != null) throw new PostcopyRecovery.ConnectionLost(l.failure);
        }

        @Override
        public void waiting() {
            waitingProgress.set(System.nanoTime());
        }

        @Override
        public boolean mayEnd() {
            if (deviceStateLoaded) return true;
            long now = System.nanoTime();
            if (mayEndAskedNanos == 0) {
                mayEndAskedNanos = now;
                qmpEvents = vm.qmp().events().cursorFromStart();
            }
            if (qmpEvents.drain().stream().anyMatch(e -> e.is("RESUME"))) {
                deviceStateLoaded = true;
            } else if (options.startHeld().isPresent() && heldStatusProbe == null) {
                // Started with -S, QEMU stays paused after RUN and says so only when asked; one question at a time, on a
                // thread of its own, since the main loop does not answer while it loads.
                heldStatusProbe = Thread.ofVirtual().name("held-status-" + vm.name()).start(this::probeHeldStatus);
            }
            if (deviceStateLoaded) {
                if (now - mayEndAskedNanos > 10_000_000L) events.add(RestoreEventLog.Type.EOF_HELD, 0, (now - mayEndAskedNanos) / 1000, now());
                return true;
            }
            if (now - mayEndAskedNanos > options.transport().completionTimeout().toNanos()) {
                log.warn("{}: QEMU did not report the device state loaded within {} s of the last page; sending EOF", vm.name(),
                        options.transport().completionTimeout().toSeconds());
                deviceStateLoaded = true;
                return true;
            }
            return false;
        }

        private void probeHeldStatus() {
            while (!deviceStateLoaded && vm.isAlive()) {
                try {
                    QmpClient.RunState state = vm.qmp().queryStatus(options.transport().completionTimeout());
                    if (state.running() || state.status().equals("paused")) {
                        deviceStateLoaded = true;
                        return;
                    }
                    Thread.sleep(20);
                } catch (QmpException | InterruptedException e) {
                    return; // the restore notices QEMU's end, or the wait runs out
                }
            }
        }

        private int awaitShut() throws InterruptedException {
            try {
                return link.shut.get(options.transport().completionTimeout().toMillis(), TimeUnit.MILLISECONDS);
            } catch (java.util.concurrent.TimeoutException e) {
                throw failure("no SHUT from the destination within " + options.transport().completionTimeout().toSeconds() + " s after EOF", e);
            } catch (java.util.concurrent.ExecutionException e) {
                if (e.getCause() instanceof PostcopyRecovery.ConnectionLost lost) throw lost;
                throw failure(e.getCause().getMessage(), e.getCause());
            }
        }

        @Override
        public RestoreException failure(String what, Throwable cause) {
            // A stream that broke here (not recovered) means QEMU is on its way out, killed or failing the load: its exit
            // status says which, and it may not have been reaped yet.
            if (cause instanceof IOException) vm.awaitExit(Duration.ofSeconds(2));
            return new RestoreException(vm.name() + ": postcopy restore failed: " + what + "; " + vm.describeState(), cause);
        }

        /** One connection to the destination: the main stream's writer, its stall watchdog and its return-path reader. */
        private final class Link implements PostcopyRecovery.Connection {
            final SocketChannel channel;
            final StreamWriter writer;
            final StallWatchdog watchdog;
            final Thread reader;
            final CompletableFuture<Integer> shut = new CompletableFuture<>();
            /** Recovery's answers (received bitmaps, RESUME_ACK), in arrival order. */
            final LinkedBlockingQueue<ReturnPathMessage> handshake = new LinkedBlockingQueue<>();
            /** Why the connection broke; set once, by the reader. */
            volatile String failure;
            /** The destination sent what it must not: no recovery. */
            volatile boolean protocolError;

            Link(SocketChannel channel) throws IOException {
                this.channel = channel;
                Transport transport = options.transport();
                channel.setOption(StandardSocketOptions.SO_SNDBUF, transport.sendBufferBytes());
                watchdog = new StallWatchdog("postcopy-" + vm.name(), () -> bytes.get() + waitingProgress.get(), transport.stallTimeout(),
                        channel);
                writer = new StreamWriter(new DirectChannelOutput(channel, 256 << 10, bytes),
                        blocks);
                // From the first byte: requests arrive while the device state loads, before RUN.
                reader = Thread.ofPlatform().daemon().name("return-path-" + vm.name()).start(() -> readReturnPath(this));
            }

            @Override
            public StreamWriter writer() {
                return writer;
            }

            @Override
            public ReturnPathMessage nextHandshake(long timeoutMillis) throws InterruptedException {
                return handshake.poll(timeoutMillis, TimeUnit.MILLISECONDS);
            }

            @Override
            public String failure() {
                return failure;
            }

            @Override
            public boolean protocolError() {
                return protocolError;
            }

            @Override
            public void close() {
                watchdog.close();
                try {
                    channel.close();
                } catch (IOException ignored) {
                    // closing anyway
                }
            }
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
        if (r.offset() < 0 || r.offset() % pageBytes != 0 || r.length() != pageBytes || r.offset() > size - r.length()) { // not offset + length: it overflows near 2^63
            throw new StreamFormatException(-1, String.format("page request for block %s: expected a %d-byte page below 0x%x,"
                    + " actual offset 0x%x length %d", r.blockName(), pageBytes, size, r.offset(), r.length()));
        }
    }
}
