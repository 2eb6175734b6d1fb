package dev.thaw.cli;

import dev.thaw.estimate.PageRef;
import dev.thaw.host.HostDoctor;
import dev.thaw.image.CheckpointImage;
import dev.thaw.restore.RestoreTimeline;
import dev.thaw.qemu.ConsoleLine;
import dev.thaw.qemu.Journal;
import dev.thaw.qemu.QemuVm;
import dev.thaw.restore.PausedRestores;
import dev.thaw.restore.PostcopyRestore;
import dev.thaw.restore.Restorer;
import dev.thaw.restore.WorkingSetChoice;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "restore", mixinStandardHelpOptions = true,
        description = {"Restore an image into a new QEMU: eager, lazy, ws or mapped.",
                "Restores a checkpoint image into a new QEMU and runs the guest. It stays attached (printing",
                "the guest's console) until Ctrl-C or the guest stops; --exit ends it once the restore completed.",
                "Modes: eager (every page, then run), lazy (run at once, pages on demand and in the background),",
                "ws (the working set first, then as lazy), mapped (guest RAM mapped from the image's RAM file, IMAGE.ram/,",
                "written by thaw save --ram-file or by the first mapped restore; the kernel pages it in on demand, and the",
                "working set is read into the page cache in queue order once QEMU has the device state). The working set is the",
                "image's own (thaw save --estimator) or the one learned from its latest lazy or ws restore (IMAGE.restores/);",
                "see thaw ws IMAGE. Default (auto): mapped when the image has its RAM file; else ws when it has a working",
                "set or a previous restore left a trace; else lazy. The image is only read.",
                "A lazy or ws restore whose Thaw was killed leaves its QEMU paused (the guest waits for pages); so does a broken",
                "connection that could not be recovered. thaw restore --resume NAME IMAGE (or the QMP socket instead of NAME)",
                "reconnects to it with QEMU's postcopy recovery, sends the pages it lacks and stays attached as above; a plain",
                "thaw restore IMAGE does the same by itself when exactly one such QEMU of that image is alive (--no-resume: start",
                "a new restore instead). A connection that breaks while Thaw runs is recovered without any option.",
                "IMAGE may be s3://BUCKET/PREFIX/NAME (thaw push): its files are fetched into a bounded local cache",
                "(CACHE/objectstore, at most THAW_OBJECTSTORE_CACHE_BYTES, 16 GiB by default) and the restore starts while its",
                "packs arrive: the working set's copy first, in large range GETs in the background, what the restore reads",
                "sooner in small ones; every extent checked as read, every pack checked whole once it arrived; packs already",
                "cached are not fetched again."})
final class RestoreCommand implements Callable<Integer> {
    @Parameters(index = "0", description = "The image directory, or s3://BUCKET/PREFIX/NAME.")
    String image;

    /** The image's directory ({@link #image}, or its place in the object-storage cache) and where its pack bytes come from. */
    private ObjectStoreImages.Source source;

    @Option(names = "--mode", defaultValue = "auto", description = "auto, eager, lazy, ws or mapped (default ${DEFAULT-VALUE}: see above).")
    String mode;

    @Option(names = "--ws-pages", description = "Prefetch at most this many pages of the working set.")
    Integer wsPages;

    @Option(names = "--ws-fraction",
            description = "Prefetch this fraction (0-4] of the estimated working-set size, from the front of the queue; the rest of"
                    + " the queue goes first in the background (default ${DEFAULT-VALUE}, HotRestore's WSS/2).")
    Double wsFraction;

    @Option(names = "--ws-source", defaultValue = "auto",
            description = "Which working set: image (the image's section), learned (from the latest restore), or auto (the latest"
                    + " restore's when it is newer than the image's section; default).")
    String wsSource;

    @Option(names = "--collapse-huge-pages",
            description = "lazy/ws: once the restore completed, collapse guest RAM into transparent huge pages (MADV_COLLAPSE; root).")
    boolean collapseHugePages;

    @Option(names = "--hugetlb",
            description = "lazy/ws: back the guest's RAM with 2 MiB hugetlb pages (root; taken from the kernel as surplus pages while QEMU"
                    + " runs); the same as --guest-ram hugetlb.")
    boolean hugetlb;

    @Option(names = "--guest-ram", defaultValue = "auto", paramLabel = "auto|4k|hugetlb",
            description = "lazy/ws: what backs the guest's RAM. auto (default): 2 MiB hugetlb pages for a ws restore whose estimate fills"
                    + " at least 30%% of its 2 MiB regions, as root, on a host where a 4 KiB page's first touch is costly (measured once"
                    + " per boot, or by thaw doctor); 4 KiB pages otherwise (the reason is printed"
                    + " and in --json). 4k: QEMU's 4 KiB pages. hugetlb: as --hugetlb.")
    String guestRamName;

