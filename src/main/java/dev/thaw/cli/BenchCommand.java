package dev.thaw.cli;

import dev.thaw.guest.DemoGuest;
import dev.thaw.guest.GuestBuilder;
import dev.thaw.guest.PostgresGuest;
import dev.thaw.guest.RedisGuest;
import dev.thaw.host.HostDoctor;
import dev.thaw.measure.RestoreMethod;
import dev.thaw.measure.CacheState;
import dev.thaw.measure.SaveRestoreBenchmark;
import dev.thaw.measure.SaveRestoreTables;
import dev.thaw.measure.Workload;
import dev.thaw.util.FileTrees;
import dev.thaw.util.ThawPaths;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.ScopeType;
import picocli.CommandLine.Spec;

@Command(name = "bench", mixinStandardHelpOptions = true,
        description = {"Benchmark saves and restores against QEMU's own.",
                "Measures Thaw's save and eager restore against QEMU's own (migrate to a file,",
                "-incoming \"exec:cat FILE\") on the same running demo guest, interleaved, per guest size and",
                "working set. With --modes every restore method, each restored guest observed (--observe-seconds): QEMU eager,",
                "QEMU loadvm (qcow2 internal snapshot), kernel demand paging of a mapped RAM file, Thaw eager,",
                "lazy, and ws with each estimator (learned, dirty, trace). Prints markdown tables (min / median),",
                "with --markdown also to a file, and with --json the samples. Instead of the comparison:",
                "bench steady-state, bench calibrate-ttr, bench estimators, bench clones."},
        subcommands = {BenchStudies.SteadyState.class, BenchStudies.CalibrateTtr.class, BenchStudies.Estimators.class, BenchStudies.ClonesStudy.class, BenchStudies.Remote.class})
final class BenchCommand implements Callable<Integer> {
    @Spec // errors in arguments are reported through the command line that runs this command (its streams, its usage)
    picocli.CommandLine.Model.CommandSpec spec;

    @Option(names = "--sizes", split = ",", scope = ScopeType.INHERIT, defaultValue = "1024,4096", description = "Guest RAM sizes in MiB (default ${DEFAULT-VALUE}).")
    List<Long> sizes;

    @Option(names = "--ws-mib", split = ",", defaultValue = "64,256",
            description = "Working sets of the guest's workload in MiB, each run per size (default ${DEFAULT-VALUE}).")
    List<Long> wsMiB;

    @Option(names = "--layout", split = ",", defaultValue = "contiguous", converter = GuestShape.LayoutConverter.class,
            description = "wsbench: where its working set lies, each run per size and working set: contiguous (the first W MiB),"
                    + " scattered (W/T of its 4 KiB pages at random, spread evenly) (default ${DEFAULT-VALUE}).")
    List<DemoGuest.Layout> layouts;

    @Option(names = "--app", defaultValue = "wsbench", description = "What the guest runs: wsbench (the project's workload, which reports"
            + " its own progress), redis (Redis from Debian, timed by a client on the host over user networking) or postgres (PostgreSQL 15"
            + " on the guest's own Debian disk, timed by a JDBC client on the host; its T and W are 0, --ws-mib is ignored, and"
            + " qemu-loadvm is not among its methods) (default ${DEFAULT-VALUE}).")
    String app;

    @Option(names = "--dataset-mib", description = "--app redis: the data Redis holds (default: 3/8 of the guest's RAM); --ws-mib is the part"
            + " the client reads.")
    Long datasetMiB;

    @Option(names = "--live-seconds", scope = ScopeType.INHERIT, defaultValue = "10", description = "--modes: the live probe's limit for ws (dirty) (default ${DEFAULT-VALUE}).")
    int liveSeconds;

    @Option(names = "--markdown", description = "Also write the tables to this markdown file.")
    Path markdown;

    @Option(names = "--methods", split = ",", description = "--modes: only these restore methods (default: all but the ablation"
            + " thaw-lazy-address-order): qemu-eager, qemu-loadvm, mapped-file, thaw-eager, thaw-lazy, thaw-lazy-address-order,"
            + " ws-learned (learns from thaw-lazy), ws-dirty, ws-trace, ws-trace-mapped (restore --mode mapped with the trace"
            + " estimate); trials: ws-dirty-normal-priority, ws-dirty-preempt, ws-dirty-whole, ws-dirty-half, ws-dirty-quiet,"
            + " ws-trace-quiet, ws-trace-unpaced (the rest of memory at full speed while the guest computes too), ws-trace-streamed, ws-trace-quarter, ws-trace-whole-regions (restore --whole-regions), ws-trace-placed (restore --placed-prefetch), ws-trace-hugetlb and thaw-lazy-hugetlb (restore --hugetlb), ws-trace-hugetlb-whole (--hugetlb --ws-fraction 1), ws-trace-small-pages (restore --guest-ram 4k: Thaw's ws restores choose their guest RAM as restore does), ws-trace-idle-priority (the background at SCHED_IDLE even where the guests fill the host; for bench clones), ws-dirty-hugetlb,"
            + " ws-dirty-mapped.")
    List<String> methods;

