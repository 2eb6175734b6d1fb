package dev.thaw.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import dev.thaw.testing.TestHost;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/**
 * {@code thaw bench --modes --json} end to end, in-process, on a small guest and one repetition: every restore method
 * runs, is observed, and appears in the one JSON object on standard output, the markdown file and the plots.
 */
class BenchCommandTest {
    static final List<String> METHODS = List.of("QEMU_EAGER", "QEMU_LOADVM", "MAPPED_FILE", "THAW_EAGER", "THAW_LAZY",
            "THAW_LAZY_ADDRESS_ORDER", "WS_LEARNED", "WS_DIRTY", "WS_TRACE");

    @Test
    void everyRestoreMethodIsMeasuredAndReported(@TempDir Path dir) throws Exception {
        TestHost.report();
        ByteArrayOutputStream captured = new ByteArrayOutputStream();
        PrintStream original = System.out;
        int exit;
        System.setOut(new PrintStream(captured, true, StandardCharsets.UTF_8));
        try {
            exit = ThawCli.withEverySubcommand().execute("bench", "--sizes", "512", "--ws-mib", "32", "--repeat", "1", "--modes",
                    "--trace-seconds", "2", "--live-seconds", "5", "--json",
                    "--methods", String.join(",", METHODS.stream().map(m -> dev.thaw.measure.RestoreMethod.valueOf(m).key()).toList()), "--markdown", dir.resolve("bench.md").toString(),
                    "--plots", dir.resolve("plots").toString(), "--work-dir", dir.resolve("work").toString());
        } finally {
            System.setOut(original);
        }
        String out = captured.toString(StandardCharsets.UTF_8);
        assertThat(exit).as(out).isZero();
        JsonNode report = Json.MAPPER.readTree(out).path("reports").get(0);
        assertThat(report.path("memoryMiB").asLong()).isEqualTo(512);
        JsonNode sample = report.path("samples").get(0);
        assertThat(sample.path("opsPerSecondBefore").asDouble()).isPositive();
        assertThat(sample.path("vcpuShareBefore").asDouble()).as("wsbench keeps its vCPU busy").isBetween(0.3, 1.05);
        assertThat(sample.path("saves").path("snapshotFileBytes").asLong()).isPositive();
        List<String> methods = new ArrayList<>();
        for (JsonNode r : sample.path("restores")) {
            String m = r.path("method").asText();
            methods.add(m);
            assertThat(r.path("runningSeconds").asDouble()).as(m).isPositive();
            assertThat(r.path("after").path("relativeThroughput").asDouble()).as(m + " work after the restore").isPositive();
            assertThat(r.path("residentMiBPerStep").size()).as(m).isPositive();
            assertThat(r.path("hostSide").isNull()).as(m + ": a host-side estimate exactly where Thaw sees the faults")
                    .isEqualTo(m.equals("MAPPED_FILE"));
            assertThat(r.path("hostVcpu").path("stalledPerStep").size()).as(m + " vCPU-time estimate").isPositive();
            assertThat(r.path("postcopy").isNull()).as(m).isEqualTo(!m.startsWith("THAW_LAZY") && !m.startsWith("WS_"));
        }
        assertThat(sample.path("failures")).as("failed restores").isEmpty();
        assertThat(methods).containsExactlyInAnyOrderElementsOf(METHODS);
        JsonNode mapped = find(sample, "MAPPED_FILE");
        JsonNode eager = find(sample, "THAW_EAGER");
        // The mapped file's guest holds only what it touched; an eager restore places every non-zero page.
        assertThat(last(mapped.path("residentMiBPerStep"))).isLessThan(last(eager.path("residentMiBPerStep")));
        assertThat(find(sample, "THAW_LAZY").path("postcopy").path("demandFaults").asLong()).isPositive();
        String markdown = Files.readString(dir.resolve("bench.md"));
        assertThat(markdown).contains("QEMU loadvm", "mapped RAM file", "Thaw ws (trace)", "host-side TTR estimate");
        try (var plots = Files.list(dir.resolve("plots"))) {
            assertThat(plots.map(p -> p.getFileName().toString()).toList()).containsExactlyInAnyOrder("restore-utilization-512M-W32.png",
                    "restore-stalled-512M-W32.png", "restore-vcpu-stalled-512M-W32.png", "restore-mmu-512M-W32.png", "restore-vcpu-queued-512M-W32.png",
                    "restore-resident-512M-W32.png");
        }
        assertThat(markdown).contains("MMU(0.5 s)", "MMU(5.0 s)");

        // --replot reads the JSON back and gives the same tables, and the plots again, without running anything.
        Path json = dir.resolve("bench.json");
        Files.writeString(json, out);
        int replotted = ThawCli.withEverySubcommand().execute("bench", "--replot", json.toString(), "--markdown",
                dir.resolve("again.md").toString(), "--plots", dir.resolve("again").toString());
        assertThat(replotted).isZero();
        assertThat(Files.readString(dir.resolve("again.md"))).isEqualTo(markdown);
        try (var plots = Files.list(dir.resolve("again"))) {
            assertThat(plots.count()).isEqualTo(6);
        }
    }

