package dev.thaw.measure;

import dev.thaw.estimate.WorkingSet;
import dev.thaw.estimation.EstimatingSave;
import dev.thaw.guest.DemoGuest;
import dev.thaw.guest.GuestAgent;
import dev.thaw.guest.GuestImage;
import dev.thaw.guest.WsbenchTick;
import dev.thaw.image.CheckpointImage;
import dev.thaw.image.WorkingSetWriter;
import dev.thaw.qemu.Accel;
import dev.thaw.qemu.ConsoleLine;
import dev.thaw.qemu.Journal;
import dev.thaw.qemu.QemuVersion;
import dev.thaw.qemu.QemuVm;
import dev.thaw.qemu.VmConfig;
import dev.thaw.restore.RamFiles;
import dev.thaw.restore.PostSaveTrace;
import dev.thaw.restore.PostcopyRestore;
import dev.thaw.restore.RestoreTraces;
import dev.thaw.save.Saver;
import dev.thaw.util.FileTrees;
import dev.thaw.util.PageCache;
import dev.thaw.util.StatusListener;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.UnaryOperator;

/**
 * The main job: boot the demo guest, measure its workload, save it into an image while the workload
 * runs (and the QEMU baselines' way: a migration stream in a file and an internal qcow2 snapshot),
 * restore it by every method once (QEMU eager, QEMU loadvm, kernel demand paging of the image's
 * RAM file; Thaw eager, lazy, ws with the image's dirty,trace working set, and mapped: the same RAM
 * file with that working set read into the page cache first), and compare: time to running and to completion, demand faults, vCPU stall, TTR and
 * MMU, work over the first seconds after the restore against before the save, and whether memory
 * survived. Memory is compared by checksumming the part of wsbench's region beyond its working
 * set, which the workload never writes after filling it, so the workload can keep running through
 * the save and the restores.
 */
public final class Demo {
    /** Every method once, in this order: ws learns from the lazy restore just before it. */
    public static final List<RestoreMethod> METHODS = List.of(RestoreMethod.QEMU_EAGER, RestoreMethod.QEMU_LOADVM,
            RestoreMethod.MAPPED_FILE, RestoreMethod.THAW_EAGER, RestoreMethod.THAW_LAZY, RestoreMethod.WS_TRACE, RestoreMethod.WS_TRACE_MAPPED);
    /** The demo's estimate: the live probe's dirty rounds size it, the post-save trace orders it (thaw save --estimator dirty,trace). */
    static final Duration LIVE_LIMIT = Duration.ofSeconds(10);
    static final Duration TRACE = Duration.ofSeconds(3);
    static final String SNAPSHOT_TAG = "thaw-demo";

    /**
     * @param measure how long the workload is measured before the save and observed after each restore
     * @param image   where the image goes (its parent is created; the baselines' files go beside it)
     * @param tune    adjusts Thaw's lazy and ws restores (the background rate, ...)
     * @param coldImage before each restore, evict every saved file (Thaw's image and RAM file, QEMU's stream and qcow2) from the
     *                  host's page cache, as for a snapshot saved earlier or elsewhere; QEMU, the guest kernel and everything else
     *                  stay cached. Without it each restore reads files the save has just written, from memory.
     */
    public record Config(DemoGuest guest, Duration measure, Path image, UnaryOperator<PostcopyRestore.Options> tune, boolean coldImage,
                         int closeRuns) {
        public Config {
            requireCloseRuns(closeRuns);
        }
    }

    /** Refuses a number of runs for the close methods outside 1..9, naming the option; the command checks it before anything starts. */
    public static void requireCloseRuns(int closeRuns) {
        if (closeRuns < 1 || closeRuns > 9) throw new IllegalArgumentException("--close-runs: expected 1..9, actual " + closeRuns);
    }

    /** How close a baseline's first stall TTR must come to ws's (or beat it) to be run again with ws: 0.15 s, the spread of one run here. */
    static final double CLOSE_SECONDS = 0.15;

