package dev.thaw.cli;

import dev.thaw.guest.DemoGuest;
import dev.thaw.host.HostDoctor;
import dev.thaw.measure.ClonesBenchmark;
import dev.thaw.measure.EstimatorEvaluation;
import dev.thaw.measure.SteadyStateBenchmark;
import dev.thaw.measure.TtrCalibration;
import dev.thaw.util.FileTrees;
import java.io.PrintStream;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParentCommand;

/**
 * The bench's other studies, each run instead of the save and restore comparison, per guest size
 * ({@code --sizes}, {@code --work-dir}, {@code --json} and {@code --trace-seconds} are the bench's own).
 */
final class BenchStudies {
    private BenchStudies() {}

    @Command(name = "steady-state", mixinStandardHelpOptions = true,
            description = "Steady-state speed after each restore mode against an eager restore, measured paired (guests taking turns), per size.")
    static final class SteadyState implements Callable<Integer> {
        @ParentCommand
        BenchCommand bench;

        @Option(names = "--pairs", defaultValue = "6", description = "Pairs per mode (default ${DEFAULT-VALUE}).")
        int pairs;

        @Override
        public Integer call() throws Exception {
            bench.writeJson(perGuest(bench, "steady state", (guest, host, dir, out) -> SteadyStateBenchmark.run(guest,
                    host.guest().orElseThrow(), host.qemuVersion().orElseThrow(), host.accel(), dir, pairs, out)));
            return 0;
        }
    }

    @Command(name = "calibrate-ttr", mixinStandardHelpOptions = true,
            description = "Calibrate TTR(w, u) on a never-saved demo guest per size: the share of segments of its undisturbed run that are"
                    + " responsive from the first window, per window and threshold.")
    static final class CalibrateTtr implements Callable<Integer> {
        @ParentCommand
        BenchCommand bench;

        @Option(names = "--segments", defaultValue = "10", description = "Segments of 15 s (default ${DEFAULT-VALUE}).")
        int segments;

        @Override
        public Integer call() throws Exception {
            PrintStream out = bench.out();
            HostDoctor.Report host = HostDoctor.ensureReady(System.err);
            List<TtrCalibration.Report> calibrated = new ArrayList<>();
            for (long size : bench.sizes) {
                DemoGuest guest = size <= 512 ? new DemoGuest(size, size - 320, 64) : BenchCommand.benchGuest(size);
                out.printf("TTR calibration, guest %d MiB RAM, T=%d MiB, W=%d MiB ...%n", size, guest.totalMiB(), guest.wsMiB());
                TtrCalibration.Report r = TtrCalibration.run(guest, host.guest().orElseThrow(), host.qemuVersion().orElseThrow(), host.accel(),
                        Duration.ofSeconds(5), Duration.ofSeconds(10), segments, out);
                calibrated.add(r);
                out.println();
                out.print(TtrCalibration.markdown(r));
            }
            bench.writeJson(calibrated);
            return 0;
        }
    }

    @Command(name = "estimators", mixinStandardHelpOptions = true,
            description = "Evaluate the working-set estimators (dirty, trace, learned) per size: hit rate, accuracy and coverage against a"
                    + " traced restore, FAFL against LRU and CLOCK, and each restore method.")
    static final class Estimators implements Callable<Integer> {
        @ParentCommand
        BenchCommand bench;

        @Override
        public Integer call() throws Exception {
            List<EstimatorEvaluation.Report> evaluated = perGuest(bench, "estimators", (guest, host, dir, out) -> EstimatorEvaluation.run(
                    new EstimatorEvaluation.Config(guest, Duration.ofSeconds(bench.traceSeconds), Duration.ofSeconds(5), dir),
                    host.guest().orElseThrow(), host.qemuVersion().orElseThrow(), host.accel(), out));
            bench.out().println();
            bench.out().print(EstimatorEvaluation.markdown(evaluated));
            bench.writeJson(evaluated);
            return 0;
        }
    }

    @Command(name = "clones", mixinStandardHelpOptions = true,
            description = "N clones of one image restored at once (thaw restore --clones N), per size, count and Thaw method,"
                    + " interleaved: when every clone ran, each clone's stall TTR and TTR, its work against the source's, and the"
                    + " host memory all of them held (QEMU's resident memory).")
    static final class ClonesStudy implements Callable<Integer> {
        @ParentCommand
        BenchCommand bench;

        @picocli.CommandLine.Spec
        picocli.CommandLine.Model.CommandSpec spec;

        @Option(names = "--counts", split = ",", defaultValue = "1,2,4", description = "Clones at once (default ${DEFAULT-VALUE}).")
        List<Integer> counts;

        @Option(names = "--clone-methods", split = ",", defaultValue = "thaw-lazy,ws-trace,ws-trace-mapped",
                description = "Thaw's methods, as the bench's --methods names them (default ${DEFAULT-VALUE}; mapped clones share the"
                        + " page cache's copy of the image's RAM file).")
        List<String> methods;

        @Option(names = "--runs", defaultValue = "3", description = "Repetitions of every count and method (default ${DEFAULT-VALUE}).")
        int runs;