    @Test
    void anUnknownMethodIsRefusedBeforeAnythingRuns() {
        assertThat(refused("bench", "--modes", "--methods", "thaw-lazy,thaw-lazzy"))
                .contains("--methods", "expected one of", "thaw-lazy-address-order", "actual 'thaw-lazzy'");
    }

    @Test
    void anObservationShorterThanTtrsWindowIsRefusedBeforeAnythingRuns() {
        assertThat(refused("bench", "--modes", "--observe-seconds", "0")).contains("--observe-seconds", "expected at least 1", "actual 0");
    }

    @Test
    void anUnknownLayoutIsRefusedNamingTheOption() {
        assertThat(refused("bench", "--modes", "--layout", "contiguous,scatterd")).contains("--layout", "actual 'scatterd'");
        assertThat(refused("bench", "--modes", "--app", "redis", "--layout", "scattered")).contains("--layout", "wsbench");
        assertThat(refused("bench", "estimators", "--layout", "scattered")).as("the studies' guests are contiguous").contains("--layout");
    }

    @Test
    void postgresIsRefusedQemusLoadvmBeforeAnythingRuns() {
        assertThat(refused("bench", "--app", "postgres", "--modes", "--methods", "thaw-eager,qemu-loadvm"))
                .contains("--methods", "expected no qemu-loadvm with --app postgres", "snapshot the guest's disk");
        assertThat(refused("bench", "--app", "postgre")).contains("--app", "expected wsbench, redis or postgres", "actual 'postgre'");
    }

    /** What the command line says when it refuses these arguments (exit code 2, as picocli does for a bad option). */
    private static String refused(String... args) {
        java.io.StringWriter err = new java.io.StringWriter();
        CommandLine cli = ThawCli.withEverySubcommand();
        cli.setErr(new java.io.PrintWriter(err));
        assertThat(cli.execute(args)).as(err.toString()).isEqualTo(2);
        return err.toString();
    }

    @Test
    void theOtherStudiesAreSubcommands() {
        java.io.StringWriter err = new java.io.StringWriter();
        CommandLine cli = ThawCli.withEverySubcommand();
        cli.setErr(new java.io.PrintWriter(err));
        assertThat(cli.execute("bench", "--steady-state")).isEqualTo(2);
        assertThat(err.toString()).contains("Unknown option: '--steady-state'");
        CommandLine bench = cli.getSubcommands().get("bench");
        assertThat(bench.getSubcommands().keySet()).containsExactly("steady-state", "calibrate-ttr", "estimators", "clones", "remote");
        // The bench's shared options are taken after a study's name too.
        CommandLine.ParseResult parsed = cli.parseArgs("bench", "estimators", "--sizes", "512", "--trace-seconds", "2");
        BenchCommand parent = parsed.subcommand().commandSpec().commandLine().getCommand();
        assertThat(parent.sizes).containsExactly(512L);
        assertThat(parent.traceSeconds).isEqualTo(2);
    }

