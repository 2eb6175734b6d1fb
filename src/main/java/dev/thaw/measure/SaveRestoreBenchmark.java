package dev.thaw.measure;

import dev.thaw.estimate.FaultOrder;
import dev.thaw.estimate.PageRef;
import dev.thaw.estimate.WorkingSet;
import dev.thaw.estimation.EstimatingSave;
import dev.thaw.guest.GuestAgent;
import dev.thaw.guest.GuestImage;
import dev.thaw.image.CheckpointImage;
import dev.thaw.image.ImageWriter;
import dev.thaw.image.WorkingSetWriter;
import dev.thaw.qemu.Accel;
import dev.thaw.qemu.QemuVersion;
import dev.thaw.qemu.QemuVm;
import dev.thaw.qemu.VcpuTime;
import dev.thaw.qemu.VmConfig;
import dev.thaw.restore.MappedRestore;
import dev.thaw.restore.RamFiles;
import dev.thaw.restore.RestoreDisks;
import dev.thaw.restore.PostSaveTrace;
import dev.thaw.restore.PostcopyRestore;
import dev.thaw.restore.RestoreTimeline;
import dev.thaw.restore.RestoreTraces;
import dev.thaw.save.DiskFreeze;
import dev.thaw.save.Saver;
import dev.thaw.util.FileTrees;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.ToDoubleFunction;
import java.util.function.UnaryOperator;
import java.util.stream.Stream;

/**
 * Every restore method on the same running demo guest, interleaved repetition by repetition (the
 * host is shared and noisy, so blocks of one method would measure the neighbours as much as the
 * method). Per repetition the guest is saved every way a method needs (Thaw's image, with the
 * dirty-bit estimate of a live probe when all methods run; QEMU's stream in a file; QEMU's internal
 * snapshot in a qcow2 file; the mapped RAM file written from Thaw's image; the post-save trace),
 * then stopped, and each method restores it in a rotated order, each from a cold page cache when
 * asked, through {@link MethodRestore} (Thaw's as {@code thaw restore} runs them). Each ws restore's estimate is attached to
 * the image just before it (as a save or {@code thaw ws --learn} would), so it restores with the image's own working set and
 * its prefetch reads the queue-order copy. With all methods, every restored guest is observed for {@link #OBSERVE}: TTR, MMU and
 * work against before the save (guest side), the host-side estimate from Thaw's timeline, QEMU's
 * resident memory over time and the bytes read from the host's disks.
 */
public final class SaveRestoreBenchmark {
    /**
     * @param allMethods every chosen method, observed ({@code --modes}); otherwise Thaw's and QEMU's eager restores only, not observed
     * @param trace      the post-save trace period (ws with the trace estimator)
     * @param liveLimit  the live probe's limit (ws with the dirty estimator)
     * @param methods    with {@code allMethods}: the methods to run ({@link RestoreMethod#defaults()} unless chosen)
     * @param observe    how long each restored guest is observed after it runs ({@code --observe-seconds}; long enough that
     *                   a slow restore's TTR is not censored)
     */
    public record Config(Workload workload, int repetitions, CacheState cache, Path workDir, boolean allMethods, Duration trace,
                         Duration liveLimit, Set<RestoreMethod> methods, Duration observe, Checks checks) {
        public Config {
            methods = Set.copyOf(methods);
            if (observe.toMillis() < Responsiveness.DEFAULT_WINDOW_NANOS / 1_000_000) {
                throw new IllegalArgumentException("observation: expected at least TTR's window of "
                        + Responsiveness.DEFAULT_WINDOW_NANOS / 1_000_000 + " ms, actual " + observe.toMillis() + " ms");
            }
            if (checks.memory() && workload.checked() == null) {
                throw new IllegalArgumentException("memory check: expected the wsbench workload (its region beyond the working set is"
                        + " never written after its fill) or PostgreSQL (its rows and pg_amcheck), actual " + workload.label());
            }
            if (checks.closeRuns() > 1 && !allMethods) {
                throw new IllegalArgumentException("close runs: expected every chosen method observed (--modes), actual the eager pair only");
            }
        }

        /** Observed for {@link #OBSERVE}, with no checks. */
        public Config(Workload workload, int repetitions, CacheState cache, Path workDir, boolean allMethods, Duration trace,
                      Duration liveLimit, Set<RestoreMethod> methods) {
            this(workload, repetitions, cache, workDir, allMethods, trace, liveLimit, methods, OBSERVE, Checks.NONE);
        }
    }

