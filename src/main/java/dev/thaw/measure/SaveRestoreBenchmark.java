package dev.thaw.measure;

import dev.thaw.estimate.FaultOrder;
import dev.thaw.estimate.PageRef;
import dev.thaw.estimate.WorkingSet;
import dev.thaw.guest.DemoGuest;
import dev.thaw.guest.GuestImage;
import dev.thaw.image.CheckpointImage;
import dev.thaw.image.ImageWriter;
import dev.thaw.image.WorkingSetWriter;
import dev.thaw.qemu.Accel;
import dev.thaw.qemu.QemuVersion;
import dev.thaw.qemu.QemuVm;
import dev.thaw.qemu.VmConfig;
import dev.thaw.restore.EagerRestore;
import dev.thaw.restore.MappedRestore;
import dev.thaw.restore.PostSaveTrace;
import dev.thaw.restore.PostcopyRestore;
import dev.thaw.restore.Restorer;
import dev.thaw.restore.WorkingSetChoice;
import dev.thaw.util.ThreadPriority;
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
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.Set;
import java.util.function.Function;
import java.util.function.ToDoubleFunction;
import java.util.stream.Stream;

/**
 * Every restore method on the same running demo guest, interleaved repetition by repetition (the
 * host is shared and noisy, so blocks of one method would measure the neighbours as much as the
 * method). Per repetition the guest is saved every way a method needs (Thaw's image, with the
 * dirty-bit estimate of a live probe when all methods run; QEMU's stream in a file; QEMU's internal
 * snapshot in a qcow2 file; the mapped RAM file written from Thaw's image; the post-save trace),
 * then stopped, and each method restores it in a rotated order, each from a cold page cache when
 * asked. Each ws restore's estimate is attached to the image just before it (as a save or
 * {@code thaw ws --learn} would), so its prefetch reads the queue-order copy. With all methods, every restored guest is observed for {@link #OBSERVE}: TTR, MMU and
 * work against before the save (guest side), the host-side estimate from Thaw's timeline, QEMU's
 * resident memory over time and the bytes read from the host's disks.
 */
public final class SaveRestoreBenchmark {
    /**
     * @param allMethods every chosen method, observed ({@code --modes}); otherwise Thaw's and QEMU's eager restores only, not observed
     * @param trace      the post-save trace period (ws with the trace estimator)
     * @param liveLimit  the live probe's limit (ws with the dirty estimator)
     * @param methods    with {@code allMethods}: the methods to run ({@link Method#defaults()} unless chosen)
     */
    public record Config(Workload workload, int repetitions, boolean cold, Path workDir, boolean allMethods, Duration trace,
                         Duration liveLimit, Set<Method> methods) {
        public Config {
            methods = Set.copyOf(methods);
        }
    }

    /** The restore methods, in the order the tables list them. */
    public enum Method {
        QEMU_EAGER("QEMU eager"), QEMU_LOADVM("QEMU loadvm"), MAPPED_FILE("mapped RAM file"), THAW_EAGER("Thaw eager"),
        THAW_LAZY("Thaw lazy"),
        /** Ablation: lazy with the background stream in address order only (no fault regions), as before they existed. */
        THAW_LAZY_ADDRESS_ORDER("Thaw lazy (address order)"),
        WS_LEARNED("Thaw ws (learned)"), WS_DIRTY("Thaw ws (dirty)"), WS_TRACE("Thaw ws (trace)"),
        /** Ablation: ws (dirty) with the background threads (Thaw's sender, QEMU's postcopy/listen) at normal priority. */
        WS_DIRTY_NORMAL_PRIORITY("Thaw ws (dirty, normal prio.)"),
        /** Trial: ws (dirty) with demand pages on QEMU's postcopy-preempt channel. */
        WS_DIRTY_PREEMPT("Thaw ws (dirty, preempt)");

        public final String label;

        Method(String label) {
            this.label = label;
        }

        /** The name {@code --methods} takes: {@code qemu-eager}, {@code ws-dirty}, ... */
        public String key() {
            return name().toLowerCase(java.util.Locale.ROOT).replace('_', '-');
        }

        String vmName() {
            return "thaw-bench-" + key();
        }

        /** What {@code --modes} runs unless told otherwise: every method but the ablations. */
        public static Set<Method> defaults() {
            return EnumSet.complementOf(EnumSet.of(THAW_LAZY_ADDRESS_ORDER, WS_DIRTY_NORMAL_PRIORITY, WS_DIRTY_PREEMPT));
        }

