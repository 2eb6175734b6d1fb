package dev.thaw.measure;

import dev.thaw.guest.GuestImage;
import dev.thaw.image.CheckpointImage;
import dev.thaw.qemu.Accel;
import dev.thaw.qemu.QemuVersion;
import dev.thaw.qemu.QemuVm;
import dev.thaw.restore.Clones;
import dev.thaw.restore.RamFiles;
import dev.thaw.restore.RestoreTraces;
import dev.thaw.util.FileTrees;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.function.UnaryOperator;

/**
 * N clones of one image at once ({@code thaw restore --clones N}, issue 14): per count and Thaw method, interleaved over the
 * repetitions, how soon each clone ran and was responsive, and the host memory all of them held. The demo guest is saved
 * once with the dirty,trace estimate attached (as {@code thaw save --estimator dirty,trace}), its source quit (its RAM
 * would be counted against the clones otherwise); each restore of N clones then starts from the image's files as the cache
 * state says, and each clone is observed for the observation window from its own start.
 */
public final class ClonesBenchmark {
    /**
     * @param counts  how many clones at once, each run per method and repetition
     * @param methods Thaw's lazy or ws methods (their own working set choice and tuning, as {@link MethodRestore} gives them)
     */
    public record Config(Workload.Wsbench workload, List<Integer> counts, List<RestoreMethod> methods, int repetitions, CacheState cache,
                         Duration observe, Duration trace, Duration liveLimit, Path workDir) {
        public Config {
            counts = List.copyOf(counts);
            methods = List.copyOf(methods);
            for (int n : counts) Clones.requireCount(n);
            for (RestoreMethod m : methods) {
                if (m.thawMode().isEmpty()) {
                    throw new IllegalArgumentException("clones: expected a Thaw restore method, actual " + m.key() + " (QEMU's own has no clones)");
                }
            }
            if (repetitions < 1) throw new IllegalArgumentException("repetitions: expected at least 1, actual " + repetitions);
        }
    }

    /**
     * One clone of one run, seconds from the start of the restore of all of them.
     *
     * @param ttrSeconds      TTR(1 s, 0.8) against the source's rate before the save; null when not reached in the observation
     * @param stallTtrSeconds the stall TTR; null when not reached
     * @param residentBytes   its QEMU's resident memory at the end of its observation (pages shared with other clones counted in each)
     * @param proportionalBytes its QEMU's proportional set size then (each shared page divided among the clones that map it):
     *                          summed over the clones, the memory they hold; 0 in a report written before it was measured
     */
    public record CloneSample(String name, double runningSeconds, double completedSeconds, Double ttrSeconds, Double stallTtrSeconds,
                              double relativeThroughput, long residentBytes, long proportionalBytes) {}

    /**
     * One run: N clones by one method.
     *
     * @param failure why the run failed (then no clones); null when it did not
     */
    public record Sample(RestoreMethod method, int count, int repetition, List<CloneSample> clones, String failure) {
        public Sample {
            clones = List.copyOf(clones);
        }

        /** Until the last clone's restore completed (every page in). */
        public double allCompletedSeconds() {
            return clones.stream().mapToDouble(CloneSample::completedSeconds).max().orElse(Double.NaN);
        }

        /** Until the last clone ran. */
        public double allRunningSeconds() {
            return clones.stream().mapToDouble(CloneSample::runningSeconds).max().orElse(Double.NaN);
        }

        public long residentBytesTotal() {
            return clones.stream().mapToLong(CloneSample::residentBytes).sum();
        }

        public long proportionalBytesTotal() {
            return clones.stream().mapToLong(CloneSample::proportionalBytes).sum();
        }
    }

    /**
     * @param opsPerSecondBefore the source's rate before the save, alone on the host: the reference of TTR and of the work after
     * @param vcpusPerClone      each clone's vCPUs: N clones of it can share the host's CPUs at best ({@link #fairShare})
     */
    public record Report(String workload, long memoryMiB, long totalMiB, long wsMiB, String layout, String accel, String qemuVersion,
                         CacheState cache, int hostCpus, int vcpusPerClone, double observeSeconds, double opsPerSecondBefore,
                         long imageBytes, List<Sample> samples) {
        /**
         * The most of the source's rate each of {@code count} clones can reach when their vCPUs compute at once: 1 while the host
         * has a CPU for every vCPU, the host's CPUs over all vCPUs beyond that (N = 4 clones of one vCPU on 2 CPUs: 0.5). TTR
         * and the stall TTR measure against the rate alone, so clones beyond the host's CPUs never reach them.
         */
        public double fairShare(int count) {
            return Math.min(1.0, hostCpus / (double) (count * vcpusPerClone));
        }
    }

