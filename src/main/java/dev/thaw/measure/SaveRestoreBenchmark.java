package dev.thaw.measure;

import dev.thaw.estimate.PageRef;
import dev.thaw.guest.DemoGuest;
import dev.thaw.guest.GuestImage;
import dev.thaw.image.CheckpointImage;
import dev.thaw.image.ImageWriter;
import dev.thaw.qemu.Accel;
import dev.thaw.qemu.QemuVersion;
import dev.thaw.qemu.QemuVm;
import dev.thaw.restore.EagerRestore;
import dev.thaw.restore.PostcopyRestore;
import dev.thaw.save.Saver;
import dev.thaw.util.FileTrees;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * Save and eager restore, Thaw against QEMU's own, on the same running demo guest and interleaved
 * repetition by repetition (the host is shared and noisy, so blocks of one method would measure
 * the neighbours as much as the method): per repetition Thaw's save, QEMU's save to a file, then
 * both eager restores in alternating order, each from a cold page cache when asked.
 */
public final class SaveRestoreBenchmark {
    /** @param postcopyModes also restore lazily, then working-set first with the set learned from that lazy restore */
    public record Config(DemoGuest guest, int repetitions, boolean cold, Path workDir, boolean postcopyModes) {}

    /** One lazy or ws restore: seconds from the start of the restore, and what its event log says. */
    public record ModeSample(String mode, double runningSeconds, double completedSeconds, long prefetchedPages, long demandFaults,
                             double serviceMedianMicros, double serviceP99Micros, double backgroundMBps, long vcpuBlockedMillis,
                             AfterRestore after) {}

    /** Seconds and bytes of one repetition. */
    public record Sample(double thawSaveSeconds, long thawImageBytes, long streamBytes, double qemuSaveSeconds, double qemuSaveFsyncSeconds,
                         long qemuFileBytes, double thawRestoreSeconds, double qemuRestoreSeconds, List<ModeSample> postcopy,
                         AfterRestore thawEagerAfter, AfterRestore qemuEagerAfter, double opsPerSecondBefore) {}

    /** How long the restored guest is observed, with --modes, for TTR, MMU and its work relative to before the save. */
    static final Duration OBSERVE = Duration.ofSeconds(5);

    public record Report(long memoryMiB, long totalMiB, long wsMiB, String accel, String qemuVersion, boolean cold, List<Sample> samples) {
        /** The guest and the conditions, as the tables name them. */
        String describe() {
            return String.format("%d MiB RAM, T=%d, W=%d, %s%s, n=%d", memoryMiB, totalMiB, wsMiB, accel, cold ? ", cold" : ", warm", samples.size());
        }

        public static <T> double min(List<T> s, java.util.function.ToDoubleFunction<T> f) {
            return s.stream().mapToDouble(f).min().orElse(Double.NaN);
        }

        public static <T> double median(List<T> s, java.util.function.ToDoubleFunction<T> f) {
            double[] v = s.stream().mapToDouble(f).sorted().toArray();
            if (v.length == 0) return Double.NaN;
            return v.length % 2 == 1 ? v[v.length / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
        }
    }

    private SaveRestoreBenchmark() {}