    @Option(names = "--observe-seconds", scope = ScopeType.INHERIT, defaultValue = "5", description = "--modes: how long each restored guest is observed after it"
            + " runs, for TTR, MMU and its work (default ${DEFAULT-VALUE}; TTR not reached by then is reported as '> N').")
    int observeSeconds;

    @Option(names = "--repeat", defaultValue = "3", description = "Repetitions per size (default ${DEFAULT-VALUE}).")
    int repeat;

    @Option(names = "--cold", scope = ScopeType.INHERIT, description = "Drop the host page cache before every restore and wait 3 s, so that the freed memory is back with the hypervisor where it takes it back (root only).")
    boolean cold;

    @Option(names = "--evict", scope = ScopeType.INHERIT, description = "Evict the saved files (Thaw's image and RAM file, QEMU's stream and qcow2) from the page"
            + " cache before every restore, as the demo does; QEMU and the guest kernel stay cached.")
    boolean evict;

    @Option(names = "--modes", description = "Every restore method, each restored guest observed (TTR, MMU, host-side estimate,"
            + " memory restored over time, bytes read from storage).")
    boolean modes;

    @Option(names = "--plots", description = "--modes: write PNG plots into this directory, per guest: the work after each restore"
            + " method, the share of time stalled (host side) and QEMU's resident memory over time.")
    Path plots;

    @Option(names = "--trace-seconds", defaultValue = "5", scope = ScopeType.INHERIT, description = "--modes, estimators: the post-save trace period"
            + " (default ${DEFAULT-VALUE}).")
    int traceSeconds;

    @Option(names = "--work-dir", scope = ScopeType.INHERIT, description = "Where images and QEMU's files go, in a directory of this run's"
            + " own that is removed afterwards (default: bench/ in the cache).")
    Path workDir;

    @Option(names = "--json", arity = "0..1", fallbackValue = "-", scope = ScopeType.INHERIT,
            description = "Write all samples as one JSON object to this file, or with no file to standard output (the tables then go to"
                    + " standard error).")
    String json;

    @Option(names = "--replot", description = "Instead: read the JSON of an earlier run (--json FILE) and print its tables again, with"
            + " --plots DIR its plots too; nothing is run.")
    Path replot;

    @Option(names = "--quick", description = "A quick comparison of every restore method: 1 GiB, W=64 MiB, 2 repetitions, --modes.")
    boolean quick;

    @Option(names = "--total-mib", description = "wsbench: its region T in MiB, for every size (default: the guest's RAM - 384).")
    Long totalMiB;

    @Option(names = "--check-memory", description = "--modes, wsbench: checksum the part of wsbench's region it never writes after its"
            + " fill before each save and in every restored guest (after its observation); postgres: the client's rows committed before"
            + " the save (count, largest id, MD5) and pg_amcheck --heapallindexed, the same; a restore that lost memory or rows shows as"
            + " DIFFERENT and the command fails.")
    boolean checkMemory;

    @Option(names = "--close-runs", defaultValue = "1", description = "--modes: runs of ws (trace) and of each baseline whose first stall"
            + " TTR came within 0.15 s of ws's (or beat it), interleaved after each repetition's pass (default ${DEFAULT-VALUE}: none"
            + " again; the demo runs 3).")
    int closeRuns;

    @Option(names = "--huge-page-pool", defaultValue = "auto", scope = ScopeType.INHERIT, description = PoolOption.DESCRIPTION)
    String hugePagePool;

    @picocli.CommandLine.Mixin
    PostcopyTuning tuning;

    CacheState cache() {
        if (cold && evict) throw new picocli.CommandLine.ParameterException(spec.commandLine(), "--cold and --evict: expected one of them, actual both");
        return cold ? CacheState.COLD : evict ? CacheState.EVICTED : CacheState.WARM;
    }

