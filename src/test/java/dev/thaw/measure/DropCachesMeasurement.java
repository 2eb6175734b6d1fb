package dev.thaw.measure;

import dev.thaw.guest.DemoGuest;
import dev.thaw.guest.GuestAgent;
import dev.thaw.image.Manifest;
import dev.thaw.qemu.FreePages;
import dev.thaw.qemu.QemuVm;
import dev.thaw.qemu.VmConfig;
import dev.thaw.save.Saver;
import dev.thaw.testing.TestHost;
import dev.thaw.util.FileTrees;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.UnaryOperator;

/**
 * The cost and the gain of {@code thaw save --drop-caches} (docs/benchmarks.md, "Dropped page cache (issue 17)"): per
 * repetition, interleaved (the order rotated), a demo guest (RAM_MIB, wsbench T and W as given, free-page reporting on, a
 * read-only raw disk of READ_MIB random bytes) reads its disk through its page cache, runs its workload, and is
 * saved with the dirty estimator (as {@code thaw save --estimator dirty}) with or without the drop; its source quits, the
 * image's files are evicted from the host's cache, and a ws (dirty) restore is observed as the bench observes it
 * ({@link AfterRestore}); then the guest reads the same READ_MIB again, timed (from its restored cache, or from the disk
 * after a drop). One line per run: {@code drop-caches MODE rep= stream_bytes= image_bytes= save_s= downtime_s= cache_before_mib=
 * cache_after_mib= drop_s= running_s= stall_ttr_s= ttr_s= work= reread_s=}.
 * {@code java -cp ... dev.thaw.measure.DropCachesMeasurement RAM_MIB TOTAL_MIB WS_MIB READ_MIB REPETITIONS}.
 */
public final class DropCachesMeasurement {
    private static final Duration OBSERVE = Duration.ofSeconds(5);
    private static final Duration LIVE_LIMIT = Duration.ofSeconds(5);

    private DropCachesMeasurement() {}

    public static void main(String[] args) throws Exception {
        if (args.length != 5) throw new IllegalArgumentException("expected RAM_MIB TOTAL_MIB WS_MIB READ_MIB REPETITIONS, actual " + args.length);
        Workload.Wsbench g = new Workload.Wsbench(new DemoGuest(Long.parseLong(args[0]), Long.parseLong(args[1]), Long.parseLong(args[2])));
        long readMiB = Long.parseLong(args[3]);
        int repetitions = Integer.parseInt(args[4]);
        Path dir = Files.createTempDirectory(Path.of("/var/tmp"), "thaw-drop-caches-");
        try {
            for (int rep = 0; rep < repetitions; rep++) {
                for (int u = 0; u < 2; u++) {
                    boolean drop = (u + rep) % 2 == 1; // rotated: kept first in even repetitions
                    System.out.println(run(g, readMiB, drop, rep, dir.resolve("r" + rep + (drop ? "-dropped" : "-kept"))));
                }
            }
        } finally {
            FileTrees.deleteQuietly(dir);
        }
        System.exit(0); // the JVM's non-daemon threads of the test host's doctor end with it
    }

    /** Saves with the dirty estimator (a 5 s probe), dropping the cache first if asked, then quits the source. */
    static Saver.Result saveAndQuit(QemuVm vm, Path image, boolean drop) {
        // Without disk references, as the fourteenth session measured: they would take the kept cache's disk pages too.
        Saver.Options options = Saver.Options.defaults().withDirtyEstimator(LIVE_LIMIT).withDiskReferences(false);
        if (drop) options = options.withDropCaches(vm.controlSocket());
        Saver.Result saved = Saver.save(vm.qmp(), vm.config(), image, options, p -> {});
        vm.qmp().quit();
        vm.awaitExit(Duration.ofSeconds(10));
        return saved;
    }

    /** {@code config} with a balloon that reports free pages. */
    static VmConfig withReporting(VmConfig config) {
        List<String> extra = new ArrayList<>(config.extraArgs());
        extra.addAll(FreePages.REPORTING.arguments());
        return config.withExtraArgs(extra);
    }

    private static String run(Workload.Wsbench g, long readMiB, boolean drop, int rep, Path dir) throws Exception {
        Files.createDirectories(dir);
        Path disk = dev.thaw.testing.RandomFiles.write(dir.resolve("data.raw"), readMiB, 17 + rep);
        VmConfig base = g.vmConfig("thaw-drop-" + rep, TestHost.guest(), TestHost.qemu(), TestHost.accel());
        VmConfig config = withReporting(base).withDisks(List.of(new VmConfig.Disk("disk0", "raw", disk, true, "05.0")));
        Path image = dir.resolve("image");
        Saver.Result saved;
        Workload.Before before;
        try (QemuVm vm = QemuVm.launch(config)) {
            g.awaitReady(vm);
            try (GuestAgent agent = GuestAgent.connect(vm)) {
                agent.awaitReady(Duration.ofSeconds(30));
                agent.diskRead(0, readMiB);
            }
            Thread.sleep(2000); // let the workload run before it is measured
            before = g.before(vm, OBSERVE);
            saved = saveAndQuit(vm, image, drop);
        }
        Manifest.PageCacheDrop d = saved.manifest().pageCacheDrop();
        CacheState.EVICTED.prepare(List.of(image, disk));
        MethodRestore.Restored r = MethodRestore.restore(RestoreMethod.WS_DIRTY, new MethodRestore.Saved(null,
                new MethodRestore.Image.At(image), null), "thaw-drop-restored-" + rep, UnaryOperator.identity(), x -> {});
        try (QemuVm vm = r.vm()) {
            AfterRestore after = AfterRestore.observe(vm, r.startedNanos(), r.runningNanos(), before.opsPerSecond(), OBSERVE);
            double reread;
            try (GuestAgent agent = GuestAgent.connect(vm)) {
                agent.awaitReady(Duration.ofSeconds(30));
                long t = System.nanoTime();
                agent.diskRead(0, readMiB);
                reread = (System.nanoTime() - t) / 1e9;
            }
            return String.format("drop-caches %s rep=%d stream_bytes=%d image_bytes=%d save_s=%.3f downtime_s=%.3f cache_before_mib=%s"
                            + " cache_after_mib=%s drop_s=%s running_s=%.3f stall_ttr_s=%s ttr_s=%s work=%.2f reread_s=%.3f",
                    drop ? "dropped" : "kept", rep, saved.streamBytes(), saved.manifest().stats().imageFileBytes(), saved.durationNanos() / 1e9,
                    saved.downtimeNanos() / 1e9, d == null ? "-" : d.pageCacheBytesBefore() >> 20, d == null ? "-" : d.pageCacheBytesAfter() >> 20,
                    d == null ? "-" : String.format("%.3f", d.dropNanos() / 1e9), r.runningNanos() / 1e9,
                    after.stallTtrSeconds().map(s -> String.format("%.3f", s)).orElse("never"),
                    after.ttrSeconds().map(s -> String.format("%.3f", s)).orElse("never"), after.relativeThroughput(), reread);
        } finally {
            FileTrees.deleteQuietly(dir);
        }
    }
}