        /** The method whose working-set estimate this one restores with (an ablation shares its original's). */
        Method estimate() {
            return this == WS_DIRTY_NORMAL_PRIORITY || this == WS_DIRTY_PREEMPT ? WS_DIRTY : this;
        }

        public static Method parse(String key) {
            for (Method m : values()) {
                if (m.key().equals(key)) return m;
            }
            throw new IllegalArgumentException("restore method: expected one of "
                    + java.util.Arrays.stream(values()).map(Method::key).toList() + ", actual '" + key + "'");
        }
    }

    /** What Thaw's lazy and ws restores add: their event log summarized, and QEMU's own stall measure. */
    public record Postcopy(long prefetchedPages, long demandFaults, double serviceMedianMicros, double serviceP99Micros,
                           long vcpuBlockedMillis, double backgroundMBps) {}

    /**
     * One restore by one method. Seconds from the restore's start (opening the image included).
     *
     * @param storageReadBytes   read from the host's disks from the restore's start to the end of the observation
     * @param after              guest side, null when not observed
     * @param hostSide           the host-side estimate from Thaw's event log: null for the mapped file (its faults are the kernel's)
     * @param hostVcpu           the host-side estimate from the vCPU's run time ({@link HostStall#fromVcpuRunTime}); null when not observed
     * @param residentMiBPerStep QEMU's resident memory at the end of each {@link AfterRestore#STEP_MILLIS}
     * @param vcpuQueuedPerStep  the share of each step the vCPU was runnable but waited for a CPU (CPU contention)
     */
    public record MethodSample(Method method, double runningSeconds, double completedSeconds, Postcopy postcopy, long storageReadBytes,
                               AfterRestore after, HostStall hostSide, HostStall hostVcpu, List<Double> residentMiBPerStep,
                               List<Double> vcpuQueuedPerStep) {}

    /** The saves of one repetition; the snapshot, RAM file and estimates only with all methods. */
    public record Saves(double thawSaveSeconds, long thawImageBytes, long streamBytes, double qemuSaveSeconds, double qemuSaveFsyncSeconds,
                        long qemuFileBytes, double snapshotSaveSeconds, long snapshotFileBytes, double ramFileSeconds, long dirtyPages,
                        long tracedPages) {}

    /** @param latencyBefore the client's request latency before the save; null for wsbench */
    /** @param vcpuShareBefore the share of the time the source's vCPU spent on a CPU while the rate before was measured */
    /** A restore that failed: the benchmark records it and goes on with the next method. */
    public record Failure(Method method, String error) {}

    public record Sample(double opsPerSecondBefore, RequestLatency latencyBefore, double vcpuShareBefore, Saves saves,
                         List<MethodSample> restores, List<Failure> failures) {
        Optional<MethodSample> of(Method m) {
            return restores.stream().filter(r -> r.method() == m).findFirst();
        }
    }

    /** How long the restored guest is observed, for TTR, MMU and its work relative to before the save. */
    static final Duration OBSERVE = Duration.ofSeconds(5);
    static final String SNAPSHOT_TAG = "thaw-bench";

