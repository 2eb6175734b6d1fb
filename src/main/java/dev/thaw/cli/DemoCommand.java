package dev.thaw.cli;

import dev.thaw.guest.DemoGuest;
import dev.thaw.guest.GuestImage;
import dev.thaw.host.HostDoctor;
import dev.thaw.image.Manifest;
import dev.thaw.measure.Demo;
import dev.thaw.measure.CacheState;
import dev.thaw.measure.DemoVerdict;
import dev.thaw.measure.SaveRestoreBenchmark;
import dev.thaw.qemu.Accel;
import dev.thaw.qemu.QemuVersion;
import dev.thaw.util.FileTrees;
import dev.thaw.util.ThawPaths;
import java.io.PrintStream;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** The main job ({@link Demo}): checks the host, runs the demo, prints its table (and with --json one object). */
@Command(name = "demo", mixinStandardHelpOptions = true,
        description = {"The main job: save the demo guest and restore it in every mode, compared.",
                "Boots the demo guest, measures it, saves it into an image (and QEMU's own ways), restores it every",
                "way: QEMU eager, QEMU loadvm, a mapped RAM file, Thaw eager, lazy, ws and mapped (the same RAM file with",
                "Thaw's working set read into the page cache first); ends with the comparison. The image and its RAM file stay.",
                "A preset of 'thaw bench' (one repetition, these methods, memory checked, close calls run again): it prints the",
                "bench command that measures the same. Installs what the host lacks first (see 'thaw doctor')."})
final class DemoCommand implements Callable<Integer> {
    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Mixin
    GuestShape shape;

    @Option(names = "--seconds", defaultValue = "5", description = "How long to measure the workload before the save and after each restore (default ${DEFAULT-VALUE}).")
    int seconds;

    @Option(names = "--image", description = "Where to save the image (default: demo/image in the cache, replaced on each run).")
    Path imageDir;

    @Mixin
    PostcopyTuning tuning;

    @Option(names = "--warm", description = "Restore from the page cache: do not evict the saved files before each restore (by default"
            + " each restore starts with the image's files, QEMU's stream and qcow2 out of the cache, as a snapshot saved earlier or"
            + " elsewhere; QEMU and the guest kernel stay cached).")
    boolean warm;

    @Option(names = "--close-runs", defaultValue = "3", description = "Runs of ws and of each baseline whose first stall TTR came"
            + " within 0.15 s of ws's (or beat it), interleaved; the table gives their medians (default ${DEFAULT-VALUE}; 1: every"
            + " method once). One run cannot order restores this close on a noisy host.")
    int closeRuns;

    @Option(names = "--huge-page-pool", defaultValue = "auto", description = PoolOption.DESCRIPTION)
    String hugePagePool;

    @Option(names = "--json", description = "Print one JSON object summarizing what the demo did and measured.")
    boolean json;

    /**
     * What {@code --json} prints.
     *
     * @param bench the bench's report of the run (the demo is its preset: {@code benchEquivalent} measures the same)
     */
    record DemoReport(String qemuVersion, String accel, String accelReason, String guestKey, String guestKernel,
                      long memoryMiB, long totalMiB, long wsMiB, String layout, String cache, long wsbenchReadyMillis,
                      double opsPerSecondBefore, String imageDir, double saveSeconds, long streamBytes, long imageBytes,
                      Manifest.Stats imageStats, String memsumBefore, List<Demo.ModeResult> modes, List<Demo.ModeResult> repeats,
                      List<SaveRestoreBenchmark.Failure> failures, String verdict, String benchEquivalent, double totalSeconds,
                      SaveRestoreBenchmark.Report bench) {}

    @Override
    public Integer call() throws Exception {
        tuning.validate();
        SaveRestoreBenchmark.requireCloseRuns(closeRuns);
        long started = System.nanoTime();
        PrintStream out = json ? System.err : System.out;
        DemoGuest guest = shape.toGuest();

        HostDoctor.Report host = HostDoctor.ensureReady(System.err);
        QemuVersion qemu = host.qemuVersion().orElseThrow();
        Accel accel = host.accel();
        String accelReason = host.kvm().map(v -> v.reason()).orElse("");
        GuestImage image = host.guest().orElseThrow();
        Path target = imageDir != null ? imageDir : ThawPaths.cacheDir().resolve("demo/image");
        if (imageDir == null) FileTrees.deleteQuietly(target); // the demo's own scratch image from an earlier run
        Duration measure = Duration.ofSeconds(seconds);
        Demo.Config config = new Demo.Config(guest, measure, target, tuning::applyTo, PostcopyTuning.given(spec.commandLine()),
                warm ? CacheState.WARM : CacheState.EVICTED, closeRuns);
        out.printf("host: QEMU %s, accelerator %s (%s)%n", qemu, accel.qemuName(), accelReason);
        out.printf("guest: %s, kernel %s, RAM %d MiB, wsbench T=%d MiB W=%d MiB %s%n", image.key(), image.kernelRelease(),
                guest.memoryMiB(), guest.totalMiB(), guest.wsMiB(), guest.layout().key());
        out.println(warm ? "restores: from the page cache (--warm: the saved files as the save left them cached)"
                : "restores: each from saved files out of the page cache (evicted before it; QEMU and the guest kernel stay cached)");
        out.println("the same measurement as: " + config.benchEquivalent());

        Demo.Result r;
        try (AutoCloseable pool = PoolOption.hold(hugePagePool, guest.memoryMiB(), out)) {
            r = Demo.run(config, image, qemu, accel, out);
        }

        out.println();
        SaveRestoreBenchmark.Sample sample = r.sample();
        out.printf("saved in %.2f s (workload running): %d MiB stream -> %d MiB image (%d pages: %d zero, %d stored, %d duplicate)%n",
                sample.saves().thawSaveSeconds(), sample.saves().streamBytes() >> 20, r.image().imageFileBytes() >> 20,
                r.image().pageCount(), r.image().zeroPageCount(), r.image().storedPageCount(), r.image().duplicatePageCount());
        out.printf("wsbench before the save: %s ops/s%s; memsum of the %d MiB it never writes after its fill: %s%n",
                Demo.human(sample.opsPerSecondBefore()), sample.unstalledShareBefore() == null ? ""
                        : String.format(", not stalled %.0f%% of its time (the stall TTR's reference)", 100 * sample.unstalledShareBefore()),
                guest.totalMiB() - guest.wsMiB(), sample.memsumBefore());
        out.print(Demo.table(r.all(), measure));
        for (SaveRestoreBenchmark.Failure f : r.failures()) out.printf("FAILED: %s: %s%n", f.method().shortName(), f.error());
        double total = (System.nanoTime() - started) / 1e9;
        out.printf("%ndemo took %.1f s; image kept in %s%n", total, target);
        if (json) {
            System.out.println(Json.write(new DemoReport(qemu.text(), accel.qemuName(), accelReason, image.key(), image.kernelPackage(),
                    guest.memoryMiB(), guest.totalMiB(), guest.wsMiB(), guest.layout().key(), config.cache().label(), r.report().readyMillis(),
                    sample.opsPerSecondBefore(), target.toString(), sample.saves().thawSaveSeconds(), sample.saves().streamBytes(),
                    r.image().imageFileBytes(), r.image(), sample.memsumBefore(), r.modes(), r.repeats(), r.failures(),
                    DemoVerdict.verdict(r.all()), config.benchEquivalent(), total, r.report())));
        }
        return r.intact() ? 0 : 1;
    }
}
