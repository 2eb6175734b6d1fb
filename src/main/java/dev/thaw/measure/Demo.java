package dev.thaw.measure;

import dev.thaw.guest.DemoGuest;
import dev.thaw.guest.GuestImage;
import dev.thaw.image.CheckpointImage;
import dev.thaw.image.Manifest;
import dev.thaw.qemu.Accel;
import dev.thaw.qemu.QemuVersion;
import dev.thaw.restore.PostcopyRestore;
import dev.thaw.restore.RamFiles;
import dev.thaw.restore.RestoreTraces;
import dev.thaw.util.FileTrees;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.function.UnaryOperator;

/**
 * The main job, a preset of the bench ({@link SaveRestoreBenchmark}): the demo guest running wsbench, one repetition, every
 * method a user has or Thaw offers once (QEMU eager, QEMU loadvm, kernel demand paging of the image's RAM file; Thaw eager,
 * lazy, ws with the image's dirty,trace working set, and mapped: the same RAM file with that working set read into the page
 * cache first), memory checked after each, ws and the baselines close to it run again; then this class's table and
 * {@link DemoVerdict}. Memory is compared by checksumming the part of wsbench's region beyond its working set, which the
 * workload never writes after filling it, so the workload can keep running through the save and the restores. The image
 * stays, with its RAM file and working set, for {@code thaw restore}.
 */
public final class Demo {
    /** Every method once, in this order (the bench's first repetition runs them unrotated): ws is traced before it. */
    public static final List<RestoreMethod> METHODS = List.of(RestoreMethod.QEMU_EAGER, RestoreMethod.QEMU_LOADVM,
            RestoreMethod.MAPPED_FILE, RestoreMethod.THAW_EAGER, RestoreMethod.THAW_LAZY, RestoreMethod.WS_TRACE, RestoreMethod.WS_TRACE_MAPPED);
    /** The demo's estimate: the live probe's dirty rounds size it, the post-save trace orders it (thaw save --estimator dirty,trace). */
    static final Duration LIVE_LIMIT = Duration.ofSeconds(10);
    static final Duration TRACE = Duration.ofSeconds(3);

    private Demo() {}

    /**
     * @param measure   how long the workload is measured before the save and observed after each restore
     * @param image     where the image goes and stays (its parent is created; the baselines' files go in a scratch directory beside it)
     * @param tune      adjusts Thaw's lazy and ws restores (the background rate, ...)
     * @param tuneArgs  the command-line options that {@code tune} is (for the bench command that measures the same)
     * @param cache     what each restore finds in the page cache: {@link CacheState#EVICTED} by default (every saved file evicted,
     *                  as for a snapshot saved earlier or elsewhere; QEMU and the guest kernel stay cached)
     * @param closeRuns runs of ws and of the baselines close to it ({@link SaveRestoreBenchmark.Checks#closeRuns})
     */
    public record Config(DemoGuest guest, Duration measure, Path image, UnaryOperator<PostcopyRestore.Options> tune, List<String> tuneArgs,
                         CacheState cache, int closeRuns) {
        public Config {
            SaveRestoreBenchmark.requireCloseRuns(closeRuns);
            tuneArgs = List.copyOf(tuneArgs);
        }

        /** The bench's configuration this preset is: what {@code thaw bench} runs with the options {@link #benchEquivalent} lists. */
        public SaveRestoreBenchmark.Config bench(Path workDir) {
            return new SaveRestoreBenchmark.Config(new Workload.Wsbench(guest), 1, cache, workDir, true, TRACE, LIVE_LIMIT,
                    EnumSet.copyOf(METHODS), measure, new SaveRestoreBenchmark.Checks(true, closeRuns, image, tune));
        }

        /** The bench command that measures the same (without keeping the image or printing the demo's table). */
        public String benchEquivalent() {
            return String.format("thaw bench --modes --sizes %d --total-mib %d --ws-mib %d --layout %s --repeat 1 --methods %s"
                            + " --trace-seconds %d --live-seconds %d --observe-seconds %d --check-memory --close-runs %d%s", guest.memoryMiB(),
                    guest.totalMiB(), guest.wsMiB(),
                    guest.layout().key(), String.join(",", METHODS.stream().map(RestoreMethod::key).toList()), TRACE.toSeconds(),
                    LIVE_LIMIT.toSeconds(), measure.toSeconds(), closeRuns,
                    cache == CacheState.EVICTED ? " --evict" : cache == CacheState.COLD ? " --cold" : "")
                    + (tuneArgs.isEmpty() ? "" : " " + String.join(" ", tuneArgs));
        }
    }