    @Override
    public Integer call() throws Exception {
        PrintStream out = out();
        if (quick) {
            sizes = List.of(1024L);
            wsMiB = List.of(64L);
            repeat = 2;
            modes = true;
        }
        if (!Set.of("wsbench", "redis", "postgres").contains(app)) {
            throw new picocli.CommandLine.ParameterException(spec.commandLine(), "--app: expected wsbench, redis or postgres, actual '" + app + "'");
        }
        Set<RestoreMethod> chosenMethods = methods(); // a bad name fails here, before anything runs
        if ("postgres".equals(app)) {
            if (methods != null && chosenMethods.contains(RestoreMethod.QEMU_LOADVM)) {
                throw new picocli.CommandLine.ParameterException(spec.commandLine(), "--methods: expected no qemu-loadvm with --app postgres"
                        + " (savevm would snapshot the guest's disk too, and loadvm roll it back), actual qemu-loadvm");
            }
            chosenMethods.remove(RestoreMethod.QEMU_LOADVM);
            wsMiB = List.of(0L); // one run per size: the guest has no working set of a chosen size
        }
        if (observeSeconds < 1) {
            throw new picocli.CommandLine.ParameterException(spec.commandLine(),
                    "--observe-seconds: expected at least 1 (TTR's window), actual " + observeSeconds);
        }
        Duration observe = Duration.ofSeconds(observeSeconds);
        tuning.validate();
        try {
            SaveRestoreBenchmark.requireCloseRuns(closeRuns);
        } catch (IllegalArgumentException e) {
            throw new picocli.CommandLine.ParameterException(spec.commandLine(), e.getMessage());
        }
        if ((checkMemory || closeRuns > 1) && !modes) {
            throw new picocli.CommandLine.ParameterException(spec.commandLine(),
                    "--check-memory and --close-runs: expected --modes (every chosen method observed), actual the eager pair only");
        }
        if (checkMemory && "redis".equals(app)) {
            throw new picocli.CommandLine.ParameterException(spec.commandLine(),
                    "--check-memory: expected --app wsbench or postgres (wsbench's memory, PostgreSQL's rows), actual --app " + app);
        }
        SaveRestoreBenchmark.Checks checks = new SaveRestoreBenchmark.Checks(checkMemory, closeRuns, null, tuning::applyTo);
        if (!"wsbench".equals(app) && !layouts.equals(List.of(DemoGuest.Layout.CONTIGUOUS))) {
            throw new picocli.CommandLine.ParameterException(spec.commandLine(),
                    "--layout: expected only contiguous with --app " + app + " (the layout is wsbench's), actual " + layouts.stream().map(DemoGuest.Layout::key).toList());
        }
        if (replot != null) {
            SaveRestoreBenchmark.Report[] earlier = Json.MAPPER.treeToValue(Json.MAPPER.readTree(replot.toFile()).path("reports"),
                    SaveRestoreBenchmark.Report[].class);
            if (earlier == null || earlier.length == 0) {
                throw new picocli.CommandLine.ParameterException(spec.commandLine(),
                        "--replot: expected a JSON object with \"reports\" from 'thaw bench --json FILE', actual none in " + replot);
            }
            report(List.of(earlier), out);
            return 0;
        }
        HostDoctor.Report host = HostDoctor.ensureReady(System.err);
        List<SaveRestoreBenchmark.Report> reports = new ArrayList<>();
        try (RunDir run = new RunDir(dir()); AutoCloseable pool = PoolOption.hold(hugePagePool, java.util.Collections.max(sizes), out)) {
            Path dir = run.path();
            for (long size : sizes) {
                for (long ws : wsMiB) for (DemoGuest.Layout layout : layouts) {
                    Workload guest = workload(size, ws, layout, dir);
                    out.printf("%s guest %d MiB RAM, T=%d MiB, W=%d MiB%s, %d repetitions%s ...%n", guest.label(), size, guest.totalMiB(),
                            guest.wsMiB(), guest.layout() == null ? "" : " " + guest.layout(), repeat, cache() == CacheState.WARM ? "" : ", " + cache().label());
                    reports.add(SaveRestoreBenchmark.run(new SaveRestoreBenchmark.Config(guest, repeat, cache(), dir, modes,
                                    Duration.ofSeconds(traceSeconds), Duration.ofSeconds(liveSeconds), chosenMethods, observe, checks), host.guest().orElseThrow(),
                            host.qemuVersion().orElseThrow(), host.accel(), out));
                }
            }
        }
        report(reports, out);
        if (json != null) {
            writeJson(java.util.Map.of("reports", reports));
        }
        return checkMemory && !SaveRestoreTables.memoryIntact(reports) ? 1 : 0;
    }