    /**
     * What a run does besides measuring (the demo's preset sets them all).
     *
     * @param memory    check the workload before the save and in every restored guest ({@link Workload#check}): wsbench, the
     *                  checksum of the part of its region it never writes after its fill ({@link GuestAgent#memsumCold}); PostgreSQL,
     *                  the client's rows committed before the save and pg_amcheck: a restore that loses or corrupts them shows as
     *                  DIFFERENT
     * @param closeRuns runs of ws and of each baseline whose first stall TTR came close to ws's ({@link DemoVerdict#toRepeat}),
     *                  interleaved after each repetition's pass; 1: none. One run cannot order restores this close on a noisy host
     * @param keepImage where the last repetition's Thaw image is saved and kept (with its RAM file, working set and traces); null:
     *                  in the work directory, removed
     * @param tune      adjusts Thaw's lazy and ws restores (the command line's tuning)
     */
    public record Checks(boolean memory, int closeRuns, Path keepImage, UnaryOperator<PostcopyRestore.Options> tune) {
        public static final Checks NONE = new Checks(false, 1, null, UnaryOperator.identity());

        public Checks {
            requireCloseRuns(closeRuns);
            java.util.Objects.requireNonNull(tune, "tune");
        }
    }

    /** Refuses a number of close runs outside 1..9, naming the option; commands check it before anything starts. */
    public static void requireCloseRuns(int closeRuns) {
        if (closeRuns < 1 || closeRuns > 9) throw new IllegalArgumentException("--close-runs: expected 1..9, actual " + closeRuns);
    }

    /** How close a baseline's first stall TTR must come to ws's (or beat it) to be run again with ws: 0.15 s, the spread of one run here. */
    static final double CLOSE_SECONDS = 0.15;

    /**
     * What Thaw's lazy and ws restores add: their event log summarized, QEMU's own stall measure, and what backed guest RAM
     * ({@code 4k} or {@code hugetlb}: {@code GuestRamChoice}; null in reports before the sixteenth session) and why.
     */
    public record Postcopy(long prefetchedPages, long demandFaults, double serviceMedianMicros, double serviceP99Micros,
                           long vcpuBlockedMillis, double backgroundMBps, String guestRam, String guestRamReason) {}

    /**
     * One restore by one method. Seconds from the restore's start (opening the image included).
     *
     * @param storageReadBytes   read from the host's disks from the restore's start to the end of the observation
     * @param after              guest side, null when not observed
     * @param hostSide           the host-side estimate from Thaw's event log: null for the mapped file (its faults are the kernel's)
     * @param hostVcpu           the host-side estimate from the vCPU's run time ({@link HostStall#fromVcpuRunTime}); null when not observed
     * @param residentMiBPerStep QEMU's resident memory at the end of each {@link AfterRestore#STEP_MILLIS}
     * @param vcpuQueuedPerStep  the share of each step the vCPU was runnable but waited for a CPU (CPU contention)
     * @param hostStealShare     the share of this machine's CPU time its hypervisor stole ({@link HostSteal}) from the restore's
     *                           start to the end of the observation; null where unknown (and in runs before the tenth session)
     * @param memsumAfter        the restored guest's checksum of the memory {@link Checks#memory} covers; null when not checked
     */
    public record MethodSample(RestoreMethod method, double runningSeconds, double completedSeconds, Postcopy postcopy, long storageReadBytes,
                               AfterRestore after, HostStall hostSide, HostStall hostVcpu, List<Double> residentMiBPerStep,
                               List<Double> vcpuQueuedPerStep, Double hostStealShare, String memsumAfter) {}