    private ClonesBenchmark() {}

    public static Report run(Config config, GuestImage guestImage, QemuVersion qemu, Accel accel, PrintStream log)
            throws IOException, InterruptedException {
        Workload.Wsbench g = config.workload();
        Path image = config.workDir().resolve("clones-image-" + g.memoryMiB() + "M");
        TracedSave.Result saved = TracedSave.save(g, image, "thaw-clones", guestImage, qemu, accel, config.observe(), config.liveLimit(),
                config.trace(), config.methods().stream().anyMatch(RestoreMethod::mapsRamFile), log);
        Workload.Before before = saved.before();
        List<Sample> samples = new ArrayList<>();
        try (CheckpointImage img = CheckpointImage.open(image)) {
            List<Unit> units = new ArrayList<>();
            for (int n : config.counts()) for (RestoreMethod m : config.methods()) units.add(new Unit(m, n));
            for (int rep = 0; rep < config.repetitions(); rep++) {
                for (int u = 0; u < units.size(); u++) {
                    Unit unit = units.get((u + rep) % units.size()); // rotated, so that no run always goes first
                    Sample s = runOnce(img, unit, rep, before, config);
                    samples.add(s);
                    log.printf("  rep %d: %-18s x%d %s%n", rep + 1, unit.method().label(), unit.count(), s.failure() != null ? "FAILED: " + s.failure()
                            : String.format("all running after %.2f s; stall TTR %s; QEMU resident %d MiB in all", s.allRunningSeconds(),
                            s.clones().stream().map(c -> c.stallTtrSeconds() == null ? "never" : String.format("%.2f", c.stallTtrSeconds())).toList(),
                            s.residentBytesTotal() >> 20));
                }
            }
        } finally {
            FileTrees.deleteQuietly(image);
            FileTrees.deleteQuietly(RamFiles.directoryFor(image));
            FileTrees.deleteQuietly(RestoreTraces.directoryFor(image));
        }
        return new Report(g.label(), g.memoryMiB(), g.totalMiB(), g.wsMiB(), g.layout(), accel.qemuName(), qemu.text(), config.cache(),
                Runtime.getRuntime().availableProcessors(), saved.vcpus(), config.observe().toMillis() / 1e3, before.opsPerSecond(), saved.imageBytes(),
                List.copyOf(samples));
    }

    private record Unit(RestoreMethod method, int count) {}

    private static Sample runOnce(CheckpointImage img, Unit unit, int rep, Workload.Before before, Config config) throws InterruptedException {
        RestoreMethod m = unit.method();
        config.cache().prepare(java.util.stream.Stream.of(img.directory(), RamFiles.directoryFor(img.directory()))
                .filter(java.nio.file.Files::exists).toList());
        UnaryOperator<dev.thaw.restore.PostcopyRestore.Options> tune = MethodRestore.tuning(m, UnaryOperator.identity());
        long start = System.nanoTime();
        List<Clones.Clone> clones;
        try {
            clones = Clones.restore(img, m.thawMode().orElseThrow(), "thaw-clones-" + m.key(), unit.count(), m.workingSetChoice(), tune, x -> {});
        } catch (RuntimeException e) {
            return new Sample(m, unit.count(), rep, List.of(), Objects.requireNonNullElse(e.getMessage(), e.toString()));
        }
        try {
            List<CloneSample> seen = new ArrayList<>();
            for (Clones.Clone c : clones) { // the windows overlap: after the first, the others are read from their consoles' past
                QemuVm vm = c.outcome().vm();
                long running = (long) (c.outcome().runningSeconds() * 1e9);
                AfterRestore after = AfterRestore.observe(vm, start, running, before.opsPerSecond(), before.unstalledShare(), config.observe());
                seen.add(new CloneSample(c.name(), c.outcome().runningSeconds(), c.outcome().completedSeconds(), after.ttrSeconds().orElse(null),
                        after.stallsReported() ? after.stallTtrSeconds().orElse(null) : null, after.relativeThroughput(),
                        QemuSampler.residentBytes(vm.pid()), QemuSampler.proportionalBytes(vm.pid())));
            }
            return new Sample(m, unit.count(), rep, seen, null);
        } catch (RuntimeException e) {
            return new Sample(m, unit.count(), rep, List.of(), Objects.requireNonNullElse(e.getMessage(), e.toString()));
        } finally {
            for (Clones.Clone c : clones) c.outcome().vm().close();
        }
    }

