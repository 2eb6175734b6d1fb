package dev.thaw.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.thaw.estimate.Estimator;
import dev.thaw.estimate.WorkingSet;
import dev.thaw.image.Manifest;
import dev.thaw.qemu.QemuVm;
import dev.thaw.qemu.QmpClient;
import dev.thaw.qemu.VmConfig;
import dev.thaw.save.Saver;
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

    @Option(names = "--estimator", defaultValue = "none",
            description = "Working-set estimator: dirty (a live save; pages the guest rewrote during it, latest first), trace (after"
                    + " the save the guest goes on in a new QEMU restored lazily from the image; the order it faults pages in),"
                    + " abit (accessed bits before the save; needs host idle page tracking), none (default).")
    String estimator;

    @Option(names = "--live-seconds", defaultValue = "30",
            description = "dirty: stop the guest after this many seconds of live save if QEMU has not converged (default ${DEFAULT-VALUE}).")
    int liveSeconds;

    @Mixin
    ImageOptions imageOptions;

    record SaveReport(String image, String imageId, long streamBytes, double seconds, double downtimeSeconds, boolean guestRunning,
                      Manifest.Stats stats, String estimator, int rounds, Integer workingSetPages, Long estimatedWorkingSetPages) {}

    @Override
    public Integer call() throws IOException {
        Path configFile = vmConfigFile != null ? vmConfigFile : qmpSocket.toAbsolutePath().getParent().resolve(QemuVm.CONFIG_FILE);
        if (!Files.isRegularFile(configFile)) {
            throw new IllegalArgumentException("the VM's launch configuration is unknown: expected " + configFile
                    + " (VMs started by Thaw have vm.json beside their QMP socket) or --vm-config FILE");
        }
        VmConfig config = new ObjectMapper().findAndRegisterModules().readValue(configFile.toFile(), VmConfig.class);
        PrintStream status = json ? System.err : System.out;
        Progress progress = new Progress(status);
        Estimator chosen = Estimator.parse(estimator);
        Saver.Options options = Saver.Options.defaults().withImage(imageOptions.toOptions()).withKeepRunning(keepRunning);
        switch (chosen) {
            case DIRTY -> options = options.withDirtyEstimator(Duration.ofSeconds(liveSeconds));
            case NONE -> { }
            case ABIT -> throw new IllegalArgumentException("--estimator abit: " + dev.thaw.host.IdlePageTracking.unavailableReason()
                    .orElse("not available in this build"));
            default -> throw new IllegalArgumentException("--estimator: expected dirty, trace, abit or none, actual '" + estimator + "'");
        }
        Saver.Result result;
        try (QmpClient qmp = QmpClient.connect(qmpSocket, "guest", Duration.ofSeconds(10), () -> true)) {
            result = Saver.save(qmp, config, out, options, p -> progress.update(String.format("saving: %d MiB read, %d pages, %.0f pages/s",
                    p.streamBytes() >> 20, p.pageCount(), p.elapsedNanos() > 0 ? p.pageCount() * 1e9 / p.elapsedNanos() : 0.0)));
        }
        Manifest.Stats s = result.manifest().stats();
        result.workingSet().ifPresent(ws -> status.printf("working set (%s, %d rounds%s): %s%n", ws.estimator().label(), result.rounds(),
                result.stoppedByLimit() ? ", guest stopped at the live limit" : "", ws.description()));
        progress.done(String.format("saved %s in %.2f s (guest stopped for %.2f s): %d pages, %d zero, %d stored, %d duplicate;"
                        + " %d MiB stream -> %d MiB image (compression %.2fx, dedup %.2fx)%s",
                result.image(), result.durationNanos() / 1e9, result.downtimeNanos() / 1e9, s.pageCount(), s.zeroPageCount(),
                s.storedPageCount(), s.duplicatePageCount(), result.streamBytes() >> 20, s.imageFileBytes() >> 20,
                s.compressionRatio(), s.dedupRatio(), result.guestRunning() ? "; guest running again" : "; guest left stopped"));
        if (json) {
            System.out.println(Json.write(new SaveReport(result.image().toString(), result.manifest().imageId(), result.streamBytes(),
                    result.durationNanos() / 1e9, result.downtimeNanos() / 1e9, result.guestRunning(), s, chosen.label(), result.rounds(),
                    result.workingSet().map(WorkingSet::size).orElse(null),
                    result.workingSet().map(WorkingSet::estimatedPageCount).orElse(null))));
        }
        return 0;
    }
}
