package dev.thaw.cli;

import dev.thaw.guest.DemoGuest;
import dev.thaw.guest.GuestAgent;
import dev.thaw.guest.GuestImage;
import dev.thaw.guest.WsbenchTick;
import dev.thaw.host.HostDoctor;
import dev.thaw.image.CheckpointImage;
import dev.thaw.image.Manifest;
import dev.thaw.measure.AfterRestore;
import dev.thaw.measure.Responsiveness;
import dev.thaw.measure.Throughput;
import dev.thaw.qemu.Accel;
import dev.thaw.qemu.ConsoleLine;
import dev.thaw.qemu.Journal;
import dev.thaw.qemu.QemuVersion;
import dev.thaw.qemu.QemuVm;
import dev.thaw.restore.PostcopyRestore;
import dev.thaw.restore.MappedRestore;
import dev.thaw.measure.QemuBaselines;
import dev.thaw.measure.RestoreMethod;
import dev.thaw.qemu.VmConfig;
import java.nio.file.Files;
import dev.thaw.restore.RestoreTraces;
import dev.thaw.restore.Restorer;
import dev.thaw.save.Saver;
import dev.thaw.util.FileTrees;
import dev.thaw.util.ThawPaths;
import java.io.PrintStream;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * The main job: check the host, build and boot the demo guest, measure its workload, save it into
 * an image while the workload runs (and the QEMU baselines' way: a migration stream in a file and an
 * internal qcow2 snapshot), restore it every way (QEMU eager, QEMU loadvm, kernel demand paging of
 * a mapped RAM file written from the image; Thaw eager, lazy, ws with the working set learned from
 * the lazy restore), and end with the comparison: time to running and to completion, demand faults,
 * vCPU stall, TTR and MMU, work over the first seconds after the restore against before the save,
 * and whether memory survived. Memory is compared by checksumming the part of wsbench's region beyond
 * its working set, which the workload never writes after filling it, so the workload can keep
 * running through the save and the restores.
 */
@Command(name = "demo", mixinStandardHelpOptions = true,
        description = {"The main job: save the demo guest and restore it in every mode, compared.",
                "Boots the demo guest, measures it, saves it into an image (and QEMU's own ways), restores it every",
                "way: QEMU eager, QEMU loadvm, a mapped RAM file, Thaw eager, lazy and ws; ends with the comparison.",
                "Installs what the host lacks first (see 'thaw doctor')."})
final class DemoCommand implements Callable<Integer> {
    @Mixin
    GuestShape shape;

    @Option(names = "--seconds", defaultValue = "5", description = "How long to measure the workload before the save and after each restore (default ${DEFAULT-VALUE}).")
    int seconds;

    @Option(names = "--image", description = "Where to save the image (default: demo/image in the cache, replaced on each run).")
    Path imageDir;

    @Option(names = "--background-mbps", defaultValue = "0",
            description = "lazy/ws: pace the background stream to this many MB/s (default 0: unpaced).")
    long backgroundMbps;

    @Option(names = "--json", description = "Print one JSON object summarizing what the demo did and measured.")
    boolean json;

    /** One restore mode's result. Seconds from the start of the restore. */
    record ModeResult(String mode, double runningSeconds, double completedSeconds, Long demandFaults, Long vcpuBlockedMillis,
                      Double ttrSeconds, double mmu, double throughputRelative, String memsumAfter, boolean memsumIdentical) {}

    /** What {@code --json} prints. Boot times are milliseconds from QEMU's launch. */
    record DemoReport(String qemuVersion, String accel, String accelReason, String guestKey, String guestKernel,
                      long memoryMiB, long totalMiB, long wsMiB,
                      long initUpMillis, long wsbenchReadyMillis, double opsPerSecondBefore,
                      String imageDir, double saveSeconds, long streamBytes, long imageBytes, Manifest.Stats imageStats,
                      String memsumBefore, List<ModeResult> modes, double totalSeconds) {}

