package dev.thaw.cli;

import dev.thaw.guest.DemoGuest;
import dev.thaw.guest.GuestAgent;
import dev.thaw.guest.GuestImage;
import dev.thaw.guest.WsbenchTick;
import dev.thaw.host.HostDoctor;
import dev.thaw.image.CheckpointImage;
import dev.thaw.image.Manifest;
import dev.thaw.measure.Throughput;
import dev.thaw.qemu.Accel;
import dev.thaw.qemu.ConsoleLine;
import dev.thaw.qemu.Journal;
import dev.thaw.qemu.QemuVersion;
import dev.thaw.qemu.QemuVm;
import dev.thaw.restore.EagerRestore;
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
 * an image with the workload paused (so that memory can be compared), restore it in every mode
 * built so far, compare memory checksums and throughput, and print the comparison.
 */
@Command(name = "demo", mixinStandardHelpOptions = true,
        description = {"Boots the demo guest, measures it, saves it into an image, restores it in every mode and prints",
                "the comparison. Installs what the host lacks first (see 'thaw doctor')."})
final class DemoCommand implements Callable<Integer> {
    @Mixin
    GuestShape shape;

    @Option(names = "--seconds", defaultValue = "5", description = "How long to measure the workload before the save and after each restore (default ${DEFAULT-VALUE}).")
    int seconds;

    @Option(names = "--image", description = "Where to save the image (default: demo/image in the cache, replaced on each run).")
    Path imageDir;

    @Option(names = "--json", description = "Print one JSON object summarizing what the demo did and measured.")
    boolean json;

    /** One restore mode's result. Seconds from the start of the restore. */
    record ModeResult(String mode, double runningSeconds, double completedSeconds, Long demandFaults,
                      double throughputRelative, String memsumAfter, boolean memsumIdentical) {}

    /** What {@code --json} prints. Boot times are milliseconds from QEMU's launch. */
    record DemoReport(String qemuVersion, String accel, String accelReason, String guestKey, String guestKernel,
                      long memoryMiB, long totalMiB, long wsMiB,
                      long initUpMillis, long wsbenchReadyMillis, double opsPerSecondBefore,
                      String imageDir, double saveSeconds, long streamBytes, long imageBytes, Manifest.Stats imageStats,
                      String memsumBefore, List<ModeResult> modes, double totalSeconds) {}

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

        Progress progress = new Progress(out);
        long initUp;
        long ready;
        Throughput before;
        GuestAgent.MemSum memsumBefore;
        Saver.Result saved;
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
                agent.pauseWorkload();
                memsumBefore = agent.memsum();
            }
            out.printf("workload paused; memsum of its %d MiB: %s%n", memsumBefore.byteCount() >> 20, memsumBefore.checksumHex());
            saved = Saver.save(vm.qmp(), vm.config(), target, Saver.Options.defaults(),
                    p -> progress.update(String.format("saving: %d MiB read", p.streamBytes() >> 20)));
            Manifest.Stats s = saved.manifest().stats();
            progress.done(String.format("saved in %.2f s: %d MiB stream -> %d MiB image (%d pages: %d zero, %d stored, %d duplicate) in %s",
                    saved.durationNanos() / 1e9, saved.streamBytes() >> 20, s.imageFileBytes() >> 20, s.pageCount(), s.zeroPageCount(),
                    s.storedPageCount(), s.duplicatePageCount(), saved.image()));
            vm.qmp().quit();
            vm.awaitExit(Duration.ofSeconds(10));
        }

        List<ModeResult> modes = new ArrayList<>();
        try (CheckpointImage img = CheckpointImage.open(target)) {
            modes.add(restoreEager(img, before, memsumBefore, progress));
        }

        out.println();
        out.printf("%-6s %16s %18s %14s %22s  %s%n", "mode", "running after", "completed after", "demand faults", "first " + seconds
                + " s vs before", "memsum");
        for (ModeResult m : modes) {
            out.printf("%-6s %14.2f s %16.2f s %14s %21.2fx  %s%n", m.mode(), m.runningSeconds(), m.completedSeconds(),
                    m.demandFaults() == null ? "-" : m.demandFaults().toString(), m.throughputRelative(),
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

    private ModeResult restoreEager(CheckpointImage img, Throughput before, GuestAgent.MemSum memsumBefore, Progress progress)
            throws InterruptedException {
        EagerRestore.Result r = EagerRestore.restore(img, EagerRestore.Options.defaults("thaw-demo-eager"),
                p -> progress.update(String.format("eager restore: %d/%d pages", p.pagesSent(), p.pageCount())));
        try (QemuVm vm = r.vm()) {
            progress.done(String.format("eager restore: guest running after %.2f s", r.runningNanos() / 1e9));
            Journal<ConsoleLine>.Cursor cursor = vm.console().cursor();
            GuestAgent.MemSum after;
            try (GuestAgent agent = GuestAgent.connect(vm)) {
                agent.awaitReady(Duration.ofSeconds(30));
                after = agent.memsum();
                agent.resumeWorkload();
            }
            Throughput t = measure(vm, cursor, progress, "after the eager restore");
            vm.qmp().quit();
            vm.awaitExit(Duration.ofSeconds(10));
            return new ModeResult("eager", r.runningNanos() / 1e9, r.runningNanos() / 1e9, null,
                    before.opsPerSecond() > 0 ? t.opsPerSecond() / before.opsPerSecond() : 0, after.checksumHex(), after.equals(memsumBefore));
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