    /** The saves of one repetition; the snapshot, RAM file and estimates only with all methods. */
    public record Saves(double thawSaveSeconds, long thawImageBytes, long streamBytes, double qemuSaveSeconds, double qemuSaveFsyncSeconds,
                        long qemuFileBytes, double snapshotSaveSeconds, long snapshotFileBytes, double ramFileSeconds, long dirtyPages,
                        long tracedPages) {}

    /** @param latencyBefore the client's request latency before the save; null for wsbench */
    /** @param vcpuShareBefore the share of the time the source's vCPU spent on a CPU while the rate before was measured */
    /** A restore that failed: the benchmark records it and goes on with the next method. */
    public record Failure(RestoreMethod method, String error) {}

    /**
     * @param limit        the run's own limit, measured in this repetition with all methods; null otherwise, or in an earlier report
     * @param repeats      the close runs after the pass ({@link Checks#closeRuns}), in their order; the tables read {@code restores} only
     * @param memsumBefore the source's checksum of the memory {@link Checks#memory} covers, before the save; null when not checked
     */
    /**
     * @param unstalledShareBefore the share of its time the source's wsbench did not report stalled before the save: the stall
     *                             TTR's reference ({@link Responsiveness#stallReference}); null where not measured (a client
     *                             workload, reports before the fourteenth session)
     */
    public record Sample(double opsPerSecondBefore, RequestLatency latencyBefore, double vcpuShareBefore, Saves saves,
                         List<MethodSample> restores, List<Failure> failures, RunLimit limit, List<MethodSample> repeats,
                         String memsumBefore, Double unstalledShareBefore) {
        public Sample {
            repeats = repeats == null ? List.of() : List.copyOf(repeats); // reports before the demo was a preset have none
        }

        public Sample(double opsPerSecondBefore, RequestLatency latencyBefore, double vcpuShareBefore, Saves saves,
                      List<MethodSample> restores, List<Failure> failures, RunLimit limit, List<MethodSample> repeats, String memsumBefore) {
            this(opsPerSecondBefore, latencyBefore, vcpuShareBefore, saves, restores, failures, limit, repeats, memsumBefore, null);
        }

        Optional<MethodSample> of(RestoreMethod m) {
            return restores.stream().filter(r -> r.method() == m).findFirst();
        }
    }

    /**
     * How long the restored guest is observed by default, for TTR, MMU and its work relative to before the save; also how long
     * the rate before the save is measured.
     */
    static final Duration OBSERVE = Duration.ofSeconds(5);
    static final String SNAPSHOT_TAG = "thaw-bench";