    static final String SNAPSHOT_TAG = "thaw-demo";
    /** Every method once, in this order: ws learns from the lazy restore just before it. */
    static final List<RestoreMethod> METHODS = List.of(RestoreMethod.QEMU_EAGER, RestoreMethod.QEMU_LOADVM, RestoreMethod.MAPPED_FILE,
            RestoreMethod.THAW_EAGER, RestoreMethod.THAW_LAZY, RestoreMethod.WS_LEARNED);
    /** The baselines' saves, beside the image; removed after the restores. */
    private Path qemuStream;
    private Path qcow2;
    private Path ramFile;

    @Override
    public Integer call() throws Exception {
        long started = System.nanoTime();
        PrintStream out = json ? System.err : System.out;
        DemoGuest guest = shape.toGuest();

        HostDoctor.Report host = HostDoctor.ensureReady(System.err);
        QemuVersion qemu = host.qemuVersion().orElseThrow();
        Accel accel = host.accel();
        String accelReason = host.kvm().map(v -> v.reason()).orElse("");
        GuestImage image = host.guest().orElseThrow();
        out.printf("host: QEMU %s, accelerator %s (%s)%n", qemu, accel.qemuName(), accelReason);
        out.printf("guest: %s, kernel %s, RAM %d MiB, wsbench T=%d MiB W=%d MiB%n", image.key(), image.kernelRelease(),
                guest.memoryMiB(), guest.totalMiB(), guest.wsMiB());
        Path target = imageDir != null ? imageDir : ThawPaths.cacheDir().resolve("demo/image");
        if (imageDir == null) FileTrees.deleteQuietly(target); // the demo's own scratch image from an earlier run
        Files.createDirectories(target.toAbsolutePath().getParent());
        qemuStream = target.resolveSibling(target.getFileName() + ".qemu-stream");
        qcow2 = target.resolveSibling(target.getFileName() + ".qcow2");
        ramFile = target.resolveSibling(target.getFileName() + ".ram");
        for (Path p : List.of(qemuStream, qcow2, ramFile)) Files.deleteIfExists(p);
        VmConfig sourceConfig;

        Progress progress = new Progress(out);
        long initUp;
        long ready;
        Throughput before;
        GuestAgent.MemSum memsumBefore;
        Saver.Result saved;
        long coldFirstMiB = guest.wsMiB();
        long coldMiB = guest.totalMiB() - guest.wsMiB();
        try (QemuVm vm = QemuVm.launch(guest.vmConfig("thaw-demo", image, qemu, accel))) {
            Journal<ConsoleLine>.Cursor cursor = vm.console().cursorFromStart();
            progress.update("booting");
            ConsoleLine readyLine = DemoGuest.awaitReady(vm, cursor, DemoGuest.BOOT_TIMEOUT);
            ready = millisSince(vm.launchedNanos(), readyLine.hostNanos());
            initUp = vm.console().snapshot().stream().filter(l -> l.text().contains("thaw-init up")).findFirst()
                    .map(l -> millisSince(vm.launchedNanos(), l.hostNanos())).orElse(-1L);
            progress.done(String.format("booted: kernel and init up after %.1f s, wsbench ready after %.1f s", initUp / 1000.0, ready / 1000.0));
            before = measure(vm, cursor, progress, "before the save");
            try (GuestAgent agent = GuestAgent.connect(vm)) {
                agent.awaitReady(Duration.ofSeconds(30));
                memsumBefore = agent.memsum(coldFirstMiB, coldMiB);
            }
            out.printf("memsum of the %d MiB wsbench never writes after its fill: %s%n", coldMiB, memsumBefore.checksumHex());
            // QEMU's saves first: each resumes the guest, while Thaw's leaves it stopped to be quit.
            progress.update("saving QEMU's way: migration stream to a file, internal snapshot to qcow2");
            QemuBaselines.saveToFile(vm.qmp(), qemuStream, Duration.ofMinutes(5));
            QemuBaselines.saveInternalSnapshot(vm.qmp(), qcow2, SNAPSHOT_TAG, Duration.ofMinutes(5));
            progress.done(String.format("QEMU's saves: stream %d MiB, qcow2 snapshot %d MiB", Files.size(qemuStream) >> 20,
                    Files.size(qcow2) >> 20));
            saved = Saver.save(vm.qmp(), vm.config(), target, Saver.Options.defaults(),
                    p -> progress.update(String.format("saving: %d MiB read", p.streamBytes() >> 20)));
            Manifest.Stats s = saved.manifest().stats();
            progress.done(String.format("saved in %.2f s (workload running): %d MiB stream -> %d MiB image (%d pages: %d zero, %d stored,"
                            + " %d duplicate) in %s", saved.durationNanos() / 1e9, saved.streamBytes() >> 20, s.imageFileBytes() >> 20,
                    s.pageCount(), s.zeroPageCount(), s.storedPageCount(), s.duplicatePageCount(), saved.image()));
            sourceConfig = vm.config();
            vm.qmp().quit();
            vm.awaitExit(Duration.ofSeconds(10));
        }

        List<ModeResult> modes = new ArrayList<>();
        FileTrees.deleteQuietly(RestoreTraces.directoryFor(target)); // the ws mode learns from this run's lazy restore
        try (CheckpointImage img = CheckpointImage.open(target)) {
            MappedRestore.writeRamFile(img, ramFile);
            for (RestoreMethod method : METHODS) {
                modes.add(restore(method, img, sourceConfig, before, memsumBefore, coldFirstMiB, coldMiB, progress));
            }
        } finally {
            for (Path p : List.of(qemuStream, qcow2, ramFile)) Files.deleteIfExists(p); // large, and only this run's baselines
        }

        out.println();
        String ttrLabel = String.format("TTR(%.0f s, %.1f)", Responsiveness.DEFAULT_WINDOW_NANOS / 1e9, Responsiveness.DEFAULT_UTILIZATION);
        out.printf("%-11s %14s %16s %14s %14s %14s %8s %20s  %s%n", "restore", "running after", "completed after", "demand faults",
                "vCPU stalled", ttrLabel, "MMU", "first " + seconds + " s vs before", "memory");
        for (ModeResult m : modes) {
            out.printf("%-11s %12.2f s %14.2f s %14s %14s %14s %8.2f %19.2fx  %s%n", m.mode(), m.runningSeconds(), m.completedSeconds(),
                    m.demandFaults() == null ? "-" : m.demandFaults().toString(),
                    m.vcpuBlockedMillis() == null || m.vcpuBlockedMillis() < 0 ? "-" : m.vcpuBlockedMillis() + " ms",
                    m.ttrSeconds() == null ? "> " + seconds + " s" : String.format("%.2f s", m.ttrSeconds()), m.mmu(), m.throughputRelative(),
                    m.memsumIdentical() ? "identical" : "DIFFERENT");
        }
        double total = (System.nanoTime() - started) / 1e9;
        out.printf("%ndemo took %.1f s; image kept in %s%n", total, target);
        if (json) {
            System.out.println(Json.write(new DemoReport(qemu.text(), accel.qemuName(), accelReason, image.key(), image.kernelPackage(),
                    guest.memoryMiB(), guest.totalMiB(), guest.wsMiB(), initUp, ready, before.opsPerSecond(), target.toString(),
                    saved.durationNanos() / 1e9, saved.streamBytes(), saved.manifest().stats().imageFileBytes(), saved.manifest().stats(),
                    memsumBefore.checksumHex(), modes, total)));
        }
        return modes.stream().allMatch(ModeResult::memsumIdentical) ? 0 : 1;
    }

