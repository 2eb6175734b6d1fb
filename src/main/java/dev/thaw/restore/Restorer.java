package dev.thaw.restore;

import dev.thaw.estimate.PageRef;
import dev.thaw.estimate.PrefetchSize;
import dev.thaw.estimate.Sizing;
import dev.thaw.estimate.WorkingSet;
import dev.thaw.host.PageTouchProbe;
import dev.thaw.image.CheckpointImage;
import dev.thaw.qemu.QemuVm;
import dev.thaw.util.ThreadPriority;
import java.nio.file.Path;
import java.time.Instant;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.function.Consumer;
import java.util.function.UnaryOperator;

/**
 * One entry to every restore mode: eager, lazy, or ws with the image's working-set section or the
 * working set learned from its latest restore ({@link WorkingSetChoice}). Lazy and ws restores
 * leave their trace and event log beside the image, so that the next ws restore learns from them.
 */
public final class Restorer {
    public enum Mode {
        EAGER, LAZY, WS,
        /**
         * The kernel's demand paging of the image's RAM file ({@link RamFiles}, mapped privately), with the working set put into
         * the page cache in queue order once QEMU has the device state ({@link PageCachePrefetch}).
         */
        MAPPED;

        public static Mode parse(String name) {
            return switch (name.toLowerCase(Locale.ROOT)) {
                case "eager" -> EAGER;
                case "lazy" -> LAZY;
                case "ws" -> WS;
                case "mapped" -> MAPPED;
                default -> throw new IllegalArgumentException("--mode: expected auto, eager, lazy, ws or mapped, actual '" + name + "'");
            };
        }

        public String label() {
            return name().toLowerCase(Locale.ROOT);
        }
    }

    /**
     * What a restore did. Seconds from its start. {@code postcopy} and {@code trace} are present for lazy and ws.
     */
    public record Outcome(Mode mode, QemuVm vm, double qemuReadySeconds, double runningSeconds, double completedSeconds, long streamBytes,
                          Optional<PostcopyRestore.Result> postcopy, Optional<Path> trace, Optional<String> prefetchSizing,
                          Optional<GuestRamChoice.Choice> guestRam) {
        public Outcome(Mode mode, QemuVm vm, double qemuReadySeconds, double runningSeconds, double completedSeconds, long streamBytes,
                       Optional<PostcopyRestore.Result> postcopy, Optional<Path> trace, Optional<String> prefetchSizing) {
            this(mode, vm, qemuReadySeconds, runningSeconds, completedSeconds, streamBytes, postcopy, trace, prefetchSizing, Optional.empty());
        }
    }

    private Restorer() {}

    /** The mode {@code --mode auto} chose, and why. */
    public record AutoMode(Mode mode, String reason) {}

    /**
     * The mode to use when none is asked for. mapped when the image has its RAM file: on this host its median TTR was sooner
     * than the ws restore's in 4 of the 5 configurations measured (512 MiB warm and cold, 1 GiB contiguous cold, 4 GiB scattered
     * cold; not 1 GiB scattered cold, where both were within noise), and it reads the least from the disk (docs/benchmarks.md,
     * seventh session), unless QEMU cannot map it (on a read-only file system, or a guest with free-page reporting:
     * {@link MappedRestore#whyNotMappable}, said in
     * the reason); else ws when the image has a working set or a restore left a trace; else lazy.
     */
    public static AutoMode defaultMode(CheckpointImage image) {
        Optional<Path> ramFile = RamFiles.existing(image);
        String unmapped = "";
        if (ramFile.isPresent()) {
            Optional<String> why = MappedRestore.whyNotMappable(image, ramFile.get());
            if (why.isEmpty()) {
                return new AutoMode(Mode.MAPPED, "the image has its RAM file (" + RamFiles.directoryFor(image.directory()) + ")");
            }
            unmapped = " (not mapped: " + why.get() + ")";
        }
        if (image.workingSet().filter(ws -> ws.size() > 0).isPresent()) {
            return new AutoMode(Mode.WS, "the image has a working set" + unmapped);
        }
        if (usableTrace(image).isPresent()) return new AutoMode(Mode.WS, "a restore of the image left a trace to learn from" + unmapped);
        return new AutoMode(Mode.LAZY, ramFile.isPresent() ? "the image has no working set and no trace" + unmapped
                : "the image has no RAM file, no working set and no trace");
    }

