package dev.thaw.cli;

import dev.thaw.estimate.WorkingSet;
import dev.thaw.estimation.EstimatingSave;
import dev.thaw.restore.MappedRestore;
import dev.thaw.restore.RamFiles;
import dev.thaw.image.Manifest;
import dev.thaw.qemu.QemuVm;
import dev.thaw.qemu.QmpClient;
import dev.thaw.save.ForeignGuest;
import dev.thaw.qemu.VmConfig;
import dev.thaw.save.SaveHold;
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
                "by Thaw have one), from --vm-config, or else from the QEMU process itself: its command line (each option",
                "replayed, or the save refused naming it, before the guest is stopped) and QMP. Such a QEMU's kernel and",
                "initrd are copied into the image, and each disk's file becomes the image's frozen base: with --keep-running",
                "the guest goes on on a new qcow2 overlay beside it (BASE.after-IMAGE.qcow2); left stopped, its base must",
                "not be written again (a restore refuses a base that changed). --estimator stores a working-set estimate in",
                "the image (thaw ws shows it; thaw restore --mode ws uses it)."})
final class SaveCommand implements Callable<Integer> {
    @Option(names = "--qmp", required = true, description = "The guest QEMU's QMP unix socket.")
    Path qmpSocket;

    @Option(names = "--out", description = "The image directory to create (must not exist); required unless --recover.")
    Path out;

    @Option(names = "--recover",
            description = "Save nothing: only resume the guest if a thaw save that died (SIGKILL: no cleanup) had stopped it while it"
                    + " ran and it is still paused as that save left it (the next save of it does this first by itself).")
    boolean recover;

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
                    + " dirty,trace (the trace runs with the dirty pages prefetched: the pages it still faults on, which the probe missed, in touch order, then the dirty ones), abit (accessed bits before the save;"
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

    @Option(names = "--ram-file",
            description = "Also write the guest's RAM as a sparse raw file beside the image (IMAGE.ram/, owner-only), for"
                    + " thaw restore --mode mapped (the default when it is there). Costs disk space: every non-zero page, uncompressed.")
    boolean ramFile;

    @Option(names = "--drop-caches",
            description = "Before the guest is stopped, have its agent run sync and drop its clean page cache (1 to"
                    + " /proc/sys/vm/drop_caches); with free-page reporting (a balloon) the freed pages become zero and cost the image"
                    + " nothing. The restored guest's cache is cold. A guest without an agent is refused before anything is stopped.")
    boolean dropCaches;

    @Option(names = "--no-disk-refs",
            description = "Store every non-zero page, also those equal to a block of the guest's disk bases (raw, or qcow2 and"
                    + " their backing files; by default those are taken from the disk: a (disk, file, offset) reference, read and"
                    + " checked against its SHA-256 at every restore).")
    boolean noDiskRefs;

    @Option(names = "--agent",
            description = "--drop-caches: the guest agent's unix socket (Thaw's agent on the guest's second serial port); default:"
                    + " control.sock beside the QMP socket of a guest Thaw started.")
    Path agentSocket;

    @Mixin
    ImageOptions imageOptions;

    record SaveReport(String image, String imageId, long streamBytes, double seconds, double downtimeSeconds, boolean guestRunning,
                      Manifest.Stats stats, String estimator, int rounds, Integer workingSetPages, Long estimatedWorkingSetPages,
                      String tracedQmpSocket, String ramFile, Long foreignPid, java.util.List<Manifest.Disk> disks,
                      java.util.List<String> sourceOverlays, Manifest.PageCacheDrop pageCacheDrop, long diskReferencePageCount,
                      long diskReferenceBytes) {}