    private ModeResult restore(RestoreMethod method, CheckpointImage img, VmConfig source, Throughput before,
                               GuestAgent.MemSum memsumBefore, long coldFirstMiB, long coldMiB, Progress progress) throws InterruptedException {
        long t0 = System.nanoTime();
        String mode = method.shortName();
        String name = "thaw-demo-" + mode;
        QemuVm vm;
        double running;
        double completed;
        Long faults = null;
        Long blocked = null;
        java.util.Optional<Restorer.Mode> thaw = method.thawMode();
        if (thaw.isEmpty()) {
            progress.update(mode + " restore");
            QemuBaselines.RestoreResult r = QemuBaselines.restore(method, source, name,
                    new QemuBaselines.BaselineFiles(qemuStream, qcow2, SNAPSHOT_TAG, ramFile), img, Duration.ofMinutes(5));
            vm = r.vm();
            running = completed = r.runningNanos() / 1e9;
        } else {
            Restorer.Outcome o = Restorer.restore(img, thaw.get(), name, dev.thaw.restore.WorkingSetChoice.defaults(),
                    opt -> opt.withBackgroundRate(backgroundMbps * 1_000_000L), progress::update);
            vm = o.vm();
            running = o.runningSeconds();
            completed = o.completedSeconds();
            faults = o.postcopy().map(PostcopyRestore.Result::demandFaults).orElse(null);
            blocked = o.postcopy().map(PostcopyRestore.Result::vcpuBlockedMillis).orElse(null);
        }
        try (vm) {
            progress.done(String.format("%s restore: guest running after %.2f s, completed after %.2f s%s", mode, running, completed,
                    faults == null ? "" : ", " + faults + " demand faults, vCPU stalled " + blocked + " ms"));
            progress.update(String.format("measuring after the %s restore", mode));
            AfterRestore seen = AfterRestore.observe(vm, t0, (long) (running * 1e9), before.opsPerSecond(), Duration.ofSeconds(seconds));
            double rate = seen.relativeThroughput() * before.opsPerSecond();
            Double ttr = seen.ttrSeconds().orElse(null);
            double mmu = seen.mmu();
            GuestAgent.MemSum memsumAfter;
            try (GuestAgent agent = GuestAgent.connect(vm)) {
                agent.awaitReady(Duration.ofSeconds(30));
                memsumAfter = agent.memsum(coldFirstMiB, coldMiB);
            }
            progress.done(String.format("after the %s restore: %s ops/s over the first %d s (%.2fx of before); memsum %s", mode,
                    human(rate), seconds, before.opsPerSecond() > 0 ? rate / before.opsPerSecond() : 0,
                    memsumAfter.equals(memsumBefore) ? "identical" : "DIFFERENT"));
            vm.qmp().quit();
            vm.awaitExit(Duration.ofSeconds(10));
            return new ModeResult(mode, running, completed, faults, blocked, ttr, mmu, before.opsPerSecond() > 0 ? rate / before.opsPerSecond() : 0,
                    memsumAfter.checksumHex(), memsumAfter.equals(memsumBefore));
        }
    }