    public static Report run(Config config, GuestImage image, QemuVersion qemu, Accel accel, PrintStream log) throws IOException, InterruptedException {
        Files.createDirectories(config.workDir());
        List<Sample> samples = new ArrayList<>();
        String size = config.guest().memoryMiB() + "M";
        try (QemuVm vm = QemuVm.launch(config.guest().vmConfig("thaw-bench-" + size, image, qemu, accel))) {
            DemoGuest.awaitReady(vm, vm.console().cursorFromStart(), DemoGuest.BOOT_TIMEOUT);
            Thread.sleep(2000); // let the workload run before the first save
            for (int rep = 0; rep < config.repetitions(); rep++) {
                boolean observe = config.postcopyModes();
                double before = 0;
                if (observe) {
                    before = Throughput.of(DemoGuest.collectTicks(vm.console().cursor(), OBSERVE), Throughput.ONE_SECOND_NANOS).opsPerSecond();
                }
                AfterRestore thawAfter = null;
                AfterRestore qemuAfter = null;
                Path thawImage = config.workDir().resolve("thaw-" + size + "-" + rep);
                Path qemuFile = config.workDir().resolve("qemu-" + size + "-" + rep + ".mig");
                FileTrees.deleteQuietly(thawImage);
                Files.deleteIfExists(qemuFile);
                Saver.Result saved = Saver.save(vm.qmp(), vm.config(), thawImage,
                        Saver.Options.defaults().withKeepRunning(true).withImage(ImageWriter.Options.defaults()), p -> {});
                Thread.sleep(1000);
                QemuBaselines.SaveResult qemuSaved = QemuBaselines.saveToFile(vm.qmp(), qemuFile, Duration.ofMinutes(5));
                // The source guest would compete with the restored one for the host's 2 cores: it stands still while they run.
                vm.qmp().stop();
                double thawRestore = 0;
                double qemuRestore = 0;
                for (int k = 0; k < 2; k++) {
                    boolean thawTurn = (k == 0) == (rep % 2 == 0);
                    if (config.cold()) QemuBaselines.dropCaches();
                    if (thawTurn) {
                        long start = System.nanoTime(); // opening the image (reading its metadata) counts
                        try (CheckpointImage img = CheckpointImage.open(thawImage)) {
                            long opened = System.nanoTime() - start;
                            EagerRestore.Result r = EagerRestore.restore(img, EagerRestore.Options.defaults("thaw-bench-restore"), p -> {});
                            thawRestore = (opened + r.runningNanos()) / 1e9;
                            if (observe) thawAfter = AfterRestore.observe(r.vm(), start, opened + r.runningNanos(), before, OBSERVE);
                            r.vm().close();
                        }
                    } else {
                        long start = System.nanoTime();
                        QemuBaselines.RestoreResult r = QemuBaselines.restoreFromFile(vm.config(), "thaw-bench-qemu-restore", qemuFile,
                                Duration.ofMinutes(5));
                        qemuRestore = r.runningNanos() / 1e9;
                        if (observe) qemuAfter = AfterRestore.observe(r.vm(), start, r.runningNanos(), before, OBSERVE);
                        r.vm().close();
                    }
                }
                List<ModeSample> postcopy = new ArrayList<>();
                if (config.postcopyModes()) {
                    List<PageRef> learned = List.of();
                    for (String mode : List.of("lazy", "ws")) {
                        if (config.cold()) QemuBaselines.dropCaches();
                        long start = System.nanoTime();
                        try (CheckpointImage img = CheckpointImage.open(thawImage)) {
                            long opened = System.nanoTime() - start;
                            PostcopyRestore.Result r = PostcopyRestore.restore(img,
                                    PostcopyRestore.Options.lazy("thaw-bench-" + mode).withWorkingSet(learned), m -> {});
                            AfterRestore after = AfterRestore.observe(r.vm(), start, opened + r.runningNanos(), before, OBSERVE);
                            r.vm().close();
                            RestoreTimeline t = RestoreTimeline.of(r.events());
                            postcopy.add(new ModeSample(mode, (opened + r.runningNanos()) / 1e9, (opened + r.completedNanos()) / 1e9,
                                    r.prefetchedPages(), r.demandFaults(), t.serviceMedianMicros(), t.serviceP99Micros(),
                                    t.backgroundPagesPerSecond() * 4096 / 1e6, r.vcpuBlockedMillis(), after));
                            learned = r.faultedPages();
                        }
                    }
                }
                Sample s = new Sample(saved.durationNanos() / 1e9, saved.manifest().stats().imageFileBytes(), saved.streamBytes(),
                        qemuSaved.durationNanos() / 1e9, (qemuSaved.durationNanos() + qemuSaved.fsyncNanos()) / 1e9, qemuSaved.fileBytes(),
                        thawRestore, qemuRestore, List.copyOf(postcopy), thawAfter, qemuAfter, before);
                samples.add(s);
                vm.qmp().cont();
                log.printf("  %s rep %d: %s%n", size, rep + 1, s);
                FileTrees.deleteQuietly(thawImage);
                Files.deleteIfExists(qemuFile);
            }
        }
        return new Report(config.guest().memoryMiB(), config.guest().totalMiB(), config.guest().wsMiB(), accel.qemuName(), qemu.text(),
                config.cold(), List.copyOf(samples));
    }

    /** A markdown table of min / median per method. */
    public static String markdown(List<Report> reports) {
        StringBuilder out = new StringBuilder();
        out.append("| guest | Thaw save (s) | QEMU save to file (s) | QEMU save + fsync (s) | Thaw image (MiB) | QEMU file (MiB) |"
                + " Thaw eager restore (s) | QEMU eager restore (s) |\n");
        out.append("|---|---|---|---|---|---|---|---|\n");
        for (Report r : reports) {
            List<Sample> s = r.samples();
            out.append(String.format("| %s | %s | %s | %s | %d | %d | %s | %s |%n", r.describe(),
                    mm(s, Sample::thawSaveSeconds), mm(s, Sample::qemuSaveSeconds), mm(s, Sample::qemuSaveFsyncSeconds),
                    (long) Report.median(s, x -> x.thawImageBytes()) >> 20, (long) Report.median(s, x -> x.qemuFileBytes()) >> 20,
                    mm(s, Sample::thawRestoreSeconds), mm(s, Sample::qemuRestoreSeconds)));
        }
        return out.toString();
    }