    public record Report(String workload, long memoryMiB, long totalMiB, long wsMiB, String accel, String qemuVersion, boolean cold,
                         List<Sample> samples) {
        /** The guest and the conditions, as the tables name them. */
        String describe() {
            return String.format("%s, %d MiB RAM, T=%d, W=%d, %s%s, n=%d", workload, memoryMiB, totalMiB, wsMiB, accel, cold ? ", cold" : ", warm",
                    samples.size());
        }

        List<MethodSample> of(Method m) {
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
    private record Saved(VmConfig source, Path thawImage, Path qemuFile, Path qcow2, Path ramFile, Map<Method, WorkingSet> queues,
                         Workload.Before before, double vcpuShareBefore) {}

    private SaveRestoreBenchmark() {}

    public static Report run(Config config, GuestImage image, QemuVersion qemu, Accel accel, PrintStream log) throws IOException, InterruptedException {
        Files.createDirectories(config.workDir());
        List<Sample> samples = new ArrayList<>();
        Workload g = config.workload();
        String size = g.label() + "-" + g.memoryMiB() + "M-W" + g.wsMiB();
        try (QemuVm vm = QemuVm.launch(g.vmConfig("thaw-bench-" + size, image, qemu, accel))) {
            g.awaitReady(vm);
            Thread.sleep(2000); // let the workload run before the first save
            for (int rep = 0; rep < config.repetitions(); rep++) {
                Path thawImage = config.workDir().resolve("thaw-" + size + "-" + rep);
                Path qemuFile = config.workDir().resolve("qemu-" + size + "-" + rep + ".mig");
                Path qcow2 = config.workDir().resolve("snapshot-" + size + "-" + rep + ".qcow2");
                Path ramFile = config.workDir().resolve("ram-" + size + "-" + rep + ".raw");
                try {
                    samples.add(repetition(config, vm, rep, thawImage, qemuFile, qcow2, ramFile, log));
                } finally {
                    FileTrees.deleteQuietly(thawImage);
                    for (Path p : List.of(qemuFile, qcow2, ramFile)) Files.deleteIfExists(p);
                }
            }
        }
        return new Report(g.label(), g.memoryMiB(), g.totalMiB(), g.wsMiB(), accel.qemuName(), qemu.text(), config.cold(),
                List.copyOf(samples));
    }

    private static Sample repetition(Config config, QemuVm vm, int rep, Path thawImage, Path qemuFile, Path qcow2, Path ramFile,
                                     PrintStream log) throws IOException, InterruptedException {
        boolean all = config.allMethods();
        long beforeStart = System.nanoTime();
        long ranBefore = VcpuTime.runNanos(vm.pid());
        Workload.Before before = all ? config.workload().before(vm, OBSERVE) : new Workload.Before(0, null);
        double vcpuShare = (VcpuTime.runNanos(vm.pid()) - ranBefore) / (double) (System.nanoTime() - beforeStart);
        Saver.Options saveOptions = Saver.Options.defaults().withKeepRunning(true).withImage(ImageWriter.Options.defaults());
        Set<Method> methods = config.methods();
        if (all && methods.stream().anyMatch(m -> m.estimate() == Method.WS_DIRTY)) saveOptions = saveOptions.withDirtyEstimator(config.liveLimit());
        Saver.Result saved;
        QemuBaselines.SaveResult qemuSaved;
        QemuBaselines.SnapshotResult snapshot;
        try (AutoCloseable busy = config.workload().keepBusy(vm)) { // the guest works while it is saved, as it would in use
            saved = Saver.save(vm.qmp(), vm.config(), thawImage, saveOptions, p -> {});
            Thread.sleep(1000);
            qemuSaved = QemuBaselines.saveToFile(vm.qmp(), qemuFile, Duration.ofMinutes(5));
            snapshot = all && methods.contains(Method.QEMU_LOADVM) ? QemuBaselines.saveInternalSnapshot(vm.qmp(), qcow2, SNAPSHOT_TAG, Duration.ofMinutes(5)) : null;
        } catch (IOException | InterruptedException | RuntimeException e) {
            throw e;
        } catch (Exception e) {
            throw new IllegalStateException("stopping the workload's client failed: " + e.getMessage(), e);
        }
        // The source guest would compete with the restored ones for the host's 2 cores: it stands still while they run.
        vm.qmp().stop();
        Map<Method, WorkingSet> queues = new EnumMap<>(Method.class);
        double ramFileSeconds = 0;
        long traced = 0;
        if (all) {
            saved.workingSet().filter(w -> w.size() > 0).ifPresent(w -> queues.put(Method.WS_DIRTY, w));
            if (methods.contains(Method.MAPPED_FILE)) {
                try (CheckpointImage img = CheckpointImage.open(thawImage)) {
                    ramFileSeconds = MappedRestore.writeRamFile(img, ramFile).writeNanos() / 1e9;
                }
            }
            if (methods.contains(Method.WS_TRACE)) {
                try (CheckpointImage img = CheckpointImage.open(thawImage)) {
                    PostSaveTrace.Result t = PostSaveTrace.run(img, "thaw-bench-trace", config.trace(),
                            saved.workingSet().map(w -> OptionalLong.of(w.size())).orElse(OptionalLong.empty()), "dirty-bit", m -> {});
                    t.restore().vm().close();
                    queues.put(Method.WS_TRACE, t.workingSet());
                    traced = t.workingSet().size();
                }
            }
        }
        Saved s = new Saved(vm.config(), thawImage, qemuFile, qcow2, ramFile, queues, before, vcpuShare);
        // A unit's methods run back to back: ws (learned) learns from the lazy restore just before it.
        List<List<Method>> units = all
                ? Stream.of(List.of(Method.QEMU_EAGER), List.of(Method.QEMU_LOADVM), List.of(Method.MAPPED_FILE), List.of(Method.THAW_EAGER),
                        List.of(Method.THAW_LAZY, Method.WS_LEARNED), List.of(Method.THAW_LAZY_ADDRESS_ORDER), List.of(Method.WS_DIRTY),
                        List.of(Method.WS_TRACE), List.of(Method.WS_DIRTY_NORMAL_PRIORITY), List.of(Method.WS_DIRTY_PREEMPT))
                .map(u -> u.stream().filter(methods::contains).toList()).filter(u -> !u.isEmpty()).toList()
                : List.of(List.of(Method.THAW_EAGER), List.of(Method.QEMU_EAGER));
        List<MethodSample> restores = new ArrayList<>();
        List<Failure> failures = new ArrayList<>();
        for (int u = 0; u < units.size(); u++) {
            for (Method m : units.get((u + rep) % units.size())) { // rotated, so no method always goes first
                if (m.name().startsWith("WS_") && !queues.containsKey(m.estimate())) {
                    log.printf("  rep %d: %s skipped: its estimator gave no working set%n", rep + 1, m.label);
                    continue;
                }
                // Each estimate restores as Thaw stores it: attached to the image, its pages copied in queue order, so the
                // prefetch is one sequential read (not counted in the restore, like the save that attaches it in use).
                if (queues.containsKey(m.estimate())) WorkingSetWriter.attach(thawImage, queues.get(m.estimate()));
                Run run;
                try {
                    run = restore(m, s, config);
                } catch (RuntimeException e) {
                    // One failed restore (a QEMU that died, a guest that panicked) must not cost the whole run: it is counted.
                    failures.add(new Failure(m, e.getMessage()));
                    log.printf("  rep %d: %-18s FAILED: %s%n", rep + 1, m.label, e.getMessage());
                    continue;
                }
                MethodSample r = run.sample();
                restores.add(r);
                log.printf("  rep %d: %-18s running after %.2f s%s%n", rep + 1, m.label, r.runningSeconds(),
                        r.after() == null ? "" : String.format(", TTR %s, first 5 s %.2fx", r.after().ttrSeconds().map(t -> String.format("%.2f s", t))
                                .orElse("> 5 s"), r.after().relativeThroughput()));
                if (m == Method.THAW_LAZY) queues.put(Method.WS_LEARNED, FaultOrder.learned(List.of(), run.faults()));
            }
        }
        vm.qmp().cont();
        Saves saves = new Saves(saved.durationNanos() / 1e9, saved.manifest().stats().imageFileBytes(), saved.streamBytes(),
                qemuSaved.durationNanos() / 1e9, (qemuSaved.durationNanos() + qemuSaved.fsyncNanos()) / 1e9, qemuSaved.fileBytes(),
                snapshot == null ? 0 : snapshot.durationNanos() / 1e9, snapshot == null ? 0 : snapshot.fileBytes(), ramFileSeconds,
                saved.workingSet().map(WorkingSet::size).orElse(0), traced);
        return new Sample(before.opsPerSecond(), before.latency(), vcpuShare, saves, List.copyOf(restores), List.copyOf(failures));
    }

    /** One restore's sample, and the pages its guest faulted in, in order (what the next ws restore can learn from). */
    private record Run(MethodSample sample, List<FaultOrder.Touch> faults) {}

    private static Run restore(Method m, Saved s, Config config) throws InterruptedException {
        if (config.cold()) QemuBaselines.dropCaches();
        long readsBefore = StorageReads.bytesReadSoFar();
        long start = System.nanoTime();
        long step = AfterRestore.STEP_MILLIS * 1_000_000L;
        try (QemuSampler rss = new QemuSampler(m.vmName(), start);
             Workload.Observation watch = config.allMethods() ? config.workload().observe(m.vmName(), start, s.before()) : null) {
            QemuVm vm;
            long running;
            long completed;
            long opened = 0; // opening the image (reading its metadata) counts
            CheckpointImage img = null;
            PostcopyRestore.Result postcopy = null;
            try {
                switch (m) {
                    case QEMU_EAGER, QEMU_LOADVM, MAPPED_FILE -> {
                        if (m == Method.MAPPED_FILE) { // the mapped file takes the device state from the image: opening it counts
                            img = CheckpointImage.open(s.thawImage());
                            opened = System.nanoTime() - start;
                        }
                        QemuBaselines.RestoreResult r = QemuBaselines.restore(QemuBaselines.Baseline.valueOf(m.name()), s.source(),
                                m.vmName(), new QemuBaselines.BaselineFiles(s.qemuFile(), s.qcow2(), SNAPSHOT_TAG, s.ramFile()), img,
                                Duration.ofMinutes(5));
                        vm = r.vm();
                        running = completed = opened + r.runningNanos();
                    }
                    case THAW_EAGER -> {
                        img = CheckpointImage.open(s.thawImage());
                        opened = System.nanoTime() - start;
                        EagerRestore.Result r = EagerRestore.restore(img, EagerRestore.Options.defaults(m.vmName()), p -> {});
                        vm = r.vm();
                        running = completed = opened + r.runningNanos();
                    }
                    default -> {
                        img = CheckpointImage.open(s.thawImage());
                        opened = System.nanoTime() - start;
                        PostcopyRestore.Options options = PostcopyRestore.Options.lazy(m.vmName());
                        if (m == Method.THAW_LAZY_ADDRESS_ORDER) {
                            options = options.withPolicy(options.policy().withFaultRegionPages(0));
                        } else if (m != Method.THAW_LAZY) {
                            Restorer.Plan plan = Restorer.plan(s.queues().get(m.estimate()), WorkingSetChoice.defaults());
                            options = options.withWorkingSet(plan.prefetch()).withBackgroundFirst(plan.backgroundFirst());
                        }
                        if (m == Method.WS_DIRTY_NORMAL_PRIORITY) options = options.withBackgroundPriority(ThreadPriority.Policy.NORMAL);
                        if (m == Method.WS_DIRTY_PREEMPT) options = options.withTransport(options.transport().withPreempt(true));
                        postcopy = PostcopyRestore.restore(img, options, x -> {});
                        vm = postcopy.vm();
                        running = opened + postcopy.runningNanos();
                        completed = opened + postcopy.completedNanos();
                    }
                }
            } finally {
                if (img != null) img.close(); // every restore has read what it needs from the image when it returns
            }
            try (vm) {
                boolean observe = config.allMethods();
                AfterRestore after = observe ? watch.finish(vm, running, OBSERVE) : null;
                long end = observe ? running + OBSERVE.toNanos() : running;
                HostStall host = switch (m) {
                    case MAPPED_FILE -> null;
                    case QEMU_EAGER, QEMU_LOADVM, THAW_EAGER -> HostStall.eager(running, end, step);
                    default -> HostStall.of(postcopy.events(), opened, end, step);
                };
                long reads = StorageReads.bytesReadSoFar();
                Postcopy pc = null;
                if (postcopy != null) {
                    RestoreTimeline t = RestoreTimeline.of(postcopy.events());
                    pc = new Postcopy(postcopy.prefetchedPages(), postcopy.demandFaults(), t.serviceMedianMicros(), t.serviceP99Micros(),
                            postcopy.vcpuBlockedMillis(), t.backgroundPagesPerSecond() * 4096 / 1e6);
                }
                HostStall vcpu = observe && s.vcpuShareBefore() > 0
                        ? HostStall.fromVcpuRunTime(rss.vcpuRunSamples(), s.vcpuShareBefore(), end, step) : null;
                MethodSample sample = new MethodSample(m, running / 1e9, completed / 1e9, pc,
                        readsBefore < 0 || reads < 0 ? -1 : reads - readsBefore, after, host, vcpu, rss.mibPerStep(step, end),
                        rss.vcpuQueuedSharePerStep(step, end));
                return new Run(sample, postcopy == null ? List.of() : postcopy.faults().stream().filter(f -> !f.alreadySent())
                        .map(f -> new FaultOrder.Touch(new PageRef(f.block(), f.page()), f.atNanos())).toList());
            }
        }
    }

    /** A markdown table of the saves and the eager restores, min / median. */
    public static String markdown(List<Report> reports) {
        StringBuilder out = new StringBuilder();
        out.append("| guest | Thaw save (s) | QEMU save to file (s) | QEMU save + fsync (s) | QEMU savevm (s) | Thaw image (MiB) | QEMU file (MiB)"
                + " | qcow2 with snapshot (MiB) | Thaw eager restore (s) | QEMU eager restore (s) |\n");
        out.append("|---|---|---|---|---|---|---|---|---|---|\n");
        for (Report r : reports) {
            List<Saves> s = r.samples().stream().map(Sample::saves).toList();
            out.append(String.format("| %s | %s | %s | %s | %s | %d | %d | %s | %s | %s |%n", r.describe(),
                    mm(s, Saves::thawSaveSeconds), mm(s, Saves::qemuSaveSeconds), mm(s, Saves::qemuSaveFsyncSeconds),
                    s.getFirst().snapshotFileBytes() > 0 ? mm(s, Saves::snapshotSaveSeconds) : "-",
                    (long) Report.median(s, x -> x.thawImageBytes()) >> 20, (long) Report.median(s, x -> x.qemuFileBytes()) >> 20,
                    s.getFirst().snapshotFileBytes() > 0 ? Long.toString((long) Report.median(s, x -> x.snapshotFileBytes()) >> 20) : "-",
                    mm(r.of(Method.THAW_EAGER), MethodSample::runningSeconds), mm(r.of(Method.QEMU_EAGER), MethodSample::runningSeconds)));
        }
        return out.toString();
    }

    /** Every method side by side: times min / median, the rest medians; TTR not reached within the observation shows as "> 5". */
    public static String modesMarkdown(List<Report> reports) {
        StringBuilder out = new StringBuilder();
        out.append("| guest | method | running after (s) | completed after (s) | TTR(1 s, 0.8) (s) | host-side TTR estimate: faults /"
                + " vCPU time (s) | MMU(1 s)"
                + " | first 5 s vs before | demand faults | vCPU stalled (ms) | read from storage (MiB) | prefetched pages"
                + " | fault service p50 / p99 (us) | background (MB/s) | failed |\n");
        out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for (Report r : reports) {
            String guest = r.describe();
            for (Method m : Method.values()) {
                List<MethodSample> ms = r.of(m);
                if (ms.isEmpty() || ms.getFirst().after() == null) continue;
                List<AfterRestore> after = ms.stream().map(MethodSample::after).toList();
                List<HostStall> host = ms.stream().map(MethodSample::hostSide).filter(Objects::nonNull).toList();
                List<HostStall> vcpu = ms.stream().map(MethodSample::hostVcpu).filter(Objects::nonNull).toList();
                List<Postcopy> pc = ms.stream().map(MethodSample::postcopy).filter(Objects::nonNull).toList();
                long failed = r.samples().stream().flatMap(x -> x.failures() == null ? java.util.stream.Stream.<Failure>empty()
                        : x.failures().stream()).filter(f -> f.method() == m).count();
                out.append(String.format("| %s | %s | %s | %s | %s | %s | %.2f | %.2fx | %s | %s | %s | %s | %s | %s | %d |%n", guest, m.label,
                        mm(ms, MethodSample::runningSeconds), mm(ms, MethodSample::completedSeconds),
                        ttr(after.stream().map(AfterRestore::ttrSeconds).toList()),
                        (host.isEmpty() ? "-" : ttr(host.stream().map(HostStall::ttrSeconds).toList())) + " / "
                                + (vcpu.isEmpty() ? "-" : ttr(vcpu.stream().map(HostStall::ttrSeconds).toList())),
                        Report.median(after, AfterRestore::mmu), Report.median(after, AfterRestore::relativeThroughput),
                        pc.isEmpty() ? "-" : String.format("%.0f", Report.median(pc, x -> x.demandFaults())),
                        pc.isEmpty() ? "-" : String.format("%.0f", Report.median(pc, x -> x.vcpuBlockedMillis())),
                        ms.stream().anyMatch(x -> x.storageReadBytes() < 0) ? "?"
                                : String.format("%.0f", Report.median(ms, x -> x.storageReadBytes()) / (1 << 20)),
                        pc.isEmpty() ? "-" : String.format("%.0f", Report.median(pc, x -> x.prefetchedPages())),
                        pc.isEmpty() ? "-" : String.format("%.0f / %.0f", Report.median(pc, Postcopy::serviceMedianMicros),
                                Report.median(pc, Postcopy::serviceP99Micros)),
                        pc.isEmpty() ? "-" : String.format("%.0f", Report.median(pc, Postcopy::backgroundMBps)), failed));
                guest = "";
            }
        }
        return out.toString();
    }

    /**
     * How well each host-side TTR estimate matches the guest's own TTR, restore by restore: the fault-based one over Thaw's
     * lazy and ws restores (the only ones whose faults Thaw sees), the vCPU-time one over every restore.
     */
    public static String hostSideMarkdown(List<Report> reports) {
        return agreement(reports, "demand-fault stall (Thaw's event log)", MethodSample::hostSide,
                List.of(Method.THAW_LAZY, Method.THAW_LAZY_ADDRESS_ORDER, Method.WS_LEARNED, Method.WS_DIRTY, Method.WS_TRACE,
                        Method.WS_DIRTY_NORMAL_PRIORITY, Method.WS_DIRTY_PREEMPT))
                + agreement(reports, "vCPU run time", MethodSample::hostVcpu, List.of(Method.values()));
    }

    private static String agreement(List<Report> reports, String estimate, Function<MethodSample, HostStall> f, List<Method> methods) {
        List<double[]> pairs = new ArrayList<>(); // {guest TTR, host TTR}, infinite when not reached
        for (Report r : reports) {
            for (Method m : methods) {
                for (MethodSample s : r.of(m)) {
                    if (s.after() == null || f.apply(s) == null) continue;
                    pairs.add(new double[] {s.after().ttrSeconds().orElse(Double.POSITIVE_INFINITY),
                            f.apply(s).ttrSeconds().orElse(Double.POSITIVE_INFINITY)});
                }
            }
        }
        if (pairs.isEmpty()) return "";
        List<double[]> finite = pairs.stream().filter(p -> !Double.isInfinite(p[0]) && !Double.isInfinite(p[1])).toList();
        long hostEarlier = pairs.stream().filter(p -> p[1] <= p[0]).count();
        long within = finite.stream().filter(p -> Math.abs(p[0] - p[1]) <= 0.25).count();
        return String.format("Host-side TTR from %s against the guest's own TTR, over %d restores: %d at or before the guest's;"
                        + " %d of the %d with both reached within 0.25 s; median |difference| %.2f s.%n%n", estimate, pairs.size(), hostEarlier,
                within, finite.size(), Report.median(finite, p -> Math.abs(p[0] - p[1])));
    }

    /** For a client-timed workload: its request latency before the save and over each method's observation, medians. */
    public static String latencyMarkdown(List<Report> reports) {
        StringBuilder out = new StringBuilder();
        for (Report r : reports) {
            List<RequestLatency> before = r.samples().stream().map(Sample::latencyBefore).filter(Objects::nonNull).toList();
            if (before.isEmpty()) continue;
            if (out.isEmpty()) {
                out.append("| guest | requests timed | requests | p50 (us) | p99 (us) | max (us) | failed requests |\n|---|---|---|---|---|---|---|\n");
            }
            out.append(latencyRow(r.describe(), "before the save (5 s)", before));
            for (Method m : Method.values()) {
                List<RequestLatency> after = r.of(m).stream().map(MethodSample::after).filter(a -> a != null && a.latency() != null)
                        .map(AfterRestore::latency).toList();
                if (!after.isEmpty()) out.append(latencyRow("", "after " + m.label + " (from the restore until 5 s after running)", after));
            }
        }
        return out.toString();
    }

    private static String latencyRow(String guest, String when, List<RequestLatency> l) {
        return String.format("| %s | %s | %.0f | %.0f | %.0f | %.0f | %.0f |%n", guest, when, Report.median(l, x -> x.requests()),
                Report.median(l, RequestLatency::p50Micros), Report.median(l, RequestLatency::p99Micros),
                Report.median(l, RequestLatency::maxMicros), Report.median(l, x -> x.failures()));
    }

    /** Every failed restore, with its error: what the "failed" column counts. */
    public static String failuresMarkdown(List<Report> reports) {
        StringBuilder out = new StringBuilder();
        for (Report r : reports) {
            for (int i = 0; i < r.samples().size(); i++) {
                List<Failure> failures = r.samples().get(i).failures();
                if (failures == null) continue;
                for (Failure f : failures) {
                    out.append(String.format("- %s, repetition %d, %s: %s%n", r.describe(), i + 1, f.method().label, f.error()));
                }
            }
        }
        return out.isEmpty() ? "" : "Failed restores:\n\n" + out + "\n";
    }

    /** Windows of the MMU curve's table, in steps of {@link AfterRestore#STEP_MILLIS}: 0.5, 1, 2, 3 and 5 s. */
    static final int[] MMU_TABLE_STEPS = {2, 4, 8, 12, 20};

    /** The MMU curve per method: the median over the repetitions at a few windows, on the 250 ms grid from the restore's start. */
    public static String mmuMarkdown(List<Report> reports) {
        StringBuilder out = new StringBuilder("| guest | method |");
        for (int k : MMU_TABLE_STEPS) out.append(String.format(" MMU(%s s) |", k * AfterRestore.STEP_MILLIS / 1000.0));
        out.append("\n|---|---|").append("---|".repeat(MMU_TABLE_STEPS.length)).append('\n');
        for (Report r : reports) {
            String guest = r.describe();
            for (Method m : Method.values()) {
                List<List<Double>> curves = r.of(m).stream().filter(s -> s.after() != null)
                        .map(s -> AfterRestore.mmuCurve(s.after().utilizationPerStep())).toList();
                if (curves.isEmpty()) continue;
                out.append("| ").append(guest).append(" | ").append(m.label).append(" |");
                for (int k : MMU_TABLE_STEPS) {
                    List<List<Double>> fit = curves.stream().filter(c -> c.size() >= k).toList();
                    out.append(fit.isEmpty() ? " - |" : String.format(" %.2f |", Report.median(fit, c -> c.get(k - 1))));
                }
                out.append('\n');
                guest = "";
            }
        }
        return out.toString();
    }

    /** PNGs per report: the guest's work, the host-side stalled share and QEMU's resident memory over time, per method. */
    public static List<Path> plots(Report r, Path dir) {
        String conditions = String.format("%s, %d MiB guest (T=%d, W=%d MiB, %s%s), median of %d", r.workload(), r.memoryMiB(),
                r.totalMiB(), r.wsMiB(), r.accel(), r.cold() ? ", cold" : ", warm", r.samples().size());
        String name = String.format("%s%dM-W%d.png", "wsbench".equals(r.workload()) ? "" : r.workload() + "-", r.memoryMiB(), r.wsMiB());
        List<Path> out = new ArrayList<>();
        Map<String, List<Double>> work = series(r, s -> s.after() == null ? null : s.after().utilizationPerStep());
        if (work.isEmpty()) return out;
        out.add(Plots.overTime(dir.resolve("restore-utilization-" + name), "work after the restore: " + conditions,
                "work vs before the save", work, AfterRestore.STEP_MILLIS));
        out.add(Plots.overTime(dir.resolve("restore-stalled-" + name), "share of time stalled on demand faults (host side): " + conditions,
                "share of each 250 ms the guest could not run", series(r, s -> s.hostSide() == null ? null : s.hostSide().stalledPerStep()),
                AfterRestore.STEP_MILLIS));
        out.add(Plots.overTime(dir.resolve("restore-vcpu-stalled-" + name), "share of time the vCPU did not run (host side): " + conditions,
                "1 - vCPU run share / run share before", series(r, s -> s.hostVcpu() == null ? null : s.hostVcpu().stalledPerStep()),
                AfterRestore.STEP_MILLIS));
        Map<String, List<Double>> queued = series(r, MethodSample::vcpuQueuedPerStep);
        if (!queued.isEmpty()) {
            out.add(Plots.overTime(dir.resolve("restore-vcpu-queued-" + name), "share of time the vCPU waited for a CPU: " + conditions,
                    "runnable, waiting for a core", queued, AfterRestore.STEP_MILLIS));
        }
        out.add(Plots.lines(dir.resolve("restore-mmu-" + name), "MMU curve: " + conditions, "window (s)",
                "lowest utilization of any window from the restore's start", series(r, s -> s.after() == null ? null
                        : AfterRestore.mmuCurve(s.after().utilizationPerStep())), AfterRestore.STEP_MILLIS / 1000.0));
        out.add(Plots.overTime(dir.resolve("restore-resident-" + name), "memory restored (QEMU resident): " + conditions,
                "QEMU resident memory (MiB)", series(r, MethodSample::residentMiBPerStep), AfterRestore.STEP_MILLIS));
        return out;
    }

    /** Per method, the median over the repetitions of each step of {@code values}. */
    private static Map<String, List<Double>> series(Report r, Function<MethodSample, List<Double>> values) {
        Map<String, List<Double>> out = new LinkedHashMap<>();
        for (Method m : Method.values()) {
            List<List<Double>> runs = r.of(m).stream().map(values).filter(Objects::nonNull).toList();
            if (runs.isEmpty()) continue;
            int n = runs.stream().mapToInt(List::size).min().orElse(0);
            List<Double> steps = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                int k = i;
                steps.add(Report.median(runs, x -> x.get(k)));
            }
            out.put(m.label, steps);
        }
        return out;
    }

    /** The median TTR; one not reached within the observation counts as infinite. */
    private static String ttr(List<Optional<Double>> ttrs) {
        double t = Report.median(ttrs, x -> x.orElse(Double.POSITIVE_INFINITY));
        return Double.isInfinite(t) ? "> 5" : String.format("%.2f", t);
    }

    private static <T> String mm(List<T> s, ToDoubleFunction<T> f) {
        return s.isEmpty() ? "-" : String.format("%.2f / %.2f", Report.min(s, f), Report.median(s, f));
    }
}
