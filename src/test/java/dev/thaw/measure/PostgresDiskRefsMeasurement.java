package dev.thaw.measure;

import dev.thaw.guest.PostgresDisk;
import dev.thaw.guest.PostgresGuest;
import dev.thaw.image.CheckpointImage;
import dev.thaw.qemu.QemuVm;
import dev.thaw.qemu.VmConfig;
import dev.thaw.save.DiskFreeze;
import dev.thaw.save.Saver;
import dev.thaw.testing.TestHost;
import java.nio.file.Path;
import java.time.Duration;

/**
 * Disk references into the PostgreSQL guest's qcow2 chain (docs/benchmarks.md, seventeenth session): per repetition the
 * PostgreSQL guest (RAM_MIB, no balloon, as the bench's; a fresh qcow2 overlay of its built disk) serves the bench's JDBC
 * client for LOAD_S seconds, then is saved twice with {@code --keep-running}, with references (the default) and with
 * {@code --no-disk-refs}, the order rotated (references first in even repetitions); the image with references is then
 * verified (every referenced block read from its file and checked). "stream" is QEMU's stream the stopped save read. One
 * line per save: {@code pg-disk-refs MODE rep= order= stream_bytes= image_bytes= ratio= disk_ref_pages= disk_ref_blocks=
 * format= save_s= downtime_s= verified_blocks=}.
 * {@code java -cp ... dev.thaw.measure.PostgresDiskRefsMeasurement RAM_MIB LOAD_S REPETITIONS}.
 */
public final class PostgresDiskRefsMeasurement {
    private PostgresDiskRefsMeasurement() {}

    public static void main(String[] args) throws Exception {
        PostgresDropCachesMeasurement.repeat(args, "thaw-pg-disk-refs-", PostgresDiskRefsMeasurement::run);
    }

    private static void run(PostgresGuest guest, PostgresDisk built, Duration load, int rep, Path dir) throws Exception {
        String name = "thaw-pgrefs-" + rep;
        Path disk = PostgresGuest.bootDisk(built, dir, name);
        Workload.Postgres g = new Workload.Postgres(guest, disk);
        VmConfig config = g.vmConfig(name, TestHost.guest(), TestHost.qemu(), TestHost.accel());
        try (QemuVm vm = QemuVm.launch(config)) {
            g.awaitReady(vm);
            g.before(vm, load);
            for (int u = 0; u < 2; u++) {
                boolean refs = (u + rep) % 2 == 0;
                Path image = dir.resolve(refs ? "refs" : "norefs");
                Saver.Result saved = Saver.save(vm.qmp(), config, image,
                        Saver.Options.defaults().withKeepRunning(true).withDiskReferences(refs), p -> {});
                config = DiskFreeze.following(config, saved.sourceOverlays());
                long verified;
                try (CheckpointImage opened = CheckpointImage.open(image)) {
                    verified = opened.verifyDiskReferences();
                }
                var s = saved.manifest().stats();
                System.out.printf("pg-disk-refs %s rep=%d order=%d stream_bytes=%d image_bytes=%d ratio=%.3f disk_ref_pages=%d disk_ref_blocks=%d"
                                + " format=%d save_s=%.3f downtime_s=%.3f verified_blocks=%d%n", refs ? "refs" : "no-refs", rep, u,
                        saved.streamBytes(), s.imageFileBytes(), (double) s.imageFileBytes() / saved.streamBytes(), s.diskReferencePageCount(),
                        verified, saved.manifest().formatVersion(), saved.durationNanos() / 1e9, saved.downtimeNanos() / 1e9, verified);
            }
            vm.qmp().quit();
            vm.awaitExit(Duration.ofSeconds(10));
        }
    }
}