    @Test
    void theDemoIsAPresetOfTheBenchAndTheCommandItPrintsMeasuresTheSame() {
        for (String[] demoArgs : List.of(new String[0], new String[] {"--memory-mib", "1024", "--total-mib", "640", "--ws-mib", "96",
                "--layout", "scattered", "--seconds", "7", "--close-runs", "1", "--warm", "--background-mbps", "300", "--preempt",
                "--no-whole-regions"})) {
            CommandLine.ParseResult demoParsed = ThawCli.withEverySubcommand().parseArgs(prepend("demo", demoArgs));
            DemoCommand demo = demoParsed.subcommand().commandSpec().commandLine().getCommand();
            dev.thaw.measure.Demo.Config preset = new dev.thaw.measure.Demo.Config(demo.shape.toGuest(), java.time.Duration.ofSeconds(demo.seconds),
                    Path.of("/nonexistent/image"), java.util.function.UnaryOperator.identity(), PostcopyTuning.given(demo.spec.commandLine()),
                    demo.warm ? dev.thaw.measure.CacheState.WARM : dev.thaw.measure.CacheState.EVICTED, demo.closeRuns);
            String equivalent = preset.benchEquivalent();
            assertThat(equivalent).startsWith("thaw bench ");
            CommandLine.ParseResult parsed = ThawCli.withEverySubcommand().parseArgs(equivalent.substring("thaw ".length()).split(" "));
            BenchCommand bench = parsed.subcommand().commandSpec().commandLine().getCommand();
            dev.thaw.measure.SaveRestoreBenchmark.Config config = preset.bench(Path.of("/nonexistent/work"));
            assertThat(bench.sizes).as(equivalent).containsExactly(config.workload().memoryMiB());
            assertThat(bench.totalMiB).isEqualTo(config.workload().totalMiB());
            assertThat(bench.wsMiB).containsExactly(config.workload().wsMiB());
            assertThat(bench.layouts).extracting(dev.thaw.guest.DemoGuest.Layout::key).containsExactly(config.workload().layout());
            assertThat(bench.repeat).isEqualTo(config.repetitions());
            assertThat(bench.modes).isEqualTo(config.allMethods()).isTrue();
            assertThat(bench.methods()).isEqualTo(config.methods());
            assertThat(bench.cache()).isEqualTo(config.cache());
            assertThat(java.time.Duration.ofSeconds(bench.traceSeconds)).isEqualTo(config.trace());
            assertThat(java.time.Duration.ofSeconds(bench.liveSeconds)).isEqualTo(config.liveLimit());
            assertThat(java.time.Duration.ofSeconds(bench.observeSeconds)).isEqualTo(config.observe());
            assertThat(bench.checkMemory).isEqualTo(config.checks().memory()).isTrue();
            assertThat(bench.closeRuns).isEqualTo(config.checks().closeRuns()).isEqualTo(demo.closeRuns);
            // The same lazy/ws tuning: every option the demo was given, and nothing else.
            dev.thaw.restore.PostcopyRestore.Options base = dev.thaw.restore.PostcopyRestore.Options.ws("t", List.of(), List.of());
            assertThat(bench.tuning.applyTo(base)).isEqualTo(demo.tuning.applyTo(base));
            assertThat(PostcopyTuning.given(parsed.subcommand().commandSpec().commandLine())).isEqualTo(PostcopyTuning.given(demo.spec.commandLine()));
        }
    }

    @Test
    void theClonesStudyRefusesABadCountOrAMethodWithoutClonesBeforeAnythingBoots() {
        for (String[] args : List.of(new String[] {"bench", "clones", "--counts", "0"}, new String[] {"bench", "clones", "--clone-methods", "qemu-eager"},
                new String[] {"bench", "clones", "--clone-methods", "nonsense"})) {
            java.io.StringWriter err = new java.io.StringWriter();
            CommandLine cli = ThawCli.withEverySubcommand();
            cli.setErr(new java.io.PrintWriter(err));
            assertThat(cli.execute(args)).as(String.join(" ", args)).isEqualTo(2);
            assertThat(err.toString()).as(String.join(" ", args)).contains("expected");
        }
        // The bench's cache and observation options are taken after the study's name too.
        CommandLine.ParseResult parsed = ThawCli.withEverySubcommand().parseArgs("bench", "clones", "--evict", "--observe-seconds", "7");
        BenchCommand parent = parsed.subcommand().commandSpec().commandLine().getCommand();
        assertThat(parent.cache()).isEqualTo(dev.thaw.measure.CacheState.EVICTED);
        assertThat(parent.observeSeconds).isEqualTo(7);
    }

    @Test
    void memoryChecksAndCloseRunsNeedObservedRestoresOfWsbench() {
        for (String[] args : List.of(new String[] {"bench", "--check-memory"}, new String[] {"bench", "--close-runs", "3"},
                new String[] {"bench", "--modes", "--check-memory", "--app", "redis"}, new String[] {"bench", "--modes", "--close-runs", "10"})) {
            java.io.StringWriter err = new java.io.StringWriter();
            CommandLine cli = ThawCli.withEverySubcommand();
            cli.setErr(new java.io.PrintWriter(err));
            assertThat(cli.execute(args)).as(String.join(" ", args)).isEqualTo(2);
            assertThat(err.toString()).as(String.join(" ", args)).containsAnyOf("expected --modes", "expected --app wsbench", "expected 1..9");
        }
    }

    private static String[] prepend(String first, String[] rest) {
        String[] all = new String[rest.length + 1];
        all[0] = first;
        System.arraycopy(rest, 0, all, 1, rest.length);
        return all;
    }

    private static JsonNode find(JsonNode sample, String method) {
        for (JsonNode r : sample.path("restores")) if (r.path("method").asText().equals(method)) return r;
        throw new AssertionError("no restore by " + method);
    }

    private static double last(JsonNode steps) {
        return steps.get(steps.size() - 1).asDouble();
    }
}