        @Override
        public Integer call() throws Exception {
            List<dev.thaw.measure.RestoreMethod> chosen;
            dev.thaw.measure.CacheState cache = bench.cache();
            try {
                chosen = methods.stream().map(k -> dev.thaw.measure.RestoreMethod.parse(k.trim())).toList();
                // Checked before anything boots: a bad count or method fails here.
                new ClonesBenchmark.Config(new dev.thaw.measure.Workload.Wsbench(BenchCommand.benchGuest(bench.sizes.getFirst())), counts,
                        chosen, runs, cache, Duration.ofSeconds(bench.observeSeconds), Duration.ofSeconds(bench.traceSeconds),
                        Duration.ofSeconds(bench.liveSeconds), Path.of("."));
            } catch (IllegalArgumentException e) {
                throw new picocli.CommandLine.ParameterException(spec.commandLine(), e.getMessage());
            }
            List<ClonesBenchmark.Report> reports = perGuest(bench, "clones", (guest, host, dir, out) -> ClonesBenchmark.run(
                    new ClonesBenchmark.Config(new dev.thaw.measure.Workload.Wsbench(guest), counts, chosen, runs, cache,
                            Duration.ofSeconds(bench.observeSeconds), Duration.ofSeconds(bench.traceSeconds), Duration.ofSeconds(bench.liveSeconds), dir),
                    host.guest().orElseThrow(), host.qemuVersion().orElseThrow(), host.accel(), out));
            bench.out().println();
            for (ClonesBenchmark.Report r : reports) bench.out().println(ClonesBenchmark.markdown(r));
            bench.writeJson(reports);
            return 0;
        }
    }

    @Command(name = "remote", mixinStandardHelpOptions = true,
            description = "ws restores from object storage against local, per size: the guest saved once (dirty,trace), pushed to an"
                    + " s3proxy of the bench's own, then per repetition, interleaved, a ws restore from the local image (its files evicted)"
                    + " and from s3:// through a TCP relay adding each round-trip time (an empty object-store cache each time): open,"
                    + " guest running, stall TTR and TTR, work against before, demand faults' service time, GETs and bytes fetched.")
    static final class Remote implements Callable<Integer> {
        @ParentCommand
        BenchCommand bench;

        @picocli.CommandLine.Spec
        picocli.CommandLine.Model.CommandSpec spec;

        @Option(names = "--added-rtt-ms", split = ",", defaultValue = "0,1,10",
                description = "Round-trip times the relay adds in front of s3proxy, in ms (default ${DEFAULT-VALUE}).")
        List<Integer> addedRttMillis;

        @Option(names = "--runs", defaultValue = "5", description = "Repetitions (default ${DEFAULT-VALUE}).")
        int runs;

        @Override
        public Integer call() throws Exception {
            java.util.function.BiFunction<DemoGuest, Path, dev.thaw.measure.RemoteRestoreBenchmark.Config> config = (guest, dir) ->
                    new dev.thaw.measure.RemoteRestoreBenchmark.Config(new dev.thaw.measure.Workload.Wsbench(guest), addedRttMillis, runs,
                            Duration.ofSeconds(bench.observeSeconds), Duration.ofSeconds(bench.traceSeconds), Duration.ofSeconds(bench.liveSeconds), dir);
            try {
                config.apply(BenchCommand.benchGuest(bench.sizes.getFirst()), Path.of(".")); // checked before anything boots
            } catch (IllegalArgumentException e) {
                throw new picocli.CommandLine.ParameterException(spec.commandLine(), e.getMessage());
            }
            List<dev.thaw.measure.RemoteRestoreBenchmark.Report> reports = perGuest(bench, "remote restore", (guest, host, dir, out) ->
                    dev.thaw.measure.RemoteRestoreBenchmark.run(config.apply(guest, dir), host.guest().orElseThrow(),
                            host.qemuVersion().orElseThrow(), host.accel(), out));
            bench.out().println();
            for (var r : reports) bench.out().println(dev.thaw.measure.RemoteRestoreBenchmark.markdown(r));
            bench.writeJson(reports);
            return 0;
        }
    }

    /** One study on one guest. */
    private interface Study<R> {
        R run(DemoGuest guest, HostDoctor.Report host, Path workDir, PrintStream out) throws Exception;
    }

    /** Runs a study on the bench's guest of each size, in a directory of its own in the work directory, removed afterwards. */
    private static <R> List<R> perGuest(BenchCommand bench, String study, Study<R> run) throws Exception {
        PrintStream out = bench.out();
        HostDoctor.Report host = HostDoctor.ensureReady(System.err);
        List<R> reports = new ArrayList<>();
        try (BenchCommand.RunDir runDir = new BenchCommand.RunDir(bench.dir())) {
            Path dir = runDir.path();
            for (long size : bench.sizes) {
                for (DemoGuest.Layout layout : bench.layouts) { // W as the bench's guest of this size; the layout as --layout says
                    DemoGuest guest = BenchCommand.benchGuest(size, layout);
                    out.printf("%s, guest %d MiB RAM, T=%d MiB, W=%d MiB %s ...%n", study, size, guest.totalMiB(), guest.wsMiB(), layout.key());
                    reports.add(run.run(guest, host, dir, out));
                }
            }
        }
        return reports;
    }
}