    private Throughput measure(QemuVm vm, Journal<ConsoleLine>.Cursor cursor, Progress progress, String when) throws InterruptedException {
        List<WsbenchTick> ticks = new ArrayList<>();
        long start = System.nanoTime();
        long window = Duration.ofSeconds(seconds).toNanos();
        while (System.nanoTime() - start < window) {
            ticks.addAll(DemoGuest.collectTicks(cursor, Duration.ofMillis(500)));
            progress.update(String.format("measuring %s %.1f/%d s: %s ops/s", when, (System.nanoTime() - start) / 1e9, seconds,
                    human(Throughput.of(ticks, Throughput.ONE_SECOND_NANOS).opsPerSecond())));
            if (!vm.isAlive()) throw new IllegalStateException("the guest died: " + vm.describeState());
        }
        Throughput t = Throughput.of(ticks, Throughput.ONE_SECOND_NANOS);
        progress.done(String.format("wsbench %s: %s ops/s mean over %d ticks (1 s windows: min %s, max %s)", when,
                human(t.opsPerSecond()), t.tickCount(), human(t.minWindow()), human(t.maxWindow())));
        return t;
    }

    static long millisSince(long startNanos, long endNanos) {
        return (endNanos - startNanos) / 1_000_000;
    }

    static String human(double opsPerSecond) {
        return opsPerSecond >= 1e6 ? String.format("%.2f M", opsPerSecond / 1e6) : String.format("%.0f k", opsPerSecond / 1e3);
    }
}
