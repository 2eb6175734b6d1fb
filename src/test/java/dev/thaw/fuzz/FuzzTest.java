package dev.thaw.fuzz;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.fail;

import dev.thaw.cluster.checkpoint.CheckpointFuzzTargets;
import dev.thaw.cluster.net.NetFuzzTargets;
import dev.thaw.image.ImageFuzzTargets;
import dev.thaw.migration.MigrationFuzzTargets;
import dev.thaw.qemu.QemuFuzzTargets;
import dev.thaw.restore.RestoreFuzzTargets;
import dev.thaw.testing.Seeds;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/**
 * Fuzzes every parser of bytes Thaw did not write in this run, or that may be damaged (see {@link Fuzzer}). By default a
 * short run (a fixed number of cases per target, a few seconds in all); a long one with
 * {@code ./mvnw test -Dtest=FuzzTest -Dthaw.fuzz.seconds=600} (seconds per target), one target with
 * {@code -Dthaw.fuzz.target=NAME}. Replay a run with its printed {@code -Dthaw.seed=S} and {@code -Dthaw.fuzz.cases=N};
 * each finding's input is saved under {@code target/fuzz-findings}, and every run's counts are appended to
 * {@code target/fuzz-report.txt}.
 */
class FuzzTest {
    @TempDir
    static Path work;

    private record Entry(String name, long shortCases, Callable<FuzzTarget> make) {}

    /** Short-run case counts: about 0.5-1.5 s of CPU each on this project's 2-core machines. */
    private static List<Entry> targets() {
        return List.of(
                new Entry("migration-stream", 3_000, MigrationFuzzTargets::saveStream),
                new Entry("return-path", 10_000, RestoreFuzzTargets::returnPath),
                new Entry("image-raw-files", 400, () -> ImageFuzzTargets.rawFiles(work)),
                new Entry("image-manifest", 400, () -> ImageFuzzTargets.manifest(work)),
                new Entry("image-metadata", 500, () -> ImageFuzzTargets.metadata(work)),
                new Entry("image-packs", 400, () -> ImageFuzzTargets.packs(work)),
                new Entry("image-disk-refs", 400, () -> ImageFuzzTargets.diskReferences(work)),
                new Entry("extent-codecs", 10_000, ImageFuzzTargets::codecs),
                new Entry("restore-trace", 1_500, () -> RestoreFuzzTargets.trace(work)),
                new Entry("restore-event-log", 3_000, () -> RestoreFuzzTargets.eventLog(work)),
                new Entry("image-mac", 1_000, () -> ImageFuzzTargets.mac(work)),
                new Entry("vm-config", 2_000, () -> QemuFuzzTargets.vmConfig(work)),
                new Entry("qmp-answers", 10_000, QemuFuzzTargets::qmpAnswers),
                new Entry("cluster-frames", 10_000, CheckpointFuzzTargets::frames),
                new Entry("cluster-manifest", 3_000, () -> CheckpointFuzzTargets.manifest(work)),
                new Entry("tunnel-datagram", 10_000, NetFuzzTargets::tunnelDatagram),
                new Entry("switch-frames", 3_000, NetFuzzTargets::switchFrames));
    }

    @TestFactory
    Stream<DynamicTest> fuzz() {
        long seed = Seeds.random("FuzzTest").nextLong();
        String seconds = System.getProperty("thaw.fuzz.seconds");
        String cases = System.getProperty("thaw.fuzz.cases");
        String only = System.getProperty("thaw.fuzz.target");
        return targets().stream().filter(e -> only == null || e.name().equals(only)).map(e -> DynamicTest.dynamicTest(e.name(), () -> {
            Fuzzer.Budget budget = seconds != null
                    ? new Fuzzer.Budget(cases != null ? Long.parseLong(cases) : Long.MAX_VALUE, Duration.ofSeconds(Long.parseLong(seconds)),
                    Duration.ofSeconds(10))
                    // The time cap only guards CI against a slow machine; the case count makes the run reproducible.
                    : new Fuzzer.Budget(cases != null ? Long.parseLong(cases) : e.shortCases(), Duration.ofSeconds(15), Duration.ofSeconds(5));
            FuzzTarget target = e.make().call();
            assertThat(target.name()).isEqualTo(e.name());
            Fuzzer.Report report = Fuzzer.run(target, seed, budget, Path.of("target", "fuzz-findings"));
            System.out.println(report.summary());
            if (Boolean.getBoolean("thaw.fuzz.verbose")) report.outcomes().forEach((o, n) -> System.out.printf("  %8d  %s%n", n, o));
            record(report);
            if (!report.findings().isEmpty()) {
                fail(report.findings().stream().map(f -> f.signature() + " (case " + f.caseNumber() + ", input " + f.input() + ")\n" + f.detail())
                        .collect(Collectors.joining("\n\n", "fuzz target " + e.name() + " broke its contract; replay with -Dtest=FuzzTest"
                                + " -Dthaw.fuzz.target=" + e.name() + " -Dthaw.seed=<the seed printed above> -Dthaw.fuzz.cases="
                                + report.cases() + "\n", "")));
            }
        }));
    }

    private static void record(Fuzzer.Report report) {
        try {
            Files.createDirectories(Path.of("target"));
            Files.writeString(Path.of("target", "fuzz-report.txt"), report.summary() + "\n", StandardOpenOption.CREATE, StandardOpenOption.APPEND);
        } catch (IOException ignored) {
            // the summary went to standard output already
        }
    }
}