    /** Restore modes side by side: time to running and to completion, per mode, min / median; TTR and the rest medians. */
    public static String modesMarkdown(List<Report> reports) {
        StringBuilder out = new StringBuilder();
        out.append("| guest | mode | running after (s) | completed after (s) | prefetched pages | demand faults | fault service p50 / p99 (us)"
                + " | vCPU stalled (ms) | background (MB/s) | TTR(1 s, 0.8) (s) | MMU(1 s) | first 5 s vs before |\n");
        out.append("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for (Report r : reports) {
            List<Sample> s = r.samples();
            if (s.isEmpty() || s.getFirst().postcopy().isEmpty()) continue;
            String guest = r.describe();
            out.append(String.format("| %s | QEMU eager | %s | %s | - | - | - | - | - | %s |%n", guest, mm(s, Sample::qemuRestoreSeconds),
                    mm(s, Sample::qemuRestoreSeconds), observed(s.stream().map(Sample::qemuEagerAfter).toList())));
            out.append(String.format("| | Thaw eager | %s | %s | - | - | - | - | - | %s |%n", mm(s, Sample::thawRestoreSeconds),
                    mm(s, Sample::thawRestoreSeconds), observed(s.stream().map(Sample::thawEagerAfter).toList())));
            for (int m = 0; m < s.getFirst().postcopy().size(); m++) {
                int k = m;
                List<ModeSample> ms = s.stream().map(x -> x.postcopy().get(k)).toList();
                out.append(String.format("| | Thaw %s | %s | %s | %.0f | %.0f | %.0f / %.0f | %.0f | %.0f | %s |%n", ms.getFirst().mode(),
                        mm(ms, ModeSample::runningSeconds), mm(ms, ModeSample::completedSeconds),
                        Report.median(ms, x -> x.prefetchedPages()), Report.median(ms, x -> x.demandFaults()),
                        Report.median(ms, ModeSample::serviceMedianMicros), Report.median(ms, ModeSample::serviceP99Micros),
                        Report.median(ms, x -> x.vcpuBlockedMillis()), Report.median(ms, ModeSample::backgroundMBps),
                        observed(ms.stream().map(ModeSample::after).toList())));
            }
        }
        return out.toString();
    }

    /** A PNG of the guest's work after each restore method, the median over the repetitions per step; null without observations. */
    public static Path plot(Report r, Path dir) {
        java.util.Map<String, List<Double>> series = new java.util.LinkedHashMap<>();
        series.put("QEMU eager", medianSteps(r.samples().stream().map(Sample::qemuEagerAfter).toList()));
        series.put("Thaw eager", medianSteps(r.samples().stream().map(Sample::thawEagerAfter).toList()));
        if (!r.samples().isEmpty()) {
            for (int m = 0; m < r.samples().getFirst().postcopy().size(); m++) {
                int k = m;
                series.put("Thaw " + r.samples().getFirst().postcopy().get(k).mode(),
                        medianSteps(r.samples().stream().map(x -> x.postcopy().get(k).after()).toList()));
            }
        }
        if (series.values().stream().allMatch(List::isEmpty)) return null;
        return Plots.utilizationOverTime(dir.resolve(String.format("restore-utilization-%dM.png", r.memoryMiB())), String.format(
                "%d MiB guest (T=%d, W=%d MiB, %s%s): work after the restore, median of %d", r.memoryMiB(), r.totalMiB(), r.wsMiB(),
                r.accel(), r.cold() ? ", cold" : ", warm", r.samples().size()), series, AfterRestore.STEP_MILLIS);
    }

    private static List<Double> medianSteps(List<AfterRestore> after) {
        List<List<Double>> runs = after.stream().filter(java.util.Objects::nonNull).map(AfterRestore::utilizationPerStep).toList();
        int n = runs.stream().mapToInt(List::size).min().orElse(0);
        List<Double> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            int k = i;
            out.add(Report.median(runs, x -> x.get(k)));
        }
        return out;
    }

    /** "TTR | MMU | relative" medians; a TTR not reached within the observation counts as infinite. */
    private static String observed(List<AfterRestore> after) {
        List<AfterRestore> seen = after.stream().filter(java.util.Objects::nonNull).toList();
        if (seen.isEmpty()) return "- | - | -";
        double ttr = Report.median(seen, a -> a.ttrSeconds().orElse(Double.POSITIVE_INFINITY));
        return String.format("%s | %.2f | %.2fx", Double.isInfinite(ttr) ? "> 5" : String.format("%.2f", ttr),
                Report.median(seen, AfterRestore::mmu), Report.median(seen, AfterRestore::relativeThroughput));
    }

    private static <T> String mm(List<T> s, java.util.function.ToDoubleFunction<T> f) {
        return String.format("%.2f / %.2f", Report.min(s, f), Report.median(s, f));
    }
}