    @Mixin
    PostcopyTuning tuning;

    @Option(names = "--name", defaultValue = "thaw-restored", description = "VM name (default ${DEFAULT-VALUE}).")
    String name;

    @Option(names = "--resume", paramLabel = "NAME|QMP-SOCKET",
            description = "Resume the lazy or ws restore of IMAGE that a killed Thaw left paused in this QEMU (its --name, or its QMP"
                    + " socket): QEMU's postcopy recovery, then the pages it lacks.")
    String resume;

    @Option(names = "--no-resume", description = "Start a new restore even if a restore of IMAGE is paused (its Thaw gone).")
    boolean noResume;

    @Option(names = "--clones", defaultValue = "1", paramLabel = "N",
            description = "Start N guests from the image at once (1-" + dev.thaw.restore.Clones.MAX_COUNT + ", default ${DEFAULT-VALUE}),"
                    + " named NAME-1..NAME-N, each restored concurrently in the mode chosen, on its own disk overlays, with its own VM"
                    + " generation ID (if the guest was saved with a vmgenid device), user-networking host ports chosen by the kernel"
                    + " (printed), and a MAC of its own on its command line (the running guest keeps the saved MAC: QEMU migrates it)."
                    + " If one fails, the others are stopped. Attached, it prints every clone's console until all have stopped."
                    + " Never resumes a paused restore.")
    int clones;

    @Option(names = "--exit", description = "Stop the restored guest and exit once the restore completed (for measurements).")
    boolean exit;

    @Option(names = "--json", description = "Print the result as one JSON object.")
    boolean json;

    @Option(names = "--server", paramLabel = "SOCKET",
            description = "Ask the restore server listening on SOCKET (thaw serve) to run this restore in its warm JVM; its output comes"
                    + " back here, and Ctrl-C here ends the restore there. THAW_SERVER=SOCKET in the environment does the same.")
    Path server;

    /** Who asked: this process, or a client of {@code thaw serve} ({@link RestoreServer} sets it before the command runs). */
    Invocation invocation;

    @Option(names = "--disk-dir", paramLabel = "DIR",
            description = "An image with disks: put this restore's fresh disk overlays in a new directory under DIR (created if"
                    + " missing) instead of beside the image (IMAGE.disks/); they are kept after the guest ends, and thaw rm leaves them.")
    Path diskDir;

    record RestoreReport(String image, String mode, double qemuReadySeconds, double runningSeconds, double completedSeconds,
                         long streamBytes, Long demandFaults, Long prefetchedPages, Long demandPages, Long backgroundPages,
                         Long zeroPagesUnsent, Double faultServiceMedianMicros, Double faultServiceP99Micros,
                         Double faultQueueMedianMicros, Double faultQueueP99Micros, Long vcpuBlockedMillis, String trace, String qmpSocket,
                         dev.thaw.restore.HugePages.CollapseReport hugePageCollapse, String prefetchSizing, List<String> diskFiles,
                         String guestRam, String guestRamReason, Double commandRunningSeconds) {}

    @Override
    public Integer call() throws Exception {
        if (server != null) {
            // ThawCli.main hands a --server restore to ServeClient before picocli; the server drops the option.
            throw new IllegalStateException("--server " + server + ": expected it handled before the command is parsed, actual"
                    + " parsed as an option of a restore run here");
        }
        if (invocation == null) invocation = Invocation.local();
        tuning.validate();
        if (resume != null && noResume) throw new IllegalArgumentException("--resume and --no-resume exclude each other");
        if (collapseHugePages && hugetlb) {
            throw new IllegalArgumentException("--collapse-huge-pages and --hugetlb exclude each other: hugetlb guest RAM is in"
                    + " 2 MiB pages from the start, and MADV_COLLAPSE does not apply to it");
        }
        PostcopyRestore.GuestRam guestRam = guestRam();
        WorkingSetChoice choice = new WorkingSetChoice(WorkingSetChoice.Source.parse(wsSource),
                wsPages == null ? java.util.OptionalInt.empty() : java.util.OptionalInt.of(wsPages),
                wsFraction == null ? java.util.OptionalDouble.empty() : java.util.OptionalDouble.of(wsFraction));
        dev.thaw.restore.Clones.requireCount(clones);
        if (clones > 1 && resume != null) {
            throw new IllegalArgumentException("--resume with --clones " + clones + ": expected one restore to resume, actual " + clones
                    + " new ones asked for");
        }
        if (diskDir != null) diskDir = invocation.resolve(diskDir.toString());
        if (resume != null && resume.contains("/")) resume = invocation.resolve(resume).toString(); // a QMP socket, not a name
        if (diskDir != null && Files.exists(diskDir) && !Files.isDirectory(diskDir)) {
            throw new IllegalArgumentException("--disk-dir: expected a directory, actual " + diskDir + " (not a directory)");
        }
        HostDoctor.ensureCanRestore(invocation.err());
        PrintStream status = json ? invocation.err() : invocation.out();
        Progress progress = new Progress(status, invocation.terminal() && !json);
        try (ObjectStoreImages.Source opened = ObjectStoreImages.open(invocation.resolveImage(image), status)) {
            source = opened;
            return clones > 1 ? restoreClones(guestRam, choice, status, progress) : restoreOne(guestRam, choice, status, progress);
        }
    }

