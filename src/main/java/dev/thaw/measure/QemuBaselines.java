package dev.thaw.measure;

import dev.thaw.qemu.QemuVm;
import dev.thaw.qemu.QmpClient;
import dev.thaw.qemu.VmConfig;
import dev.thaw.util.ExternalCommand;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.List;
import java.util.Map;

/**
 * QEMU's own save and restore, run the way the baselines were measured on these machines
 * (see docs/benchmarks.md): {@code migrate "exec:cat > FILE"} of a stopped guest, and a fresh
 * {@code -incoming defer} QEMU fed by {@code migrate-incoming "exec:cat FILE"}, then {@code cont}.
 */
public final class QemuBaselines {
    private QemuBaselines() {}

    /** @param fsyncNanos the extra time to fsync the file afterwards (QEMU does not) */
    public record SaveResult(long durationNanos, long fsyncNanos, long fileBytes) {}

    public record RestoreResult(QemuVm vm, long qemuReadyNanos, long runningNanos) {}

    /** Saves a running guest with QEMU's own migration to a file; the guest is resumed afterwards. */
    public static SaveResult saveToFile(QmpClient qmp, Path file, Duration timeout) {
        long start = System.nanoTime();
        qmp.migrateSetParameters(Map.of("max-bandwidth", 64L << 30));
        qmp.stop();
        qmp.migrate("exec:cat > " + file);
        awaitCompleted(qmp, timeout, "QEMU's save to " + file);
        long saved = System.nanoTime() - start;
        long fsyncStart = System.nanoTime();
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
            ch.force(true);
            long size = ch.size();
            long fsync = System.nanoTime() - fsyncStart;
            qmp.cont();
            return new SaveResult(saved, fsync, size);
        } catch (IOException e) {
            throw new IllegalStateException("cannot fsync " + file + ": " + e.getMessage(), e);
        }
    }

    /** Restores QEMU's own saved stream eagerly into a new QEMU and starts it. The caller closes the VM. */
    public static RestoreResult restoreFromFile(VmConfig saved, String name, Path file, Duration timeout) {
        long start = System.nanoTime();
        QemuVm vm = QemuVm.launch(saved.asIncoming(name));
        try {
            long ready = System.nanoTime() - start;
            vm.qmp().migrateIncoming("exec:cat " + file);
            awaitCompleted(vm.qmp(), timeout, "QEMU's restore from " + file);
            vm.qmp().cont();
            return new RestoreResult(vm, ready, System.nanoTime() - start);
        } catch (RuntimeException e) {
            vm.close();
            throw e;
        }
    }

    static void awaitCompleted(QmpClient qmp, Duration timeout, String what) {
        QmpClient.MigrationInfo info = qmp.awaitMigrationEnd(timeout);
        if (!info.completed()) throw new IllegalStateException(what + " " + info.status() + ": " + info.errorDescription());
    }

    /** Drops the host's page cache (root only), so a restore reads from storage. */
    public static boolean dropCaches() {
        ExternalCommand.Result r = ExternalCommand.run(List.of("sh", "-c", "sync && echo 3 > /proc/sys/vm/drop_caches"), Duration.ofMinutes(2));
        return r.succeeded();
    }
}