    /**
     * The latest trace, unless it is damaged: traces are best-effort, so one edited or cut short is skipped with a warning
     * here (a restore that did not ask for the learned set goes on); asking for it ({@code --ws-from learned}) fails naming it.
     */
    private static Optional<RestoreTraces.Trace> usableTrace(CheckpointImage image) {
        try {
            return RestoreTraces.latest(image);
        } catch (RestoreException e) {
            org.slf4j.LoggerFactory.getLogger(Restorer.class).warn("not learning from a damaged trace: {}", e.getMessage());
            return Optional.empty();
        }
    }

    /** A working set and where it came from: {@code image} (the image's section) or {@code learned} (the latest restore). */
    public record Chosen(WorkingSet workingSet, WorkingSetChoice.Source from) {}

    /**
     * The working set a ws restore of this image would use, before sizing; empty when there is none. The image's own
     * ({@code image}) never reads the latest trace: parsing one (tens of thousands of pages as JSON) is time between opening the
     * image and the restore that a guest's time to responsiveness counts, for nothing.
     */
    public static Optional<Chosen> workingSet(CheckpointImage image, WorkingSetChoice.Source source) {
        Optional<WorkingSet> section = image.workingSet();
        if (source == WorkingSetChoice.Source.IMAGE) return section.map(w -> new Chosen(w, WorkingSetChoice.Source.IMAGE));
        Optional<RestoreTraces.Trace> trace = source == WorkingSetChoice.Source.LEARNED ? RestoreTraces.latest(image) : usableTrace(image);
        // A trace made after the section was attached refines it; an older one predates it.
        boolean learned = source == WorkingSetChoice.Source.LEARNED
                || trace.isPresent() && (section.isEmpty() || Instant.parse(trace.get().startedAt()).isAfter(image.manifestModified()));
        return learned ? trace.map(t -> new Chosen(RestoreTraces.learned(t), WorkingSetChoice.Source.LEARNED))
                : section.map(w -> new Chosen(w, WorkingSetChoice.Source.IMAGE));
    }

    /**
     * What a ws restore does with a queue: prefetch its head, send the rest of it first in the background.
     *
     * @param density the estimate's pages over their 2 MiB regions, times 512 ({@link PrefetchSize#density})
     */
    public record Plan(List<PageRef> prefetch, List<PageRef> backgroundFirst, String sizing, double density) {}

    /** The most a scattered estimate prefetches whole: what the read-ahead holds. */
    static final long PREFETCH_BUDGET_PAGES = PostcopyRestore.PREFETCH_BYTES_AHEAD / dev.thaw.migration.Wire.TARGET_PAGE_BYTES;

    /**
     * How much of the queue to prefetch: {@code choice.fraction()} of the estimated size when given, else elastic
     * ({@link PrefetchSize#elastic}: half of a clustered estimate, the whole of a scattered one); capped by {@code choice.pages()}.
     */
    public static Plan plan(WorkingSet queue, WorkingSetChoice choice) {
        return plan(queue, choice, PrefetchSize.CLUSTERED_DENSITY);
    }

    /**
     * As above, an estimate counting as clustered from {@code clusteredDensity}: {@link GuestRamChoice#MIN_DENSITY} for guest
     * RAM in 2 MiB pages. There too half of a clustered estimate started the guest sooner than the whole (stall TTR 0.82 s
     * against 1.33 s at the median, 1 GiB, W=256 contiguous, cold; docs/benchmarks.md, sixteenth session).
     */
    static Plan plan(WorkingSet queue, WorkingSetChoice choice, double clusteredDensity) {
        PrefetchSize size = choice.fraction().isPresent()
                ? PrefetchSize.fraction(queue, Sizing.HOTRESTORE.withPrefetchFraction(choice.fraction().getAsDouble()))
                : PrefetchSize.elastic(queue, Sizing.HOTRESTORE, PREFETCH_BUDGET_PAGES, clusteredDensity);
        Sized n = capped(new Sized(size.pages(), size.reason()), choice);
        List<PageRef> all = queue.pages();
        return new Plan(all.subList(0, n.pages()), all.subList(n.pages(), all.size()), n.why(), size.density());
    }