    /** --guest-ram, --hugetlb and --collapse-huge-pages as one choice; an explicit --guest-ram other than auto excludes the others. */
    private PostcopyRestore.GuestRam guestRam() {
        PostcopyRestore.GuestRam named = switch (guestRamName.toLowerCase(java.util.Locale.ROOT)) {
            case "auto" -> PostcopyRestore.GuestRam.AUTO;
            case "4k" -> PostcopyRestore.GuestRam.DEFAULT;
            case "hugetlb" -> PostcopyRestore.GuestRam.HUGETLB;
            default -> throw new IllegalArgumentException("--guest-ram: expected auto, 4k or hugetlb, actual '" + guestRamName + "'");
        };
        if ((hugetlb || collapseHugePages) && named != PostcopyRestore.GuestRam.AUTO && !(hugetlb && named == PostcopyRestore.GuestRam.HUGETLB)) {
            throw new IllegalArgumentException("--guest-ram " + guestRamName + " and " + (hugetlb ? "--hugetlb" : "--collapse-huge-pages")
                    + " exclude each other: expected one choice of guest RAM, actual two");
        }
        if (hugetlb) return PostcopyRestore.GuestRam.HUGETLB;
        // Collapsing after the restore is for 4 KiB postcopy RAM.
        if (collapseHugePages) return PostcopyRestore.GuestRam.COLLAPSE_AFTER;
        return named;
    }

    private int restoreOne(PostcopyRestore.GuestRam guestRam, WorkingSetChoice choice, PrintStream status, Progress progress)
            throws Exception {
        PausedRestores.removeDead(QemuVm.RUN_DIR_PARENT);
        try (CheckpointImage img = source.openImage()) {
            java.util.Optional<PausedRestores.Paused> paused = resume != null
                    ? java.util.Optional.of(PausedRestores.find(QemuVm.RUN_DIR_PARENT, resume))
                    : noResume ? java.util.Optional.empty() : PausedRestores.ofImage(QemuVm.RUN_DIR_PARENT, img);
            Restorer.Outcome o = paused.isPresent() ? resumePaused(img, paused.get(), status, progress)
                    : restoreNew(img, guestRam, choice, status, progress);
            Restorer.Mode chosen = o.mode();
            try (QemuVm vm = o.vm()) {
                RestoreReport report = report(img, o, vm, invocation.commandStart());
                progress.done(chosen.label() + " restore" + (paused.isPresent() ? " (resumed; times from the resume)" : "") + ": "
                        + times(report));
                o.guestRam().ifPresent(c -> status.println("guest RAM: " + c.label() + " (" + c.reason() + ")"));
                o.postcopy().flatMap(PostcopyRestore.Result::collapse).ifPresent(c -> status.printf("huge pages: %d of %d 2 MiB ranges"
                                + " collapsed in %.2f s (%d MiB -> %d MiB in huge pages; failures by errno: %s)%n", c.collapsedCount(),
                        c.rangeCount(), c.durationNanos() / 1e9, c.anonHugeBytesBefore() >> 20, c.anonHugeBytesAfter() >> 20, c.errors()));
                printDisksAndMonitor(vm, "", "this guest's overlay; the base stays as saved", status);
                if (json) invocation.out().println(Json.write(report));
                if (exit) {
                    vm.qmp().quit();
                    return 0;
                }
                Foreground.follow(vm, status);
                return 0;
            }
        }
    }