    /**
     * @param layout         where the working set lies in the workload's memory ({@code contiguous}, {@code scattered}); null in
     *                       a report written before layouts existed
     * @param observeSeconds how long each restored guest was observed; 0 in a report written before it was chosen (then 5)
     * @param readyMillis    from the source QEMU's launch until its workload was ready; 0 in a report written before it was kept
     */
    public record Report(String workload, long memoryMiB, long totalMiB, long wsMiB, String accel, String qemuVersion,
                         @com.fasterxml.jackson.annotation.JsonAlias("cold") CacheState cache,
                         List<Sample> samples, String layout, double observeSeconds, long readyMillis) {
        public Report {
            if (observeSeconds == 0) observeSeconds = OBSERVE.toSeconds();
        }

        /** The guest and the conditions, as the tables name them. */
        String describe() {
            return String.format("%s, %d MiB RAM, T=%d, W=%d%s, %s%s, n=%d", workload, memoryMiB, totalMiB, wsMiB,
                    layout == null ? "" : " " + layout, accel, ", " + cache.label(), samples.size());
        }

        List<MethodSample> of(RestoreMethod m) {
            return samples.stream().map(s -> s.of(m)).flatMap(Optional::stream).toList();
        }

        public static <T> double min(List<T> s, ToDoubleFunction<T> f) {
            return s.stream().mapToDouble(f).min().orElse(Double.NaN);
        }

        public static <T> double median(List<T> s, ToDoubleFunction<T> f) {
            double[] v = s.stream().mapToDouble(f).sorted().toArray();
            if (v.length == 0) return Double.NaN;
            return v.length % 2 == 1 ? v[v.length / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
        }
    }

    /** What one repetition's restores draw on. */
    private record Saved(VmConfig source, Path thawImage, Path qemuFile, Path qcow2, Path ramFile,
                         Workload.Before before, double vcpuShareBefore, String memsumBefore) {}

    private SaveRestoreBenchmark() {}

    private static String vmName(RestoreMethod m) {
        return "thaw-bench-" + m.key();
    }

    public static Report run(Config config, GuestImage image, QemuVersion qemu, Accel accel, PrintStream log) throws IOException, InterruptedException {
        Files.createDirectories(config.workDir());
        List<Sample> samples = new ArrayList<>();
        Workload g = config.workload();
        String size = g.label() + "-" + g.memoryMiB() + "M-W" + g.wsMiB();
        long readyMillis;
        VmConfig first = g.vmConfig("thaw-bench-" + size, image, qemu, accel);
        if (!first.disks().isEmpty() && config.allMethods() && config.methods().contains(RestoreMethod.QEMU_LOADVM)) {
            throw new IllegalArgumentException("method " + RestoreMethod.QEMU_LOADVM.key() + ": expected a guest without disks (savevm"
                    + " would snapshot the guest's disks too, and loadvm roll them back), actual " + g.label() + " with " + first.disks().size());
        }
        try (QemuVm vm = QemuVm.launch(first)) {
            // A guest with disks goes on on new overlays at every save that lets it run on: its configuration follows them.
            AtomicReference<VmConfig> source = new AtomicReference<>(vm.config());
            g.awaitReady(vm);
            readyMillis = (System.nanoTime() - vm.launchedNanos()) / 1_000_000;
            log.printf("  booted: %s ready %.1f s after QEMU's launch%n", g.label(), readyMillis / 1e3);
            Thread.sleep(2000); // let the workload run before the first save
            Path keep = config.checks().keepImage();
            for (int rep = 0; rep < config.repetitions(); rep++) {
                boolean kept = keep != null && rep == config.repetitions() - 1;
                Path thawImage = kept ? keep : config.workDir().resolve("thaw-" + size + "-" + rep);
                Path qemuFile = config.workDir().resolve("qemu-" + size + "-" + rep + ".mig");
                Path qcow2 = config.workDir().resolve("snapshot-" + size + "-" + rep + ".qcow2");
                try {
                    samples.add(repetition(config, vm, source, rep, thawImage, qemuFile, qcow2, log));
                } finally {
                    if (!kept) {
                        FileTrees.deleteQuietly(thawImage);
                        FileTrees.deleteQuietly(RamFiles.directoryFor(thawImage));
                        FileTrees.deleteQuietly(RestoreTraces.directoryFor(thawImage)); // the post-save trace's and the lazy and ws restores' traces
                        RestoreDisks.deleteFor(thawImage);
                    }
                    FileTrees.deleteQuietly(qemuDisks(qemuFile));
                    for (Path p : List.of(qemuFile, qcow2)) Files.deleteIfExists(p);
                }
            }
        }
        return new Report(g.label(), g.memoryMiB(), g.totalMiB(), g.wsMiB(), accel.qemuName(), qemu.text(), config.cache(),
                List.copyOf(samples), g.layout(), config.observe().toMillis() / 1e3, readyMillis);
    }

    private static Sample repetition(Config config, QemuVm vm, AtomicReference<VmConfig> source, int rep, Path thawImage, Path qemuFile,
                                     Path qcow2, PrintStream log) throws IOException, InterruptedException {
        boolean all = config.allMethods();
        long beforeStart = System.nanoTime();
        long ranBefore = VcpuTime.runNanos(vm.pid());
        Workload.Before before = all ? config.workload().before(vm, config.observe()) : new Workload.Before(0, null);
        double vcpuShare = (VcpuTime.runNanos(vm.pid()) - ranBefore) / (double) (System.nanoTime() - beforeStart);
        if (Double.isFinite(before.unstalledShare())) {
            log.printf("  rep %d: the source before the save: not stalled %.1f%% of its time (the stall TTR's reference)%n", rep + 1,
                    100 * before.unstalledShare());
        }
        String memsumBefore = config.checks().memory() ? config.workload().check(vm, null) : null;
        if (memsumBefore != null) log.printf("  rep %d: %s before the save: %s%n", rep + 1, config.workload().checked(), memsumBefore);
        Saver.Options saveOptions = Saver.Options.defaults().withKeepRunning(true).withImage(ImageWriter.Options.defaults());
        Set<RestoreMethod> methods = config.methods();
        // The trace completes the live probe's pages (save --estimator dirty,trace, the demo's): a trace method needs the probe too.
        if (all && methods.stream().anyMatch(m -> m.estimate() == RestoreMethod.WS_DIRTY || m.estimate() == RestoreMethod.WS_TRACE)) {
            saveOptions = saveOptions.withDirtyEstimator(config.liveLimit());
        }
        Saver.Result saved;
        VmConfig qemuSource;
        QemuBaselines.SaveResult qemuSaved;
        QemuBaselines.SnapshotResult snapshot;
        try (AutoCloseable busy = config.workload().keepBusy(vm)) { // the guest works while it is saved, as it would in use
            saved = Saver.save(vm.qmp(), source.get(), thawImage, saveOptions, p -> {});
            source.set(DiskFreeze.following(source.get(), saved.sourceOverlays()));
            Thread.sleep(1000);
            VmConfig atQemuSave = source.get(); // its disks, frozen at QEMU's save, are that save's
            qemuSource = atQemuSave;
            qemuSaved = QemuBaselines.saveToFile(vm.qmp(), qemuFile, Duration.ofMinutes(5), () -> {
                if (!atQemuSave.disks().isEmpty()) source.set(DiskFreeze.freezeForOtherSave(vm.qmp(), atQemuSave, qemuFile));
            });
            snapshot = all && methods.contains(RestoreMethod.QEMU_LOADVM) ? QemuBaselines.saveInternalSnapshot(vm.qmp(), qcow2, SNAPSHOT_TAG, Duration.ofMinutes(5)) : null;
        } catch (IOException | InterruptedException | RuntimeException e) {
            throw e;
        } catch (Exception e) {
            throw new IllegalStateException("stopping the workload's client failed: " + e.getMessage(), e);
        }
        // The source guest would compete with the restored ones for the host's 2 cores: it stands still while they run.
        vm.qmp().stop();
        Map<RestoreMethod, WorkingSet> queues = new EnumMap<>(RestoreMethod.class);
        List<Failure> failures = new ArrayList<>();
        double ramFileSeconds = 0;
        Path ramFile = null;
        long traced = 0;
        if (all) {
            saved.workingSet().filter(w -> w.size() > 0).ifPresent(w -> queues.put(RestoreMethod.WS_DIRTY, w));
            if (methods.stream().anyMatch(RestoreMethod::mapsRamFile)) {
                try (CheckpointImage img = CheckpointImage.open(thawImage)) {
                    // Thaw's RAM file (thaw save --ram-file): the baseline maps the same file Thaw's mapped restores do.
                    MappedRestore.RamFile written = RamFiles.write(img);
                    ramFile = written.file();
                    ramFileSeconds = written.writeNanos() / 1e9;
                }
            }
            if (methods.stream().anyMatch(m -> m.estimate() == RestoreMethod.WS_TRACE)) {
                try (CheckpointImage img = CheckpointImage.open(thawImage)) {
                    PostSaveTrace.Result t = EstimatingSave.traceAfterSave(img, "thaw-bench-trace", config.trace(), saved.workingSet(),
                            m -> {});
                    t.restore().vm().close();
                    if (t.workingSet().size() > 0) queues.put(RestoreMethod.WS_TRACE, t.workingSet());
                    traced = t.workingSet().size();
                } catch (RuntimeException e) {
                    // The trace is a restore too (QEMU 7.2 has aborted in postcopy's teardown, rarely): its methods fail, not the run.
                    for (RestoreMethod m : methods) {
                        if (m.estimate() == RestoreMethod.WS_TRACE) failures.add(new Failure(m, "the post-save trace failed: " + e.getMessage()));
                    }
                    log.printf("  rep %d: the post-save trace FAILED (its methods are skipped): %s%n", rep + 1, e.getMessage());
                }
            }
        }
        RunLimit limit = null;
        if (all) {
            // Without disks: the limit's QEMU only starts, and the source's disk files are in use.
            limit = RunLimit.measure(vm.config().withDisks(List.of()), "thaw-bench-limit", thawImage, config.workload().wsMiB() << 20, config.cache());
            log.printf("  rep %d: the run's limit %.2f s: QEMU's start %.2f s + W=%d MiB at %.0f MB/s (sequential read of the image%s)%n",
                    rep + 1, limit.seconds(), limit.qemuStartSeconds(), config.workload().wsMiB(), limit.readBytesPerSecond() / 1e6,
                    config.cache() == CacheState.WARM ? "" : ", " + config.cache().label());
        }
        Saved s = new Saved(qemuSource, thawImage, qemuFile, qcow2, ramFile, before, vcpuShare, memsumBefore);
        // A unit's methods run back to back: ws (learned) learns from the lazy restore just before it.
        List<List<RestoreMethod>> units = all
                ? Stream.of(RestoreMethod.values()).filter(m -> m != RestoreMethod.WS_LEARNED)
                        .map(m -> m == RestoreMethod.THAW_LAZY ? List.of(m, RestoreMethod.WS_LEARNED) : List.of(m))
                .map(u -> u.stream().filter(methods::contains).toList()).filter(u -> !u.isEmpty()).toList()
                : List.of(List.of(RestoreMethod.THAW_EAGER), List.of(RestoreMethod.QEMU_EAGER));
        List<MethodSample> restores = new ArrayList<>();
        for (int u = 0; u < units.size(); u++) {
            for (RestoreMethod m : units.get((u + rep) % units.size())) { // rotated, so no method always goes first
                Run run = restoreLogged(m, s, config, queues, failures, rep, log);
                if (run == null) continue;
                restores.add(run.sample());
                if (m == RestoreMethod.THAW_LAZY && !run.faults().isEmpty()) {
                    queues.put(RestoreMethod.WS_LEARNED, FaultOrder.learned(List.of(), run.faults()));
                }
            }
        }
        // One run cannot order restores this close here: ws and the baselines near it again, rotated so none always goes first.
        List<MethodSample> repeats = new ArrayList<>();
        List<RestoreMethod> close = config.checks().closeRuns() > 1 ? DemoVerdict.toRepeat(restores.stream().map(r -> Demo.ModeResult.of(r, memsumBefore)).toList(), CLOSE_SECONDS) : List.of();
        if (!close.isEmpty()) {
            log.printf("  rep %d: close to Thaw's ws or mapped (within %.2f s): %s; %d more runs each, interleaved%n", rep + 1, CLOSE_SECONDS,
                    close.stream().map(RestoreMethod::shortName).toList(), config.checks().closeRuns() - 1);
        }
        for (int run = 1; run < config.checks().closeRuns() && !close.isEmpty(); run++) {
            for (int i = 0; i < close.size(); i++) {
                Run again = restoreLogged(close.get((i + run) % close.size()), s, config, queues, failures, rep, log);
                if (again != null) repeats.add(again.sample());
            }
        }
        vm.qmp().cont();
        Saves saves = new Saves(saved.durationNanos() / 1e9, saved.manifest().stats().imageFileBytes(), saved.streamBytes(),
                qemuSaved.durationNanos() / 1e9, (qemuSaved.durationNanos() + qemuSaved.fsyncNanos()) / 1e9, qemuSaved.fileBytes(),
                snapshot == null ? 0 : snapshot.durationNanos() / 1e9, snapshot == null ? 0 : snapshot.fileBytes(), ramFileSeconds,
                saved.workingSet().map(WorkingSet::size).orElse(0), traced);
        return new Sample(before.opsPerSecond(), before.latency(), vcpuShare, saves, List.copyOf(restores), List.copyOf(failures), limit,
                repeats, memsumBefore, Double.isFinite(before.unstalledShare()) ? before.unstalledShare() : null);
    }

    /**
     * One restore by {@code m} with its estimate attached, logged; null when it was skipped (its estimator gave no working set) or
     * failed (then recorded in {@code failures}: one failed restore, a QEMU that died, a guest that panicked, must not cost the run).
     */
    private static Run restoreLogged(RestoreMethod m, Saved s, Config config, Map<RestoreMethod, WorkingSet> queues,
                                     List<Failure> failures, int rep, PrintStream log) throws IOException, InterruptedException {
        if (m.name().startsWith("WS_") && !queues.containsKey(m.estimate())) {
            log.printf("  rep %d: %s skipped: its estimator gave no working set%n", rep + 1, m.label());
            return null;
        }
        // Each estimate restores as Thaw stores it: attached to the image, its pages copied in queue order, so the
        // prefetch is one sequential read (not counted in the restore, like the save that attaches it in use).
        if (queues.containsKey(m.estimate())) WorkingSetWriter.attach(s.thawImage(), queues.get(m.estimate()));
        Run run;
        try {
            run = restore(m, s, config);
        } catch (RuntimeException e) {
            failures.add(new Failure(m, e.getMessage()));
            log.printf("  rep %d: %-18s FAILED: %s%n", rep + 1, m.label(), e.getMessage());
            return null;
        }
        MethodSample r = run.sample();
        log.printf("  rep %d: %-18s running after %.2f s%s%s%s%n", rep + 1, m.label(), r.runningSeconds(),
                r.after() == null ? "" : String.format(", TTR %s%s, first %s s %.2fx", ttrText(r.after().ttrSeconds(), config.observe()),
                        !r.after().stallsReported() ? "" : ", stall TTR " + ttrText(r.after().stallTtrSeconds(), config.observe()),
                        seconds(config.observe()), r.after().relativeThroughput()),
                r.memsumAfter() == null ? "" : ", " + config.workload().checked() + " " + (r.memsumAfter().equals(s.memsumBefore())
                        ? "identical" : "DIFFERENT: " + r.memsumAfter()),
                r.postcopy() == null || r.postcopy().guestRam() == null ? "" : ", guest RAM " + r.postcopy().guestRam());
        return run;
    }

    /** One restore's sample, and the pages its guest faulted in, in order (what the next ws restore can learn from). */
    private record Run(MethodSample sample, List<FaultOrder.Touch> faults) {}

    private static Run restore(RestoreMethod m, Saved s, Config config) throws InterruptedException {
        config.cache().prepare(Stream.of(s.thawImage(), s.qemuFile(), s.qcow2(), s.ramFile()).filter(java.util.Objects::nonNull).toList());
        long readsBefore = StorageReads.bytesReadSoFar();
        HostSteal.Ticks stealBefore = HostSteal.now();
        long start = System.nanoTime();
        long step = AfterRestore.STEP_MILLIS * 1_000_000L;
        try (QemuSampler rss = new QemuSampler(vmName(m), start);
             Workload.Observation watch = config.allMethods() ? config.workload().observe(vmName(m), start, s.before()) : null) {
            // QEMU's own restore of a guest with disks: fresh overlays of the disks frozen at QEMU's save, as Thaw's restores get.
            VmConfig source = m != RestoreMethod.QEMU_EAGER || s.source().disks().isEmpty() ? s.source()
                    : RestoreDisks.onFreshOverlays(s.source(), qemuDisks(s.qemuFile()).resolve(vmName(m) + "-" + System.nanoTime()));
            MethodRestore.Restored restored = MethodRestore.restore(m, new MethodRestore.Saved(source, new MethodRestore.Image.At(s.thawImage()),
                    new QemuBaselines.BaselineFiles(s.qemuFile(), s.qcow2(), SNAPSHOT_TAG, s.ramFile())), vmName(m), config.checks().tune(), x -> {});
            // The sampler and the observation started first: every time counts from the bench's start, as they do.
            long lead = restored.startedNanos() - start;
            long opened = lead + restored.openNanos(); // opening the image (reading its metadata) counts
            long running = lead + restored.runningNanos();
            long completed = lead + restored.completedNanos();
            PostcopyRestore.Result postcopy = restored.postcopy().orElse(null);
            try (QemuVm vm = restored.vm()) {
                boolean observe = config.allMethods();
                AfterRestore after = observe ? watch.finish(vm, running, config.observe()) : null;
                long end = observe ? running + config.observe().toNanos() : running;
                // None for the mapped methods (their faults are the kernel's); an eager restore's guest waits for all of it, then runs.
                HostStall host = m.mapsRamFile() ? null
                        : postcopy == null ? HostStall.eager(running, end, step) : HostStall.of(postcopy.events(), opened, end, step);
                long reads = StorageReads.bytesReadSoFar();
                Postcopy pc = null;
                if (postcopy != null) {
                    RestoreTimeline t = RestoreTimeline.of(postcopy.events());
                    pc = new Postcopy(postcopy.prefetchedPages(), postcopy.demandFaults(), t.serviceMedianMicros(), t.serviceP99Micros(),
                            postcopy.vcpuBlockedMillis(), t.backgroundPagesPerSecond() * 4096 / 1e6,
                            restored.guestRam().map(dev.thaw.restore.GuestRamChoice.Choice::label).orElse(null),
                            restored.guestRam().map(dev.thaw.restore.GuestRamChoice.Choice::reason).orElse(null));
                }
                HostStall vcpu = observe && s.vcpuShareBefore() > 0
                        ? HostStall.fromVcpuRunTime(rss.vcpuRunSamples(), s.vcpuShareBefore(), running, end, step) : null;
                Double steal = stealOrNull(HostSteal.now().shareSince(stealBefore));
                // After the observation: it costs the guest CPU.
                String memsum = config.checks().memory() ? config.workload().check(vm, s.memsumBefore()) : null;
                MethodSample sample = new MethodSample(m, running / 1e9, completed / 1e9, pc,
                        readsBefore < 0 || reads < 0 ? -1 : reads - readsBefore, after, host, vcpu, rss.mibPerStep(step, end),
                        rss.vcpuQueuedSharePerStep(step, end), steal, memsum);
                return new Run(sample, postcopy == null ? List.of() : postcopy.faults().stream().filter(f -> !f.alreadySent())
                        .map(f -> new FaultOrder.Touch(new PageRef(f.block(), f.page()), f.atNanos())).toList());
            }
        }
    }

    /** Where QEMU's own restores of {@code qemuFile} put their disk overlays. */
    private static Path qemuDisks(Path qemuFile) {
        return FileTrees.beside(qemuFile, "disks");
    }

    private static Double stealOrNull(double share) {
        return share < 0 ? null : share;
    }

    /** A TTR as the progress lines say it: "0.42 s", or "> 5 s" when not reached within the observation. */
    private static String ttrText(Optional<Double> ttrSeconds, Duration observe) {
        return ttrSeconds.map(t -> String.format("%.2f s", t)).orElse("> " + seconds(observe) + " s");
    }

    /** Seconds as the log says them: "5", "7.5". */
    private static String seconds(Duration d) {
        double s = d.toMillis() / 1e3;
        return s == Math.rint(s) ? Long.toString((long) s) : Double.toString(s);
    }

}