    /**
     * One restore method's result, named as the demo's table names it ({@code mode}). Seconds from the start of the restore.
     *
     * @param ttrSeconds      TTR(1 s, 0.8) by the rate before the save; null if not reached within the observation
     * @param stallTtrSeconds the stall TTR ({@link AfterRestore#stallTtrSeconds}); null if not reached or not reported
     */
    public record ModeResult(RestoreMethod method, String mode, double runningSeconds, double completedSeconds, Long demandFaults, Long vcpuBlockedMillis,
                             Double ttrSeconds, Double stallTtrSeconds, double mmu, double throughputRelative, String memsumAfter,
                             boolean memsumIdentical) {
        /** The bench's sample of an observed restore as the demo's table shows it; memory identical when it matches {@code memsumBefore}. */
        static ModeResult of(SaveRestoreBenchmark.MethodSample s, String memsumBefore) {
            AfterRestore after = s.after();
            SaveRestoreBenchmark.Postcopy pc = s.postcopy();
            return new ModeResult(s.method(), s.method().shortName(), s.runningSeconds(), s.completedSeconds(),
                    pc == null ? null : pc.demandFaults(), pc == null ? null : pc.vcpuBlockedMillis(),
                    after == null ? null : after.ttrSeconds().orElse(null),
                    after == null || !after.stallsReported() ? null : after.stallTtrSeconds().orElse(null),
                    after == null ? Double.NaN : after.mmu(), after == null ? 0 : after.relativeThroughput(), s.memsumAfter(),
                    s.memsumAfter() != null && s.memsumAfter().equals(memsumBefore));
        }
    }

    /**
     * What the demo did and measured.
     *
     * @param report  the bench's report of its one repetition
     * @param modes   every method once, in {@link #METHODS}' order
     * @param repeats the further runs of ws and the baselines close to it ({@link DemoVerdict#toRepeat}), interleaved
     * @param image   the kept image's statistics
     */
    public record Result(SaveRestoreBenchmark.Report report, List<ModeResult> modes, List<ModeResult> repeats,
                         List<SaveRestoreBenchmark.Failure> failures, Manifest.Stats image) {
        public SaveRestoreBenchmark.Sample sample() {
            return report.samples().getFirst();
        }

        /** Every run: the first pass, then the repeats. */
        public List<ModeResult> all() {
            List<ModeResult> all = new ArrayList<>(modes);
            all.addAll(repeats);
            return List.copyOf(all);
        }

        /** Whether every method ran and every restored guest's memory was identical. */
        public boolean intact() {
            return failures.isEmpty() && modes.size() == METHODS.size() && all().stream().allMatch(ModeResult::memsumIdentical);
        }
    }

    public static Result run(Config config, GuestImage image, QemuVersion qemu, Accel accel, PrintStream log)
            throws IOException, InterruptedException {
        Path target = config.image().toAbsolutePath();
        Files.createDirectories(target.getParent());
        // An earlier demo's RAM file and traces (its image is replaced by the save); QEMU's files go in a scratch directory.
        FileTrees.deleteQuietly(RamFiles.directoryFor(target));
        FileTrees.deleteQuietly(RestoreTraces.directoryFor(target));
        Path scratch = Files.createTempDirectory(target.getParent(), target.getFileName() + ".bench-");
        SaveRestoreBenchmark.Report report;
        try {
            report = SaveRestoreBenchmark.run(config.bench(scratch), image, qemu, accel, log);
        } finally {
            FileTrees.deleteQuietly(scratch); // QEMU's stream and qcow2: large, and only this run's
        }
        SaveRestoreBenchmark.Sample sample = report.samples().getFirst();
        Manifest.Stats stats;
        try (CheckpointImage img = CheckpointImage.open(target)) {
            stats = img.manifest().stats();
        }
        return new Result(report, sample.restores().stream().map(r -> ModeResult.of(r, sample.memsumBefore())).toList(),
                sample.repeats().stream().map(r -> ModeResult.of(r, sample.memsumBefore())).toList(), sample.failures(), stats);
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

    /** Operations per second for people: {@code 1.23 M} or {@code 456 k}. */
    public static String human(double opsPerSecond) {
        return opsPerSecond >= 1e6 ? String.format("%.2f M", opsPerSecond / 1e6) : String.format("%.0f k", opsPerSecond / 1e3);
    }
}