    /** How many pages of a queue a restore takes first, and why. */
    private record Sized(int pages, String why) {}

    /** At most {@code --ws-pages}, saying so when it cut. */
    private static Sized capped(Sized size, WorkingSetChoice choice) {
        if (choice.pages().isEmpty() || choice.pages().getAsInt() >= size.pages()) return size;
        int n = choice.pages().getAsInt();
        return new Sized(n, size.why() + "; capped at " + n + " pages (--ws-pages)");
    }

    /**
     * @param choice which working set a ws restore uses and how much of it it prefetches
     * @param tune   adjusts the postcopy options (huge pages, ...)
     */
    public static Outcome restore(CheckpointImage image, Mode mode, String vmName, WorkingSetChoice choice,
                                  UnaryOperator<PostcopyRestore.Options> tune, Consumer<String> progress) {
        return restore(image, mode, vmName, RestoreIdentity.single(), choice, tune, progress);
    }

    /** As above, as {@code identity} (one of several clones, {@link Clones}). */
    public static Outcome restore(CheckpointImage image, Mode mode, String vmName, RestoreIdentity identity, WorkingSetChoice choice,
                                  UnaryOperator<PostcopyRestore.Options> tune, Consumer<String> progress) {
        Path imageDir = image.directory();
        if (mode == Mode.EAGER) {
            EagerRestore.Result r = EagerRestore.restore(image, EagerRestore.Options.defaults(vmName).withIdentity(identity),
                    p -> progress.accept(String.format("eager restore: %d/%d pages", p.pagesSent(), p.pageCount())));
            return new Outcome(mode, r.vm(), r.qemuReadyNanos() / 1e9, r.runningNanos() / 1e9, r.runningNanos() / 1e9, r.streamBytes(),
                    Optional.empty(), Optional.empty(), Optional.empty());
        }
        if (mode == Mode.MAPPED) return restoreMapped(image, vmName, identity, choice, progress);
        // SCHED_IDLE background takes only CPU that no vCPU wants: a guest with a vCPU for every host CPU would starve it while it
        // computes, so such a guest's background runs at normal priority (Clones.backgroundPriority); tune may say otherwise.
        ThreadPriority.Policy priority = Clones.backgroundPriority(1, IncomingQemu.savedCpuCount(image),
                Runtime.getRuntime().availableProcessors());
        PostcopyRestore.Options options = tune.apply((mode == Mode.WS ? PostcopyRestore.Options.ws(vmName, List.of(), List.of())
                : PostcopyRestore.Options.lazy(vmName)).withIdentity(identity).withBackgroundPriority(priority));
        Optional<String> sizing = Optional.empty();
        boolean chosenHere = options.guestRam() == PostcopyRestore.GuestRam.AUTO;
        Plan smallPagePlan = null;
        Optional<GuestRamChoice.Choice> guestRam = options.guestRam() == PostcopyRestore.GuestRam.AUTO ? Optional.empty()
                : Optional.of(GuestRamChoice.Choice.asked(options.guestRam()));
        if (mode == Mode.WS) {
            WorkingSet queue = workingSet(image, choice.source()).map(Chosen::workingSet).filter(w -> w.size() > 0).orElseThrow(() -> new IllegalArgumentException(
                    "--mode ws: the image has no working set (source " + choice.source().name().toLowerCase(java.util.Locale.ROOT)
                            + "): expected a working-set section (thaw save --estimator ...) or a trace in "
                            + RestoreTraces.directoryFor(imageDir) + " (restore it once with --mode lazy)"));
            Plan plan = plan(queue, choice, options.guestRam() == PostcopyRestore.GuestRam.HUGETLB ? GuestRamChoice.MIN_DENSITY
                    : PrefetchSize.CLUSTERED_DENSITY);
            if (options.guestRam() == PostcopyRestore.GuestRam.AUTO) {
                long ramBytes = (long) IncomingQemu.savedConfig(image).memoryMiB() << 20;
                boolean smallPageTrial = options.transport().placedPrefetch() || options.policy().wholeRegionPrefetch();
                guestRam = Optional.of(GuestRamChoice.choose(new GuestRamChoice.Restore(true, identity.cloneCount(), plan.prefetch().size(),
                        plan.density(), ramBytes, smallPageTrial), HugePages.host(), () -> PageTouchProbe.forThisBoot(PageTouchProbe.RESTORE_PROBE_BYTES)));
                options = options.withGuestRam(guestRam.get().guestRam());
                smallPagePlan = plan;
                // Only an estimate between the two thresholds sizes differently in 2 MiB pages: the rest keeps its plan (and
                // its density's sort of every estimated page, done once).
                if (guestRam.get().hugetlb() && plan.density() < PrefetchSize.CLUSTERED_DENSITY) plan = plan(queue, choice, GuestRamChoice.MIN_DENSITY);
                progress.accept("ws restore: guest RAM in " + guestRam.get().reason());
            }
            options = options.withWorkingSet(plan.prefetch()).withBackgroundFirst(plan.backgroundFirst());
            sizing = Optional.of(plan.sizing());
            progress.accept("ws restore: prefetching " + plan.sizing());
        } else if (options.guestRam() == PostcopyRestore.GuestRam.AUTO) {
            guestRam = Optional.of(GuestRamChoice.choose(GuestRamChoice.Restore.lazy(identity.cloneCount()), HugePages.host(),
                    () -> { throw new IllegalStateException("a lazy restore does not probe"); }));
            options = options.withGuestRam(guestRam.get().guestRam());
        }
        Instant startedAt = Instant.now();
        PostcopyRestore.Result r;
        Consumer<String> restoreProgress = msg -> progress.accept(mode.label() + " restore: " + msg);
        try {
            r = PostcopyRestore.restore(image, options, restoreProgress);
        } catch (QemuVm.QemuLaunchException e) {
            if (!retriesInSmallPages(chosenHere, guestRam, e)) throw e;
            // Chosen here, not asked for: another restore took the 2 MiB pages between the choice and QEMU's mmap (which fails
            // at once: hugetlb memory is never overcommitted). The same restore in 4 KiB pages, which never fail for want of them.
            guestRam = Optional.of(new GuestRamChoice.Choice(PostcopyRestore.GuestRam.DEFAULT, "4 KiB pages: QEMU could not start with"
                    + " guest RAM in 2 MiB pages (" + firstLine(e.getMessage()) + "); chosen first: " + guestRam.get().reason()));
            restoreProgress.accept("guest RAM in " + guestRam.get().reason());
            options = options.withGuestRam(PostcopyRestore.GuestRam.DEFAULT);
            if (smallPagePlan != null) {
                options = options.withWorkingSet(smallPagePlan.prefetch()).withBackgroundFirst(smallPagePlan.backgroundFirst());
                sizing = Optional.of(smallPagePlan.sizing());
            }
            startedAt = Instant.now();
            try {
                r = PostcopyRestore.restore(image, options, restoreProgress);
            } catch (RuntimeException again) {
                again.addSuppressed(e);
                throw again;
            }
        }
        Optional<Path> trace = RestoreTraces.write(image, mode.label(), startedAt, options, r);
        return new Outcome(mode, r.vm(), r.qemuReadyNanos() / 1e9, r.runningNanos() / 1e9, r.completedNanos() / 1e9, r.streamBytes(),
                Optional.of(r), trace, sizing, guestRam);
    }