    /**
     * The table: per method and count, over the repetitions, the median (and min) of: the time until every clone ran, each
     * clone's stall TTR and TTR (the median over all clones of all repetitions; "> W" when the median clone was not responsive in
     * the observation), the work of the first seconds against the source's and against its fair share of the host's CPUs,
     * and QEMU's resident memory, all clones and per clone, and the proportional memory all clones hold.
     */
    public static String markdown(Report r) {
        StringBuilder out = new StringBuilder(String.format("%s, %d MiB RAM, T=%d, W=%d %s, %s, %s, %d host CPUs, image %d MiB, observed %.0f s%n%n",
                r.workload(), r.memoryMiB(), r.totalMiB(), r.wsMiB(), r.layout(), r.accel(), r.cache().label(), r.hostCpus(),
                r.imageBytes() >> 20, r.observeSeconds()));
        out.append("| method | clones | runs | all running (s) min / median | all completed (s) median | stall TTR per clone (s) median / max | TTR per clone (s) median"
                + " | work first " + Math.round(r.observeSeconds()) + " s vs before, median | fair share | work vs fair share | QEMU resident, all"
                + " clones (MiB) median | per clone (MiB) | QEMU proportional (PSS), all clones (MiB) median |\n");
        out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        List<RestoreMethod> methods = r.samples().stream().map(Sample::method).distinct().toList();
        List<Integer> counts = r.samples().stream().map(Sample::count).distinct().sorted().toList();
        for (RestoreMethod m : methods) {
            for (int n : counts) {
                List<Sample> runs = r.samples().stream().filter(s -> s.method() == m && s.count() == n).toList();
                List<Sample> ok = runs.stream().filter(s -> s.failure() == null).toList();
                if (runs.isEmpty()) continue;
                List<CloneSample> clones = ok.stream().flatMap(s -> s.clones().stream()).toList();
                String failed = ok.size() == runs.size() ? "" : " (" + (runs.size() - ok.size()) + " failed)";
                double limit = r.observeSeconds();
                double work = SaveRestoreBenchmark.Report.median(clones, CloneSample::relativeThroughput);
                out.append(String.format("| %s | %d | %d%s | %s / %s | %s | %s / %s | %s | %.2fx | %.2f | %.2fx | %.0f | %.0f | %.0f |%n", m.label(), n, runs.size(), failed,
                        f2(SaveRestoreBenchmark.Report.min(ok, Sample::allRunningSeconds)), f2(SaveRestoreBenchmark.Report.median(ok, Sample::allRunningSeconds)),
                        f2(SaveRestoreBenchmark.Report.median(ok, Sample::allCompletedSeconds)),
                        ttr(SaveRestoreBenchmark.Report.median(clones, c -> orInfinity(c.stallTtrSeconds())), limit),
                        ttr(clones.stream().mapToDouble(c -> orInfinity(c.stallTtrSeconds())).max().orElse(Double.NaN), limit),
                        ttr(SaveRestoreBenchmark.Report.median(clones, c -> orInfinity(c.ttrSeconds())), limit),
                        work, r.fairShare(n), work / r.fairShare(n),
                        SaveRestoreBenchmark.Report.median(ok, s -> s.residentBytesTotal() / 1048576.0),
                        SaveRestoreBenchmark.Report.median(clones, c -> c.residentBytes() / 1048576.0),
                        SaveRestoreBenchmark.Report.median(ok, s -> s.proportionalBytesTotal() / 1048576.0)));
            }
        }
        for (Sample s : r.samples()) {
            if (s.failure() != null) out.append(String.format("- %s x%d, repetition %d failed: %s%n", s.method().label(), s.count(), s.repetition() + 1, s.failure()));
        }
        return out.toString();
    }

    private static double orInfinity(Double seconds) {
        return seconds == null ? Double.POSITIVE_INFINITY : seconds;
    }

    private static String f2(double v) {
        return Double.isNaN(v) ? "-" : String.format("%.2f", v);
    }

    /** A TTR as the table says it: "0.42", "> 5" when not reached within the observation, "-" when there is none. */
    private static String ttr(double seconds, double observed) {
        if (Double.isNaN(seconds)) return "-";
        return Double.isInfinite(seconds) ? "> " + Math.round(observed) : String.format("%.2f", seconds);
    }
}