    /**
     * One restore method's result, named as the demo's table names it ({@code mode}). Seconds from the start of the restore.
     *
     * @param ttrSeconds      TTR(1 s, 0.8) by the rate before the save; null if not reached within the observation
     * @param stallTtrSeconds the stall TTR ({@link AfterRestore#stallTtrSeconds}); null if not reached or not reported
     */
    public record ModeResult(RestoreMethod method, String mode, double runningSeconds, double completedSeconds, Long demandFaults, Long vcpuBlockedMillis,
                             Double ttrSeconds, Double stallTtrSeconds, double mmu, double throughputRelative, String memsumAfter,
                             boolean memsumIdentical) {}

    /**
     * What the demo did and measured. Boot times are milliseconds from QEMU's launch.
     *
     * @param modes   every method once, in {@link #METHODS}' order
     * @param repeats the further runs of ws and the baselines close to it ({@link DemoVerdict#toRepeat}), interleaved
     */
    public record Result(long initUpMillis, long wsbenchReadyMillis, Throughput before, GuestAgent.MemSum memsumBefore, Saver.Result saved,
                         List<ModeResult> modes, List<ModeResult> repeats) {
        /** Every run: the first pass, then the repeats. */
        public List<ModeResult> all() {
            List<ModeResult> all = new ArrayList<>(modes);
            all.addAll(repeats);
            return List.copyOf(all);
        }
    }

    /** QEMU's saves, beside the image; removed after the restores. */
    private record BaselineFiles(Path qemuStream, Path qcow2) {
        List<Path> all() {
            return List.of(qemuStream, qcow2);
        }

        /** The mapped baseline maps Thaw's RAM file of the image (thaw save --ram-file), which stays with the image. */
        QemuBaselines.BaselineFiles forRestore(CheckpointImage img) {
            return new QemuBaselines.BaselineFiles(qemuStream, qcow2, SNAPSHOT_TAG, RamFiles.fileFor(img));
        }
    }

    private final Config config;
    private final StatusListener listener;
    private final BaselineFiles files;

    private Demo(Config config, StatusListener listener) {
        this.config = config;
        this.listener = listener;
        Path target = config.image();
        this.files = new BaselineFiles(target.resolveSibling(target.getFileName() + ".qemu-stream"),
                target.resolveSibling(target.getFileName() + ".qcow2"));
    }

    public static Result run(Config config, GuestImage image, QemuVersion qemu, Accel accel, StatusListener listener)
            throws IOException, InterruptedException {
        return new Demo(config, listener).run(image, qemu, accel);
    }