    @Override
    public Integer call() throws IOException, InterruptedException {
        if (recover) return recover();
        if (out == null) throw new IllegalArgumentException("expected --out DIR (or --recover), actual neither");
        // Arguments first: a wrong estimator is reported before anything touches the VM.
        EstimatingSave.Plan plan = new EstimatingSave.Plan(EstimatingSave.Plan.parse(estimators), Duration.ofSeconds(liveSeconds),
                Duration.ofSeconds(traceSeconds), Duration.ofSeconds(abitSeconds), Duration.ofMillis(abitIntervalMillis));
        Path configFile = vmConfigFile != null ? vmConfigFile : qmpSocket.toAbsolutePath().getParent().resolve(QemuVm.CONFIG_FILE);
        if (vmConfigFile != null && !Files.isRegularFile(configFile)) {
            throw new IllegalArgumentException("--vm-config: expected a file, actual none at " + configFile);
        }
        PrintStream status = json ? System.err : System.out;
        VmConfig config;
        ForeignGuest foreign = null;
        if (Files.isRegularFile(configFile)) {
            OwnerOnly.requireTrustedWriters(configFile, "the VM's launch configuration");
            config = VmConfig.read(configFile);
        } else {
            // A QEMU Thaw did not start: its configuration comes from its process and QMP, refused here if not replayable.
            try (QmpClient qmp = QmpClient.connect(qmpSocket, "guest", Duration.ofSeconds(10), () -> true)) {
                foreign = ForeignGuest.inspect(qmpSocket, qmp);
            }
            config = foreign.config();
            status.printf("QEMU pid %d (not started by Thaw, no %s beside its socket): %s, %d MiB, %d vCPU, %d disk(s)%s%n", foreign.pid(),
                    QemuVm.CONFIG_FILE, config.machineType(), config.memoryMiB(), config.cpuCount(), config.disks().size(),
                    config.disks().stream().map(d -> " " + d.node() + "=" + d.file() + " (" + d.format() + (d.readOnly() ? ", read-only" : "")
                            + ", PCI " + d.pciAddress() + ")").collect(java.util.stream.Collectors.joining(",")));
        }
        if (agentSocket != null && !dropCaches) throw new IllegalArgumentException("--agent: expected with --drop-caches, actual alone");
        Saver.Options options = Saver.Options.defaults().withImage(imageOptions.toOptions()).withKeepRunning(keepRunning)
                .withGuestFiles(foreign != null || !trustedWhereTheyAre(config)).withDiskReferences(!noDiskRefs);
        if (dropCaches) {
            if (agentSocket == null && foreign != null) {
                throw new IllegalArgumentException("--drop-caches: expected --agent SOCKET for a QEMU Thaw did not start (its agent's"
                        + " serial port), actual none; the guest was not stopped and nothing was saved");
            }
            options = options.withDropCaches(agentSocket != null ? agentSocket : qmpSocket.toAbsolutePath().getParent().resolve(QemuVm.CONTROL_SOCKET));
        }
        Progress progress = new Progress(status);
        EstimatingSave.Result saved = EstimatingSave.save(qmpSocket, config, out, options,
                plan, progress, result -> printSaved(result, status, progress));
        Saver.Result result = saved.save();
        java.util.Optional<WorkingSet> ws = saved.workingSet();
        QemuVm traced = saved.traced().orElse(null);
        String ramFilePath = null;
        if (ramFile) {
            try (dev.thaw.image.CheckpointImage img = dev.thaw.image.CheckpointImage.open(result.image())) {
                progress.update("writing the RAM file");
                MappedRestore.RamFile written = RamFiles.write(img);
                ramFilePath = written.file().toString();
                progress.done(String.format("RAM file %s: %d MiB, %d non-zero pages, written in %.2f s", written.file(),
                        written.byteSize() >> 20, written.nonZeroPageCount(), written.writeNanos() / 1e9));
            } catch (RuntimeException e) {
                if (traced != null) traced.close();
                throw e;
            }
        }
        if (json) {
            System.out.println(Json.write(new SaveReport(result.image().toString(), result.manifest().imageId(), result.streamBytes(),
                    result.durationNanos() / 1e9, result.downtimeNanos() / 1e9, result.guestRunning() || traced != null,
                    result.manifest().stats(), String.join(",", estimators), result.rounds(), ws.map(WorkingSet::size).orElse(null),
                    ws.map(WorkingSet::estimatedPageCount).orElse(null), traced == null ? null : traced.extraQmpSocket().toString(), ramFilePath,
                    foreign == null ? null : foreign.pid(), result.manifest().disks(),
                    result.sourceOverlays().stream().map(Path::toString).toList(), result.manifest().pageCacheDrop(),
                    result.manifest().stats().diskReferencePageCount(), result.manifest().stats().diskReferenceBytes())));
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

    /** {@code --recover}: what a dead save left of its hold on the guest, and the guest resumed if it left it paused. */
    private int recover() {
        if (out != null) throw new IllegalArgumentException("--recover saves nothing: expected no --out, actual --out " + out);
        try (QmpClient qmp = QmpClient.connect(qmpSocket, "guest", Duration.ofSeconds(10), () -> true)) {
            java.util.Optional<SaveHold.Recovery> recovery = SaveHold.resumeIfLeftPaused(qmpSocket, qmp);
            if (json) {
                System.out.println(Json.write(new RecoverReport(qmpSocket.toString(), recovery.map(SaveHold.Recovery::resumed).orElse(false),
                        recovery.map(SaveHold.Recovery::message).orElse(null), qmp.queryStatus().status())));
            } else {
                System.out.println(recovery.map(SaveHold.Recovery::message).orElse("no save that died holds the guest of " + qmpSocket
                        + ": nothing to recover (it is " + qmp.queryStatus().status() + ")"));
            }
            return 0;
        }
    }

    record RecoverReport(String qmpSocket, boolean resumed, String found, String status) {}

    /**
     * Whether a restore would accept the guest's kernel and initrd where they are (Thaw's guest builds, THAW_GUEST_DIRS); else
     * the image carries copies (a foreign guest, or a restored one booting an image's copies).
     */
    private static boolean trustedWhereTheyAre(VmConfig config) {
        try {
            config.requireGuestFilesIn(dev.thaw.util.ThawPaths.guestDirs());
            return true;
        } catch (IllegalArgumentException e) {
            return false;
        }
    }

    private static void printSaved(Saver.Result result, PrintStream status, Progress progress) {
        Manifest.Stats s = result.manifest().stats();
        if (result.manifest().pageCacheDrop() != null) {
            status.println("page cache: " + InspectCommand.pageCache(result.manifest().pageCacheDrop()));
        }
        result.workingSet().ifPresent(ws -> status.printf("working set (%s, %d rounds%s): %s%n", ws.estimator().label(), result.rounds(),
                result.stoppedByLimit() ? ", guest stopped at the live limit" : "", ws.description()));
        progress.done(String.format("saved %s in %.2f s (guest stopped for %.2f s): %d pages, %d zero, %d stored, %d duplicate;"
                        + " %d MiB stream -> %d MiB image (compression %.2fx, dedup %.2fx)%s",
                result.image(), result.durationNanos() / 1e9, result.downtimeNanos() / 1e9, s.pageCount(), s.zeroPageCount(),
                s.storedPageCount(), s.duplicatePageCount(), result.streamBytes() >> 20, s.imageFileBytes() >> 20,
                s.compressionRatio(), s.dedupRatio(), result.guestRunning() ? "; guest running again" : "; guest left stopped"));
        for (Manifest.Disk d : result.manifest().disks()) {
            status.printf("disk %s: base %s (%s, %d MiB)%s%s%n", d.node(), d.base(), d.format(), d.virtualByteSize() >> 20,
                    d.readOnly() ? ", read-only" : "", d.format().equals("raw") || d.format().equals("qcow2") ? ""
                            : "; not searched for pages (only raw and qcow2 bases are indexed)");
        }
        if (s.diskReferencePageCount() > 0) {
            status.printf("%d pages (%d MiB) taken from the disk bases, not stored%n", s.diskReferencePageCount(), s.diskReferenceBytes() >> 20);
        }
        if (!result.sourceOverlays().isEmpty()) {
            status.println("the guest goes on on new overlays " + result.sourceOverlays() + "; its bases are frozen for the image");
        } else if (!result.manifest().disks().isEmpty() && !result.guestRunning()) {
            status.println("the guest's disks are the image's bases now: resuming this guest would write them, and restores would"
                    + " refuse the changed bases");
        }
    }
}