    /** A restored guest's disks (read-only, or its own overlay as {@code overlay} says) and its QMP socket for other clients. */
    private static void printDisksAndMonitor(QemuVm vm, String indent, String overlay, PrintStream status) {
        for (dev.thaw.qemu.VmConfig.Disk d : vm.config().disks()) {
            status.println(indent + "disk " + d.node() + ": " + d.file() + (d.readOnly() ? " (read-only)" : " (" + overlay + ")"));
        }
        status.println(indent + "QMP socket for other clients: " + vm.extraQmpSocket());
    }

    /** What one clone's restore gave, with its identity: {@code --json} with {@code --clones} above 1. */
    record CloneReport(String name, RestoreReport restore, String vmGenerationId, List<dev.thaw.restore.Clones.Nic> nics,
                       List<String> forwards) {}

    record ClonesReport(String image, String mode, int count, List<String> notes, List<CloneReport> clones) {}

    private int restoreClones(PostcopyRestore.GuestRam guestRam, WorkingSetChoice choice, PrintStream status, Progress progress)
            throws InterruptedException {
        dev.thaw.restore.Clones.names(name, clones); // a name too long for its clones fails before anything starts
        try (CheckpointImage img = source.openImage()) {
            Restorer.Mode chosen = chooseMode(img, guestRam, status);
            List<String> notes = dev.thaw.restore.Clones.notes(dev.thaw.restore.IncomingQemu.savedConfig(img));
            List<dev.thaw.restore.Clones.Clone> started;
            Object lock = new Object(); // clones report progress from their own threads
            started = dev.thaw.restore.Clones.restore(img, chosen, name, clones, java.util.Optional.ofNullable(diskDir), choice,
                    opt -> tuning.applyTo(opt).withGuestRam(guestRam), msg -> {
                        synchronized (lock) {
                            progress.update(msg);
                        }
                    });
            List<QemuVm> vms = started.stream().map(c -> c.outcome().vm()).toList();
            try {
                List<CloneReport> reports = new java.util.ArrayList<>();
                for (dev.thaw.restore.Clones.Clone c : started) {
                    RestoreReport r = report(img, c.outcome(), c.outcome().vm(), invocation.commandStart());
                    List<String> forwards = c.forwards().stream().map(Object::toString).toList();
                    reports.add(new CloneReport(c.name(), r, c.vmGenerationId().orElse(null), c.nics(), forwards));
                    progress.done(c.name() + ": " + chosen.label() + " restore: " + times(r));
                    status.println("  VM generation ID: " + c.vmGenerationId().orElse("none (the image's guest has no vmgenid device)"));
                    for (dev.thaw.restore.Clones.Nic n : c.nics()) {
                        status.println("  NIC " + n.name() + " (" + n.type() + "): MAC " + n.guestMac() + " (as saved); "
                                + (n.resetTakesCommandLineMac() ? "after a NIC reset " + n.commandLineMac() : "keeps the saved MAC after a NIC reset"));
                    }
                    for (String f : forwards) status.println("  forward " + f);
                    printDisksAndMonitor(c.outcome().vm(), "  ", "this clone's overlay", status);
                }
                for (String note : notes) status.println("note: " + note);
                if (json) invocation.out().println(Json.write(new ClonesReport(img.directory().toString(), chosen.label(), clones, notes, reports)));
                if (exit) {
                    for (QemuVm vm : vms) vm.qmp().quit();
                    return 0;
                }
                Foreground.followAll(vms, status);
                return 0;
            } finally {
                for (QemuVm vm : vms) {
                    try {
                        vm.close();
                    } catch (RuntimeException e) { // the others still get closed
                        status.println("closing " + vm.name() + " failed: " + e.getMessage());
                    }
                }
            }
        }
    }

    private Restorer.Outcome resumePaused(CheckpointImage img, PausedRestores.Paused p, PrintStream status, Progress progress) {
        status.printf("resuming the restore of this image paused in QEMU %s (pid %d; its Thaw, pid %d, is gone)%n", p.vmName(),
                p.qemuPid(), p.marker().thawPid());
        return Restorer.resume(img, p, opt -> tuning.applyTo(opt), progress::update);
    }

    private Restorer.Outcome restoreNew(CheckpointImage img, PostcopyRestore.GuestRam guestRam, WorkingSetChoice choice,
                                        PrintStream status, Progress progress) {
        Restorer.Mode chosen = chooseMode(img, guestRam, status);
        return Restorer.restore(img, chosen, name, dev.thaw.restore.RestoreIdentity.single().withDiskDirectory(java.util.Optional.ofNullable(diskDir)),
                choice, opt -> tuning.applyTo(opt).withGuestRam(guestRam), progress::update);
    }

