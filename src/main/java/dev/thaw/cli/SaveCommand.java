package dev.thaw.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.thaw.estimate.Estimator;
import dev.thaw.estimate.WorkingSet;
import dev.thaw.image.Manifest;
import dev.thaw.qemu.QemuVm;
import dev.thaw.qemu.QmpClient;
import dev.thaw.qemu.VmConfig;
import dev.thaw.save.Saver;
import dev.thaw.util.OwnerOnly;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

@Command(name = "save", mixinStandardHelpOptions = true,
        description = {"Save a running QEMU guest into a new image directory.",
                "Saves a running QEMU guest into a checkpoint image directory. Thaw becomes the destination of",
                "QEMU's migrate, stops the guest and writes the image atomically; the guest stays stopped unless",
                "--keep-running. The VM's launch configuration comes from vm.json beside the QMP socket (VMs started",
                "by Thaw have one) or from --vm-config. --estimator stores a working-set estimate in the image",
                "(thaw ws shows it; thaw restore --mode ws uses it)."})
final class SaveCommand implements Callable<Integer> {
    @Option(names = "--qmp", required = true, description = "The guest QEMU's QMP unix socket.")
    Path qmpSocket;

    @Option(names = "--out", required = true, description = "The image directory to create (must not exist).")
    Path out;

    @Option(names = "--vm-config", description = "The VM's launch configuration (JSON), when there is no vm.json beside the socket.")
    Path vmConfigFile;

    @Option(names = "--keep-running", description = "Resume the guest after the save (a checkpoint); default: leave it stopped.")
    boolean keepRunning;

    @Option(names = "--json", description = "Print the result as one JSON object.")
    boolean json;

    @Option(names = "--estimator", defaultValue = "none", split = ",",
            description = "Working-set estimator: dirty (a live migration probe first: pages the guest rewrote during it, latest first; the"
                    + " image still comes from the stopped guest), trace (after"
                    + " the save the guest goes on in a new QEMU restored lazily from the image; the order it faults pages in),"
                    + " dirty,trace (the trace's queue, sized by HotRestore's hybrid of both), abit (accessed bits before the save;"
                    + " needs host idle page tracking), none (default).")
    java.util.List<String> estimators;

    @Option(names = "--trace-seconds", defaultValue = "5", description = "trace: how long to trace the guest's first touches (default ${DEFAULT-VALUE}).")
    int traceSeconds;

    @Option(names = "--abit-seconds", defaultValue = "5",
            description = "abit: how long to scan accessed bits before the save (default ${DEFAULT-VALUE}).")
    int abitSeconds;

    @Option(names = "--abit-interval-ms", defaultValue = "500", description = "abit: the scan interval (default ${DEFAULT-VALUE}).")
    int abitIntervalMillis;

    @Option(names = "--exit", description = "trace: stop the guest once the trace is stored instead of staying attached to its new QEMU.")
    boolean exit;

    @Option(names = "--live-seconds", defaultValue = "10",
            description = "dirty: stop the guest after this many seconds of live probe if QEMU has not converged (default ${DEFAULT-VALUE}).")
    int liveSeconds;

    @Mixin
    ImageOptions imageOptions;

    /** Scans the guest RAM's accessed bits for --abit-seconds before the save (the access-bit estimator). */
    private WorkingSet scanAccessBits(VmConfig config, Progress progress) throws InterruptedException {
        String socket = qmpSocket.toAbsolutePath().toString();
        long pid = ProcessHandle.allProcesses().filter(p -> p.info().commandLine().map(c -> c.contains(socket)).orElse(false))
                .mapToLong(ProcessHandle::pid).findFirst().orElseThrow(() -> new IllegalArgumentException(
                        "--estimator abit: expected a local QEMU process whose command line names " + socket + ", actual none"));
        long ramBytes = config.memoryMiB() << 20;
        long start = dev.thaw.restore.HugePages.guestRamMapping(pid, ramBytes).orElseThrow(() -> new IllegalStateException(
                "--estimator abit: QEMU pid " + pid + " has no mapping of " + ramBytes + " bytes (its guest RAM)")).start();
        int pages = (int) (ramBytes / 4096);
        dev.thaw.estimate.AccessRecency recency = new dev.thaw.estimate.AccessRecency(new int[] {pages});
        try (dev.thaw.host.AccessBitScanner scanner = dev.thaw.host.AccessBitScanner.forProcess(pid, start, pages)) {
            scanner.mark();
            long end = System.nanoTime() + Duration.ofSeconds(abitSeconds).toNanos();
            while (System.nanoTime() < end) {
                Thread.sleep(abitIntervalMillis);
                recency.scan(new java.util.BitSet[] {scanner.scan()});
                progress.update(String.format("scanning accessed bits: %d scans, %d pages per interval", recency.scanCount(),
                        recency.sampledPageCount()));
            }
        }
        return recency.estimate(recency.scanCount());
    }