    private Result run(GuestImage image, QemuVersion qemu, Accel accel) throws IOException, InterruptedException {
        DemoGuest guest = config.guest();
        Path target = config.image();
        Files.createDirectories(target.toAbsolutePath().getParent());
        for (Path p : files.all()) Files.deleteIfExists(p);
        // An earlier demo's RAM file (its image is replaced below); before RamFiles existed, a plain file of this name.
        FileTrees.deleteQuietly(RamFiles.directoryFor(target));
        VmConfig sourceConfig;
        long initUp;
        long ready;
        Throughput before;
        GuestAgent.MemSum memsumBefore;
        Saver.Result saved;
        long coldMiB = guest.totalMiB() - guest.wsMiB();
        try (QemuVm vm = QemuVm.launch(guest.vmConfig("thaw-demo", image, qemu, accel))) {
            Journal<ConsoleLine>.Cursor cursor = vm.console().cursorFromStart();
            listener.status("booting");
            ConsoleLine readyLine = DemoGuest.awaitReady(vm, cursor, DemoGuest.BOOT_TIMEOUT);
            ready = millisSince(vm.launchedNanos(), readyLine.hostNanos());
            initUp = vm.console().snapshot().stream().filter(l -> l.text().contains("thaw-init up")).findFirst()
                    .map(l -> millisSince(vm.launchedNanos(), l.hostNanos())).orElse(-1L);
            listener.line(String.format("booted: kernel and init up after %.1f s, wsbench ready after %.1f s", initUp / 1000.0, ready / 1000.0));
            before = measure(vm, cursor, "before the save");
            try (GuestAgent agent = GuestAgent.connect(vm)) {
                agent.awaitReady(Duration.ofSeconds(30));
                memsumBefore = agent.memsumCold();
            }
            listener.line(String.format("memsum of the %d MiB wsbench never writes after its fill: %s", coldMiB, memsumBefore.checksumHex()));
            // QEMU's saves first: each resumes the guest, while Thaw's leaves it stopped to be quit.
            listener.status("saving QEMU's way: migration stream to a file, internal snapshot to qcow2");
            QemuBaselines.saveToFile(vm.qmp(), files.qemuStream(), Duration.ofMinutes(5));
            QemuBaselines.saveInternalSnapshot(vm.qmp(), files.qcow2(), SNAPSHOT_TAG, Duration.ofMinutes(5));
            listener.line(String.format("QEMU's saves: stream %d MiB, qcow2 snapshot %d MiB", Files.size(files.qemuStream()) >> 20,
                    Files.size(files.qcow2()) >> 20));
            saved = Saver.save(vm.qmp(), vm.config(), target, Saver.Options.defaults().withDirtyEstimator(LIVE_LIMIT),
                    p -> listener.status(String.format("saving: %d MiB read", p.streamBytes() >> 20)));
            dev.thaw.image.Manifest.Stats s = saved.manifest().stats();
            listener.line(String.format("saved in %.2f s (workload running): %d MiB stream -> %d MiB image (%d pages: %d zero, %d stored,"
                            + " %d duplicate) in %s", saved.durationNanos() / 1e9, saved.streamBytes() >> 20, s.imageFileBytes() >> 20,
                    s.pageCount(), s.zeroPageCount(), s.storedPageCount(), s.duplicatePageCount(), saved.image()));
            sourceConfig = vm.config();
            vm.qmp().quit();
            vm.awaitExit(Duration.ofSeconds(10));
        }

        // The best estimate this host has: the post-save trace (the guest goes on lazily for a few seconds and its first
        // touches are the queue), sized by the live probe's dirty rounds (HotRestore's hybrid), attached to the image.
        listener.status("tracing the guest's first touches after the save");
        WorkingSet estimate;
        try (CheckpointImage img = CheckpointImage.open(target)) {
            PostSaveTrace.Result t = EstimatingSave.traceAfterSave(img, "thaw-demo-trace", TRACE, saved.workingSet(), listener::status);
            t.restore().vm().close();
            estimate = t.workingSet();
        }
        WorkingSetWriter.attach(target, estimate);
        listener.line("working set (dirty,trace): " + estimate.description());
        List<ModeResult> modes = new ArrayList<>();
        List<ModeResult> repeats = new ArrayList<>();
        FileTrees.deleteQuietly(RestoreTraces.directoryFor(target)); // restores below leave their own traces
        try (CheckpointImage img = CheckpointImage.open(target)) {
            RamFiles.write(img);
            for (RestoreMethod method : METHODS) {
                modes.add(restore(method, img, sourceConfig, before, memsumBefore));
            }
            // One run cannot order restores this close here: ws and the baselines near it again, rotated so none always goes first.
            List<RestoreMethod> close = config.closeRuns() > 1 ? DemoVerdict.toRepeat(modes, CLOSE_SECONDS) : List.of();
            if (!close.isEmpty()) {
                listener.line(String.format("close to ws (within %.2f s): %s; %d more runs each, interleaved", CLOSE_SECONDS,
                        close.stream().map(RestoreMethod::shortName).toList(), config.closeRuns() - 1));
            }
            for (int run = 1; run < config.closeRuns() && !close.isEmpty(); run++) {
                for (int i = 0; i < close.size(); i++) {
                    repeats.add(restore(close.get((i + run) % close.size()), img, sourceConfig, before, memsumBefore));
                }
            }
        } finally {
            for (Path p : files.all()) Files.deleteIfExists(p); // large, and only this run's baselines
        }
        return new Result(initUp, ready, before, memsumBefore, saved, List.copyOf(modes), List.copyOf(repeats));
    }