    private Restorer.Mode chooseMode(CheckpointImage img, PostcopyRestore.GuestRam guestRam, PrintStream status) {
        Restorer.Mode chosen;
        if (mode.equalsIgnoreCase("auto")) {
            Restorer.AutoMode auto = Restorer.defaultMode(img);
            chosen = auto.mode();
            status.println("mode " + chosen.label() + ": " + auto.reason());
        } else {
            chosen = Restorer.Mode.parse(mode);
        }
        if (chosen == Restorer.Mode.MAPPED && guestRam != PostcopyRestore.GuestRam.DEFAULT && guestRam != PostcopyRestore.GuestRam.AUTO) {
            throw new IllegalArgumentException("--collapse-huge-pages, --hugetlb and --guest-ram hugetlb: expected a lazy or ws restore,"
                    + " actual mode mapped (its RAM is the mapped file)");
        }
        return chosen;
    }

    private static RestoreReport report(CheckpointImage img, Restorer.Outcome o, QemuVm vm,
                                        java.util.Optional<java.time.Instant> commandStart) {
        PostcopyRestore.Result r = o.postcopy().orElse(null);
        long[] service = r == null ? new long[0] : r.faultServiceNanos().clone();
        java.util.Arrays.sort(service);
        long[] queue = r == null ? new long[0] : r.faultQueueNanos().clone();
        java.util.Arrays.sort(queue);
        return new RestoreReport(img.directory().toString(), o.mode().label(), o.qemuReadySeconds(), o.runningSeconds(),
                o.completedSeconds(), o.streamBytes(), r == null ? null : r.demandFaults(), r == null ? null : r.prefetchedPages(),
                r == null ? null : r.demandPages(), r == null ? null : r.backgroundPages(), r == null ? null : r.zeroPagesUnsent(),
                percentileMicros(service, 0.5), percentileMicros(service, 0.99), percentileMicros(queue, 0.5),
                percentileMicros(queue, 0.99), r == null ? null : r.vcpuBlockedMillis(), o.trace().map(Path::toString).orElse(null),
                vm.extraQmpSocket().toString(), r == null ? null : r.collapse().orElse(null), o.prefetchSizing().orElse(null),
                vm.config().disks().stream().map(d -> d.file().toString()).toList(),
                o.guestRam().map(dev.thaw.restore.GuestRamChoice.Choice::label).orElse(null),
                o.guestRam().map(dev.thaw.restore.GuestRamChoice.Choice::reason).orElse(null),
                sinceCommandStart(vm.qmp() == null ? List.of() : vm.qmp().events().snapshot(), commandStart)
                        .orElse(null));
    }

    /**
     * When the guest ran (QEMU's first RESUME event, by QEMU's clock) counted from the user's {@code thaw} process's start
     * ({@link dev.thaw.util.ProcessStart}, to 10 ms; {@code ./thaw} execs the JVM, so the launcher's own start is in it; a served
     * restore's is its client's): what a user of {@code thaw restore} waits, of which {@code runningSeconds} (from the restore's start inside a JVM that is up by then) is a part. Empty without
     * a RESUME (a resumed restore's guest ran before) or a start time, or when the two clocks disagree about the order.
     */
    static java.util.Optional<Double> sinceCommandStart(List<dev.thaw.qemu.QmpEvent> events, java.util.Optional<java.time.Instant> processStart) {
        if (processStart.isEmpty()) return java.util.Optional.empty();
        long startMicros = java.time.temporal.ChronoUnit.MICROS.between(java.time.Instant.EPOCH, processStart.get());
        return events.stream().filter(e -> e.is("RESUME")).findFirst()
                .map(e -> (e.qemuMicros() - startMicros) / 1e6).filter(seconds -> seconds >= 0);
    }

    /** When the guest ran and the restore completed, and for lazy and ws what the pages cost. */
    private static String times(RestoreReport r) {
        return String.format("guest running after %.2f s%s, restore completed after %.2f s%s", r.runningSeconds(),
                r.commandRunningSeconds() == null ? "" : String.format(" (%.2f s after this command started)", r.commandRunningSeconds()),
                r.completedSeconds(),
                r.demandFaults() == null ? "" : String.format(" (%d pages prefetched, %d demand faults, %d background pages; vCPU stalled %d ms)",
                        r.prefetchedPages(), r.demandFaults(), r.backgroundPages(), r.vcpuBlockedMillis()));
    }

    static Double percentileMicros(long[] sortedNanos, double q) {
        return sortedNanos.length == 0 ? null : RestoreTimeline.percentile(sortedNanos, q);
    }
}
