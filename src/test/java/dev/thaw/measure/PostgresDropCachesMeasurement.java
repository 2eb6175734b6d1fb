package dev.thaw.measure;

import dev.thaw.guest.GuestBuilder;
import dev.thaw.guest.PostgresDisk;
import dev.thaw.guest.PostgresGuest;
import dev.thaw.image.Manifest;
import dev.thaw.qemu.QemuVm;
import dev.thaw.qemu.VmConfig;
import dev.thaw.save.Saver;
import dev.thaw.testing.TestHost;
import dev.thaw.util.FileTrees;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.function.UnaryOperator;

/**
 * {@code thaw save --drop-caches} on the PostgreSQL guest (docs/benchmarks.md, "Dropped page cache (issue 17)"): per
 * repetition, interleaved (the order rotated), the PostgreSQL guest (RAM_MIB, free-page reporting on, a fresh overlay of its
 * built disk) serves the bench's JDBC client for LOAD_S seconds (its rate then is the reference), is saved with the dirty
 * estimator with or without the drop, its source quits, the image and its disk are evicted from the host's page cache, and a
 * ws (dirty) restore is observed by the same client for 5 s ({@link Workload.Postgres#observe}). One line per run:
 * {@code pg-drop-caches MODE rep= stream_bytes= image_bytes= save_s= downtime_s= cache_before_mib= cache_after_mib= drop_s=
 * running_s= ttr_s= work= p50_us= p99_us= max_us=}.
 * {@code java -cp ... dev.thaw.measure.PostgresDropCachesMeasurement RAM_MIB LOAD_S REPETITIONS}.
 */
public final class PostgresDropCachesMeasurement {
    private static final Duration OBSERVE = Duration.ofSeconds(5);

    private PostgresDropCachesMeasurement() {}

    public static void main(String[] args) throws Exception {
        repeat(args, "thaw-pg-drop-caches-", (guest, built, load, rep, dir) -> {
            for (int u = 0; u < 2; u++) {
                boolean drop = (u + rep) % 2 == 1; // rotated: kept first in even repetitions
                System.out.println(run(guest, built, load, drop, rep, dir.resolve(drop ? "dropped" : "kept")));
            }
        });
    }

    /** One repetition of a measurement on the PostgreSQL guest, in its own directory. */
    interface Repetition {
        void run(PostgresGuest guest, PostgresDisk built, Duration load, int rep, Path dir) throws Exception;
    }

    /** Parses {@code RAM_MIB LOAD_S REPETITIONS}, builds (or finds) the guest's disk, runs each repetition under /var/tmp, then exits. */
    static void repeat(String[] args, String dirPrefix, Repetition repetition) throws Exception {
        if (args.length != 3) throw new IllegalArgumentException("expected RAM_MIB LOAD_S REPETITIONS, actual " + args.length);
        PostgresGuest guest = new PostgresGuest(Long.parseLong(args[0]));
        Duration load = Duration.ofSeconds(Long.parseLong(args[1]));
        int repetitions = Integer.parseInt(args[2]);
        PostgresDisk built = GuestBuilder.buildPostgresDisk(System.err);
        Path dir = Files.createTempDirectory(Path.of("/var/tmp"), dirPrefix);
        try {
            for (int rep = 0; rep < repetitions; rep++) repetition.run(guest, built, load, rep, dir.resolve("r" + rep));
        } finally {
            FileTrees.deleteQuietly(dir);
        }
        System.exit(0); // the JVM's non-daemon threads of the test host's doctor end with it
    }

    private static String run(PostgresGuest guest, PostgresDisk built, Duration load, boolean drop, int rep, Path dir) throws Exception {
        String name = "thaw-pgdrop-" + rep + (drop ? "d" : "k");
        Path disk = PostgresGuest.bootDisk(built, dir, name);
        Workload.Postgres g = new Workload.Postgres(guest, disk);
        VmConfig base = g.vmConfig(name, TestHost.guest(), TestHost.qemu(), TestHost.accel());
        Path image = dir.resolve("image");
        Saver.Result saved;
        Workload.Before before;
        try (QemuVm vm = QemuVm.launch(DropCachesMeasurement.withReporting(base))) {
            g.awaitReady(vm);
            before = g.before(vm, load);
            saved = DropCachesMeasurement.saveAndQuit(vm, image, drop);
        }
        Manifest.PageCacheDrop d = saved.manifest().pageCacheDrop();
        CacheState.EVICTED.prepare(List.of(image, disk));
        String restored = name + "-restored";
        long start = System.nanoTime();
        try (Workload.Observation observation = g.observe(restored, start, before)) {
            MethodRestore.Restored r = MethodRestore.restore(RestoreMethod.WS_DIRTY, new MethodRestore.Saved(null,
                    new MethodRestore.Image.At(image), null), restored, UnaryOperator.identity(), x -> {});
            long lead = r.startedNanos() - start;
            try (QemuVm vm = r.vm()) {
                AfterRestore after = observation.finish(vm, lead + r.runningNanos(), OBSERVE);
                return String.format("pg-drop-caches %s rep=%d stream_bytes=%d image_bytes=%d save_s=%.3f downtime_s=%.3f cache_before_mib=%s"
                                + " cache_after_mib=%s drop_s=%s running_s=%.3f ttr_s=%s work=%.2f p50_us=%s p99_us=%s max_us=%s",
                        drop ? "dropped" : "kept", rep, saved.streamBytes(), saved.manifest().stats().imageFileBytes(),
                        saved.durationNanos() / 1e9, saved.downtimeNanos() / 1e9, d == null ? "-" : d.pageCacheBytesBefore() >> 20,
                        d == null ? "-" : d.pageCacheBytesAfter() >> 20, d == null ? "-" : String.format("%.3f", d.dropNanos() / 1e9),
                        (lead + r.runningNanos()) / 1e9, after.ttrSeconds().map(s -> String.format("%.3f", s)).orElse("never"),
                        after.relativeThroughput(), after.latency() == null ? "-" : String.format("%.0f", after.latency().p50Micros()),
                        after.latency() == null ? "-" : String.format("%.0f", after.latency().p99Micros()),
                        after.latency() == null ? "-" : String.format("%.0f", after.latency().maxMicros()));
            }
        } finally {
            FileTrees.deleteQuietly(dir);
        }
    }
}
