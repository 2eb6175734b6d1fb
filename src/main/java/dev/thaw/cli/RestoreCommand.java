package dev.thaw.cli;

import dev.thaw.host.HostDoctor;
import dev.thaw.image.CheckpointImage;
import dev.thaw.qemu.ConsoleLine;
import dev.thaw.qemu.Journal;
import dev.thaw.restore.EagerRestore;
import java.io.PrintStream;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "restore", mixinStandardHelpOptions = true,
        description = {"Restores a checkpoint image into a new QEMU and runs the guest. It stays attached (printing",
                "the guest's console) until Ctrl-C or the guest stops; --exit ends it as soon as the guest runs.",
                "The image is only read."})
final class RestoreCommand implements Callable<Integer> {
    @Parameters(index = "0", description = "The image directory.")
    Path image;

    @Option(names = "--mode", defaultValue = "eager", description = "eager (default): every page before the guest runs.")
    String mode;

    @Option(names = "--name", defaultValue = "thaw-restored", description = "VM name (default ${DEFAULT-VALUE}).")
    String name;

    @Option(names = "--exit", description = "Stop the restored guest and exit once it runs (for measurements).")
    boolean exit;

    @Option(names = "--json", description = "Print the timings as one JSON object.")
    boolean json;

    record RestoreReport(String image, String mode, double qemuReadySeconds, double streamSentSeconds, double runningSeconds,
                         long streamBytes, long pagesSent, String qmpSocket) {}

    @Override
    public Integer call() throws Exception {
        if (!mode.toLowerCase(Locale.ROOT).equals("eager")) {
            throw new IllegalArgumentException("--mode: expected eager (lazy and ws come with the working-set restore), actual '" + mode + "'");
        }
        HostDoctor.ensureReady(System.err);
        PrintStream status = json ? System.err : System.out;
        Progress progress = new Progress(status);
        try (CheckpointImage img = CheckpointImage.open(image)) {
            EagerRestore.Result r = EagerRestore.restore(img, EagerRestore.Options.defaults(name),
                    p -> progress.update(String.format("restoring: %d/%d pages", p.pagesSent(), p.pageCount())));
            try (var vm = r.vm()) {
                progress.done(String.format("guest running %.2f s after the restore began (QEMU ready %.2f s, %d MiB sent by %.2f s)",
                        r.runningNanos() / 1e9, r.qemuReadyNanos() / 1e9, r.streamBytes() >> 20, r.streamSentNanos() / 1e9));
                status.println("QMP socket for other clients: " + vm.extraQmpSocket());
                if (json) {
                    System.out.println(Json.write(new RestoreReport(img.directory().toString(), "eager", r.qemuReadyNanos() / 1e9,
                            r.streamSentNanos() / 1e9, r.runningNanos() / 1e9, r.streamBytes(), r.pagesSent(), vm.extraQmpSocket().toString())));
                }
                if (exit) {
                    vm.qmp().quit();
                    return 0;
                }
                Journal<ConsoleLine>.Cursor console = vm.console().cursorFromStart();
                while (vm.isAlive()) {
                    console.next(Duration.ofSeconds(1)).ifPresent(l -> status.println("guest: " + l.text()));
                }
                status.println("QEMU exited: " + vm.describeState());
                return 0;
            }
        }
    }
}