    record SaveReport(String image, String imageId, long streamBytes, double seconds, double downtimeSeconds, boolean guestRunning,
                      Manifest.Stats stats, String estimator, int rounds, Integer workingSetPages, Long estimatedWorkingSetPages,
                      String tracedQmpSocket) {}

    @Override
    public Integer call() throws IOException, InterruptedException {
        // Arguments first: a wrong estimator is reported before anything touches the VM.
        java.util.Set<Estimator> chosen = java.util.EnumSet.noneOf(Estimator.class);
        for (String e : estimators) chosen.add(Estimator.parse(e.strip()));
        if (chosen.contains(Estimator.ABIT)) {
            dev.thaw.host.IdlePageTracking.unavailableReason().ifPresent(why -> {
                throw new IllegalArgumentException("--estimator abit: " + why);
            });
            if (chosen.contains(Estimator.DIRTY)) throw new IllegalArgumentException("--estimator: abit and dirty are both samples; choose one");
            if (abitSeconds < 1 || abitIntervalMillis < 10) {
                throw new IllegalArgumentException("--abit-seconds / --abit-interval-ms: expected >= 1 s and >= 10 ms, actual "
                        + abitSeconds + " s, " + abitIntervalMillis + " ms");
            }
        }
        if (chosen.contains(Estimator.LEARNED)) {
            throw new IllegalArgumentException("--estimator learned: a working set is learned from restores (thaw ws --learn), not at save time");
        }
        if (chosen.contains(Estimator.NONE) && chosen.size() > 1) {
            throw new IllegalArgumentException("--estimator: 'none' excludes the others, actual " + estimators);
        }
        boolean trace = chosen.contains(Estimator.TRACE);
        if (trace && traceSeconds < 1) throw new IllegalArgumentException("--trace-seconds: expected >= 1, actual " + traceSeconds);
        Path configFile = vmConfigFile != null ? vmConfigFile : qmpSocket.toAbsolutePath().getParent().resolve(QemuVm.CONFIG_FILE);
        if (!Files.isRegularFile(configFile)) {
            throw new IllegalArgumentException("the VM's launch configuration is unknown: expected " + configFile
                    + " (VMs started by Thaw have vm.json beside their QMP socket) or --vm-config FILE");
        }
        OwnerOnly.requireTrustedWriters(configFile, "the VM's launch configuration");
        VmConfig config = new ObjectMapper().findAndRegisterModules().readValue(configFile.toFile(), VmConfig.class);
        PrintStream status = json ? System.err : System.out;
        Progress progress = new Progress(status);
        Saver.Options options = Saver.Options.defaults().withImage(imageOptions.toOptions()).withKeepRunning(keepRunning && !trace);
        if (chosen.contains(Estimator.DIRTY)) options = options.withDirtyEstimator(Duration.ofSeconds(liveSeconds));
        java.util.Optional<WorkingSet> sampled = chosen.contains(Estimator.ABIT)
                ? java.util.Optional.of(scanAccessBits(config, progress)) : java.util.Optional.empty();
        Saver.Result result;
        try (QmpClient qmp = QmpClient.connect(qmpSocket, "guest", Duration.ofSeconds(10), () -> true)) {
            result = Saver.save(qmp, config, out, options, p -> progress.update(String.format("saving: %d MiB read, %d pages, %.0f pages/s",
                    p.streamBytes() >> 20, p.pageCount(), p.elapsedNanos() > 0 ? p.pageCount() * 1e9 / p.elapsedNanos() : 0.0)));
            // The guest goes on in a new QEMU restored from the image: the old one must not run the same guest too.
            if (trace) qmp.quit();
        }
        Manifest.Stats s = result.manifest().stats();
        result.workingSet().ifPresent(ws -> status.printf("working set (%s, %d rounds%s): %s%n", ws.estimator().label(), result.rounds(),
                result.stoppedByLimit() ? ", guest stopped at the live limit" : "", ws.description()));
        progress.done(String.format("saved %s in %.2f s (guest stopped for %.2f s): %d pages, %d zero, %d stored, %d duplicate;"
                        + " %d MiB stream -> %d MiB image (compression %.2fx, dedup %.2fx)%s",
                result.image(), result.durationNanos() / 1e9, result.downtimeNanos() / 1e9, s.pageCount(), s.zeroPageCount(),
                s.storedPageCount(), s.duplicatePageCount(), result.streamBytes() >> 20, s.imageFileBytes() >> 20,
                s.compressionRatio(), s.dedupRatio(), result.guestRunning() ? "; guest running again" : "; guest left stopped"));
        java.util.Optional<WorkingSet> ws = result.workingSet();
        if (sampled.isPresent()) {
            // The scan saw pc.ram alone; name its block as the image does.
            int block = result.manifest().ramBlocks().stream().map(dev.thaw.image.Manifest.Block::name).toList().indexOf("pc.ram");
            WorkingSet a = sampled.get();
            ws = java.util.Optional.of(new WorkingSet(a.estimator(), a.entries().stream().map(e -> new WorkingSet.Entry(
                    new dev.thaw.estimate.PageRef(block, e.page().page()), e.firstAccessNanos())).toList(), a.estimatedPageCount(), a.description()));
            dev.thaw.image.WorkingSetWriter.attach(out, ws.get());
            status.println("working set (abit): " + a.description());
        }
        QemuVm traced = null;
        if (trace) {
            status.printf("tracing: the guest goes on from the save point in a new QEMU, restored lazily; its first touches over %d s"
                    + " are the working set%n", traceSeconds);
            try (dev.thaw.image.CheckpointImage img = dev.thaw.image.CheckpointImage.open(out)) {
                dev.thaw.restore.PostSaveTrace.Result t = dev.thaw.restore.PostSaveTrace.run(img, config.name(), Duration.ofSeconds(traceSeconds),
                        ws.map(w -> java.util.OptionalLong.of(w.estimatedPageCount())).orElse(java.util.OptionalLong.empty()),
                        ws.map(w -> w.estimator() == Estimator.ABIT ? "accessed-bit" : "dirty-bit").orElse(""), progress::update);
                traced = t.restore().vm();
                ws = java.util.Optional.of(t.workingSet());
            }
            dev.thaw.image.WorkingSetWriter.attach(out, ws.get());
            progress.done("working set (trace): " + ws.get().description());
        }
        if (json) {
            System.out.println(Json.write(new SaveReport(result.image().toString(), result.manifest().imageId(), result.streamBytes(),
                    result.durationNanos() / 1e9, result.downtimeNanos() / 1e9, result.guestRunning() || traced != null, s,
                    String.join(",", estimators), result.rounds(), ws.map(WorkingSet::size).orElse(null),
                    ws.map(WorkingSet::estimatedPageCount).orElse(null), traced == null ? null : traced.extraQmpSocket().toString())));
        }
        if (traced != null) {
            try (QemuVm vm = traced) {
                status.println("the guest now runs in QEMU pid " + vm.pid() + "; its QMP socket for other clients: " + vm.extraQmpSocket()
                        + (exit ? "" : "; this command stays attached (Ctrl-C ends the guest)"));
                if (exit) {
                    vm.qmp().quit();
                } else {
                    Foreground.follow(vm, status);
                }
            }
        }
        return 0;
    }
}