    /**
     * Whether a restore whose QEMU failed to launch goes again in 4 KiB pages: only when this restore chose 2 MiB pages itself
     * ({@code --guest-ram auto}); what the operator asked for fails as asked.
     */
    static boolean retriesInSmallPages(boolean chosenHere, Optional<GuestRamChoice.Choice> chosen, QemuVm.QemuLaunchException failure) {
        return chosenHere && chosen.isPresent() && chosen.get().hugetlb() && failure != null;
    }

    private static String firstLine(String message) {
        if (message == null) return "no message";
        int newline = message.indexOf('\n');
        return newline < 0 ? message : message.substring(0, newline);
    }

    /**
     * Resumes a lazy or ws restore of {@code image} left paused by a Thaw that died ({@link PausedRestores}): attaches to its
     * QEMU and serves the pages it does not hold, until {@code completed}. Times are from the resume.
     */
    public static Outcome resume(CheckpointImage image, PausedRestores.Paused paused, UnaryOperator<PostcopyRestore.Options> tune,
                                 Consumer<String> progress) {
        QemuVm vm = QemuVm.attach(paused.runDir());
        PostcopyRestore.Options options = tune.apply(PostcopyRestore.Options.lazy(vm.name()));
        PostcopyRestore.Result r = PostcopyRestore.resume(image, vm, options, msg -> progress.accept("resume: " + msg));
        return new Outcome(Mode.LAZY, r.vm(), 0, 0, r.completedNanos() / 1e9, r.streamBytes(), Optional.of(r), Optional.empty(),
                Optional.of("resumed: the pages QEMU did not hold"));
    }