    private ModeResult restore(RestoreMethod method, CheckpointImage img, VmConfig source, Throughput before,
                               GuestAgent.MemSum memsumBefore) throws InterruptedException {
        String mode = method.shortName();
        if (config.coldImage()) evictSavedFiles(mode);
        MethodRestore.Restored restored = MethodRestore.restore(method, new MethodRestore.Saved(source, new MethodRestore.Image.Open(img),
                files.forRestore(img)), "thaw-demo-" + mode, config.tune(), listener::status);
        double running = restored.runningNanos() / 1e9;
        double completed = restored.completedNanos() / 1e9;
        Long faults = restored.postcopy().map(PostcopyRestore.Result::demandFaults).orElse(null);
        Long blocked = restored.postcopy().map(PostcopyRestore.Result::vcpuBlockedMillis).orElse(null);
        try (QemuVm vm = restored.vm()) {
            listener.line(String.format("%s restore: guest running after %.2f s, completed after %.2f s%s", mode, running, completed,
                    faults == null ? "" : ", " + faults + " demand faults, vCPU stalled " + blocked + " ms"));
            listener.status(String.format("measuring after the %s restore", mode));
            AfterRestore seen = AfterRestore.observe(vm, restored.startedNanos(), restored.runningNanos(), before.opsPerSecond(), config.measure());
            double rate = seen.relativeThroughput() * before.opsPerSecond();
            Double ttr = seen.ttrSeconds().orElse(null);
            double mmu = seen.mmu();
            GuestAgent.MemSum memsumAfter;
            try (GuestAgent agent = GuestAgent.connect(vm)) {
                agent.awaitReady(Duration.ofSeconds(30));
                memsumAfter = agent.memsumCold();
            }
            listener.line(String.format("after the %s restore: %s ops/s over the first %d s (%.2fx of before); memsum %s", mode,
                    human(rate), config.measure().toSeconds(), before.opsPerSecond() > 0 ? rate / before.opsPerSecond() : 0,
                    memsumAfter.equals(memsumBefore) ? "identical" : "DIFFERENT"));
            vm.qmp().quit();
            vm.awaitExit(Duration.ofSeconds(10));
            return new ModeResult(method, mode, running, completed, faults, blocked, ttr,
                    seen.stallsReported() ? seen.stallTtrSeconds().orElse(null) : null, mmu, before.opsPerSecond() > 0 ? rate / before.opsPerSecond() : 0,
                    memsumAfter.checksumHex(), memsumAfter.equals(memsumBefore));
        }
    }

    /** Every file a restore may read, out of the page cache; says how much was cached and how much stayed. */
    private void evictSavedFiles(String mode) {
        List<Path> roots = List.of(files.qemuStream(), files.qcow2(), config.image(), RamFiles.directoryFor(config.image()));
        try {
            long cached = PageCache.residentBytesOfTrees(roots);
            PageCache.evictTrees(roots);
            long left = PageCache.residentBytesOfTrees(roots);
            listener.line(String.format("before the %s restore: the saved files' %d MiB in the page cache evicted (%d MiB stayed)", mode,
                    cached >> 20, left >> 20));
        } catch (IOException e) {
            throw new java.io.UncheckedIOException("evicting the saved files from the page cache before the " + mode + " restore: "
                    + e.getMessage(), e);
        }
    }