    Set<RestoreMethod> methods() {
        if (methods == null || methods.isEmpty()) return RestoreMethod.defaults();
        Set<RestoreMethod> chosen = EnumSet.noneOf(RestoreMethod.class);
        try {
            for (String key : methods) chosen.add(RestoreMethod.parse(key.trim()));
        } catch (IllegalArgumentException e) {
            throw new picocli.CommandLine.ParameterException(spec.commandLine(), "--methods: " + e.getMessage());
        }
        return chosen;
    }

    /** The tables (to {@code out} and --markdown) and the plots (--plots) of these reports. */
    private void report(List<SaveRestoreBenchmark.Report> reports, PrintStream out) throws java.io.IOException {
        boolean observed = SaveRestoreTables.observed(reports);
        String tables = SaveRestoreTables.all(reports);
        out.println();
        out.print(tables);
        if (markdown != null) Files.writeString(markdown, tables);
        if (observed && plots != null) {
            for (SaveRestoreBenchmark.Report r : reports) {
                for (Path png : SaveRestoreTables.plots(r, plots)) out.println("plot: " + png);
            }
        }
    }

    private Workload workload(long sizeMiB, long wsMiB, DemoGuest.Layout layout, Path runDir) {
        return switch (app) {
            case "wsbench" -> new Workload.Wsbench(new DemoGuest(sizeMiB, totalMiB != null ? totalMiB : sizeMiB - 384, wsMiB, layout));
            case "redis" -> new Workload.Redis(RedisGuest.of(sizeMiB, datasetMiB != null ? datasetMiB : sizeMiB * 3 / 8, wsMiB));
            case "postgres" -> new Workload.Postgres(new PostgresGuest(sizeMiB), PostgresGuest.bootDisk(
                    GuestBuilder.buildPostgresDisk(System.err), runDir.resolve("postgres-disks"), "thaw-bench-postgres-" + sizeMiB));
            default -> throw new IllegalStateException("--app " + app + ": checked before anything runs");
        };
    }

    /** With JSON on standard output, everything else goes to standard error so that stdout is one JSON object. */
    PrintStream out() {
        return "-".equals(json) ? System.err : System.out;
    }

    /** Where the runs' directories go ({@link RunDir}). */
    Path dir() {
        return workDir != null ? workDir : ThawPaths.cacheDir().resolve("bench");
    }

    /**
     * A directory of one run's own in the work directory, removed when the run ends, on Ctrl-C and SIGTERM too (a shutdown
     * hook): a bench killed mid-run once left an image behind that the next run, using the same names, refused to overwrite
     * (its save failed); and a --work-dir holding anything else is never emptied.
     */
    static final class RunDir implements AutoCloseable {
        private final Path path;
        private final Thread cleanup;

        RunDir(Path workDir) throws java.io.IOException {
            dev.thaw.util.OwnerOnly.createDirectories(workDir);
            path = Files.createTempDirectory(workDir, "run-", dev.thaw.util.OwnerOnly.DIRECTORY);
            cleanup = new Thread(() -> FileTrees.deleteQuietly(path), "bench-run-dir-cleanup");
            Runtime.getRuntime().addShutdownHook(cleanup);
        }

        Path path() {
            return path;
        }

        @Override
        public void close() {
            FileTrees.deleteQuietly(path);
            try {
                Runtime.getRuntime().removeShutdownHook(cleanup);
            } catch (IllegalStateException e) {
                // Shutting down already: the hook runs (or ran) anyway.
            }
        }
    }

    /** The bench's guest of a size: T leaves the guest kernel room; W as in the restore baselines (64 MiB per GiB, at least 64). */
    static DemoGuest benchGuest(long sizeMiB) {
        return benchGuest(sizeMiB, DemoGuest.Layout.CONTIGUOUS);
    }

    /** The same with its working set laid out as {@code --layout} says. */
    static DemoGuest benchGuest(long sizeMiB, DemoGuest.Layout layout) {
        return new DemoGuest(sizeMiB, sizeMiB - 384, Math.max(64, sizeMiB / 16), layout);
    }

    /** Nothing without --json; otherwise to the file, or "-" (--json alone) to standard output. */
    void writeJson(Object value) throws java.io.IOException {
        if (json == null) return;
        if ("-".equals(json)) System.out.println(Json.write(value));
        else Files.writeString(Path.of(json), Json.write(value));
    }
}