    /**
     * A mapped restore: the RAM file (written now if the image has none), the working set (if any) paged into the page cache in
     * queue order, whole unless capped ({@code --ws-pages}, {@code --ws-fraction}): reading ahead into the page cache costs the
     * guest no fault and no copy, so there is no reason to stop at half.
     */
    private static Outcome restoreMapped(CheckpointImage image, String vmName, RestoreIdentity identity, WorkingSetChoice choice,
                                         Consumer<String> progress) {
        long start = System.nanoTime();
        Path ramFile;
        try {
            ramFile = RamFiles.ensure(image, progress);
        } catch (java.io.UncheckedIOException e) {
            // A read-only image restores every other way; this one needs the RAM file beside it.
            throw new RestoreException("mapped restore: the image has no RAM file, and it cannot be written: " + e.getMessage()
                    + " (restore with --mode ws or lazy, or write the RAM file while the image is writable: thaw save --ram-file)", e);
        }
        try {
            dev.thaw.util.OwnerOnly.requireTrustedWriters(ramFile, "RAM file");
        } catch (java.io.IOException e) {
            throw new RestoreException("mapped restore: cannot check the RAM file " + ramFile + ": " + e.getMessage(), e);
        }
        long written = System.nanoTime() - start;
        List<PageRef> pages = List.of();
        String sizing = "no working set: the guest's faults read every page";
        Optional<Chosen> chosen = workingSet(image, choice.source()).filter(c -> c.workingSet().size() > 0);
        if (chosen.isPresent()) {
            WorkingSet queue = chosen.get().workingSet();
            Sized size = new Sized(queue.size(), "the whole queue of " + queue.size() + " pages ("
                    + chosen.get().from().name().toLowerCase(Locale.ROOT) + ")");
            if (choice.fraction().isPresent()) {
                int n = PrefetchSize.fraction(queue, Sizing.HOTRESTORE.withPrefetchFraction(choice.fraction().getAsDouble())).pages();
                size = new Sized(n, n + " pages of the queue (--ws-fraction " + choice.fraction().getAsDouble() + ")");
            }
            size = capped(size, choice);
            pages = queue.pages().subList(0, size.pages());
            sizing = size.why() + " into the page cache in queue order";
        }
        progress.accept("mapped restore: " + sizing);
        MappedRestore.Result r = MappedRestore.restore(image, ramFile, EagerRestore.Options.defaults(vmName).withIdentity(identity), pages);
        double offset = written / 1e9; // a RAM file written by this restore counts
        return new Outcome(Mode.MAPPED, r.vm(), offset + r.qemuReadyNanos() / 1e9, offset + r.runningNanos() / 1e9,
                offset + r.runningNanos() / 1e9, r.streamBytes(), Optional.empty(), Optional.empty(), Optional.of(sizing));
    }
}