    private Throughput measure(QemuVm vm, Journal<ConsoleLine>.Cursor cursor, String when) throws InterruptedException {
        List<WsbenchTick> ticks = new ArrayList<>();
        long start = System.nanoTime();
        long seconds = config.measure().toSeconds();
        long window = config.measure().toNanos();
        while (System.nanoTime() - start < window) {
            ticks.addAll(DemoGuest.collectTicks(cursor, Duration.ofMillis(500)));
            listener.status(String.format("measuring %s %.1f/%d s: %s ops/s", when, (System.nanoTime() - start) / 1e9, seconds,
                    human(Throughput.of(ticks, Throughput.ONE_SECOND_NANOS).opsPerSecond())));
            if (!vm.isAlive()) throw new IllegalStateException("the guest died: " + vm.describeState());
        }
        Throughput t = Throughput.of(ticks, Throughput.ONE_SECOND_NANOS);
        listener.line(String.format("wsbench %s: %s ops/s mean over %d ticks (1 s windows: min %s, max %s)", when,
                human(t.opsPerSecond()), t.tickCount(), human(t.minWindow()), human(t.maxWindow())));
        return t;
    }

    /**
     * A table of the restores, as the demo ends: one line per method, its first run; the stall TTR of a method run more than
     * once is the median of its runs, each run listed after it. Then the verdict ({@link DemoVerdict#verdict}).
     */
    public static String table(List<ModeResult> all, Duration measure) {
        long seconds = measure.toSeconds();
        StringBuilder out = new StringBuilder();
        String ttrLabel = String.format("TTR(%.0f s, %.1f)", Responsiveness.DEFAULT_WINDOW_NANOS / 1e9, Responsiveness.DEFAULT_UTILIZATION);
        String stallLabel = String.format("stall TTR(%.0f s, %.1f)", Responsiveness.DEFAULT_WINDOW_NANOS / 1e9, Responsiveness.DEFAULT_UNSTALLED);
        out.append(String.format("%-11s %14s %16s %14s %14s %20s %14s %8s %20s  %-9s  %s%n", "restore", "running after", "completed after",
                "demand faults", "vCPU stalled", stallLabel, ttrLabel, "MMU", "first " + seconds + " s vs before", "memory",
                "stall TTR per run"));
        for (DemoVerdict.Runs runs : DemoVerdict.runs(all)) {
            ModeResult m = all.stream().filter(r -> r.method() == runs.method()).findFirst().orElseThrow();
            boolean identical = all.stream().filter(r -> r.method() == runs.method()).allMatch(ModeResult::memsumIdentical);
            double median = runs.median();
            out.append(String.format("%-11s %12.2f s %14.2f s %14s %14s %20s %14s %8.2f %19.2fx  %-9s  %s%n", m.mode(), m.runningSeconds(),
                    m.completedSeconds(), m.demandFaults() == null ? "-" : m.demandFaults().toString(),
                    m.vcpuBlockedMillis() == null || m.vcpuBlockedMillis() < 0 ? "-" : m.vcpuBlockedMillis() + " ms",
                    ttrText(Double.isInfinite(median) ? null : median, seconds) + (runs.stallTtrSeconds().size() > 1 ? " (median)" : ""),
                    ttrText(m.ttrSeconds(), seconds), m.mmu(), m.throughputRelative(), identical ? "identical" : "DIFFERENT",
                    runs.stallTtrSeconds().size() == 1 ? "" : String.join(", ", runs.stallTtrSeconds().stream().map(t -> ttrText(t, seconds)).toList())));
        }
        out.append(DemoVerdict.verdict(all)).append(System.lineSeparator());
        return out.toString();
    }

    /** A TTR as the table says it: "0.42 s", or "> 5 s" when not reached within the observation (null). */
    private static String ttrText(Double ttrSeconds, long observedSeconds) {
        return ttrSeconds == null ? "> " + observedSeconds + " s" : String.format("%.2f s", ttrSeconds);
    }

    static long millisSince(long startNanos, long endNanos) {
        return (endNanos - startNanos) / 1_000_000;
    }

    /** Operations per second for people: {@code 1.23 M} or {@code 456 k}. */
    public static String human(double opsPerSecond) {
        return opsPerSecond >= 1e6 ? String.format("%.2f M", opsPerSecond / 1e6) : String.format("%.0f k", opsPerSecond / 1e3);
    }
}
