package dev.thaw.measure;

import dev.thaw.qemu.QemuVm;
import dev.thaw.qemu.QmpClient;
import dev.thaw.qemu.VmConfig;
import dev.thaw.restore.IncomingQemu;
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
 * {@code -incoming defer} QEMU fed by {@code migrate-incoming "exec:cat FILE"}, then {@code cont};
 * and an internal snapshot in a qcow2 file ({@code savevm}, then {@code loadvm} into a fresh paused
 * QEMU). The guest has no disk, so the qcow2 file is attached as a block node without a device
 * ({@code blockdev-add}): it holds only the snapshot and adds no device state.
 */
public final class QemuBaselines {
    private QemuBaselines() {}

    /** @param fsyncNanos the extra time to fsync the file afterwards (QEMU does not) */
    public record SaveResult(long durationNanos, long fsyncNanos, long fileBytes) {}

    public record RestoreResult(QemuVm vm, long qemuReadyNanos, long runningNanos) {}

    /** What the baseline restores read ({@link MethodRestore}): QEMU's stream file, the qcow2 file with its snapshot's tag, the raw RAM file. */
    public record BaselineFiles(Path stream, Path qcow2, String snapshotTag, Path ramFile) {}

    /**
     * Saves a running guest with QEMU's own migration to a file; the guest is resumed afterwards. {@code atStop} runs once it
     * stopped, before the migration (where a guest's disks are frozen for this save, as Thaw's save does: QEMU inactivates its
     * disks when an outgoing migration completes).
     */
    public static SaveResult saveToFile(QmpClient qmp, Path file, Duration timeout, Runnable atStop) {
        long start = System.nanoTime();
        qmp.migrateSetParameters(Map.of("max-bandwidth", 64L << 30));
        qmp.stop();
        atStop.run();
        qmp.migrate("exec:cat > " + file);
        qmp.awaitMigrationCompleted(timeout);
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
            IncomingQemu.awaitCompleted(vm, timeout);
            vm.qmp().cont();
            return new RestoreResult(vm, ready, System.nanoTime() - start);
        } catch (RuntimeException e) {
            vm.close();
            throw e;
        }
    }

    /** The block node that holds the internal snapshot, on the saving and the loading QEMU alike. */
    static final String SNAPSHOT_NODE = "thaw-snapshot";

    /** @param fileBytes the qcow2 file's size after the snapshot */
    public record SnapshotResult(long durationNanos, long fileBytes) {}

    /**
     * Stops the guest, writes an internal snapshot {@code tag} into a new qcow2 file with HMP {@code savevm}, and resumes it.
     * The file is fsynced; its node is removed again, so the guest's configuration is unchanged.
     */
    public static SnapshotResult saveInternalSnapshot(QmpClient qmp, Path qcow2, String tag, Duration timeout) {
        ExternalCommand.check(List.of("qemu-img", "create", "-q", "-f", "qcow2", qcow2.toString(), "1M"), Duration.ofSeconds(30));
        qmp.execute("blockdev-add", snapshotNode(qcow2));
        try {
            long start = System.nanoTime();
            qmp.stop();
            hmp(qmp, "savevm " + tag, timeout, "savevm into " + qcow2);
            long saved = System.nanoTime() - start;
            qmp.cont();
            return new SnapshotResult(saved, fsync(qcow2));
        } finally {
            qmp.execute("blockdev-del", JSON.createObjectNode().put("node-name", SNAPSHOT_NODE));
        }
    }

    /** Starts a fresh paused QEMU with the qcow2 file attached, loads the snapshot {@code tag} and starts the guest. */
    public static RestoreResult loadInternalSnapshot(VmConfig saved, String name, Path qcow2, String tag, Duration timeout) {
        long start = System.nanoTime();
        QemuVm vm = QemuVm.launch(saved.asPaused(name), List.of("-blockdev", snapshotNode(qcow2).toString()));
        try {
            long ready = System.nanoTime() - start;
            hmp(vm.qmp(), "loadvm " + tag, timeout, "loadvm from " + qcow2);
            vm.qmp().cont();
            return new RestoreResult(vm, ready, System.nanoTime() - start);
        } catch (RuntimeException e) {
            vm.close();
            throw e;
        }
    }

    private static final com.fasterxml.jackson.databind.ObjectMapper JSON = new com.fasterxml.jackson.databind.ObjectMapper();

    private static com.fasterxml.jackson.databind.node.ObjectNode snapshotNode(Path qcow2) {
        var node = JSON.createObjectNode().put("driver", "qcow2").put("node-name", SNAPSHOT_NODE);
        node.putObject("file").put("driver", "file").put("filename", qcow2.toString());
        return node;
    }

    /** HMP reports a failure as text, not as a QMP error: any output of savevm or loadvm is one. */
    private static void hmp(QmpClient qmp, String command, Duration timeout, String what) {
        String out = qmp.execute("human-monitor-command", JSON.createObjectNode().put("command-line", command), timeout).asText().strip();
        if (!out.isEmpty()) throw new IllegalStateException(what + " failed: expected no output from HMP '" + command + "', actual: " + out);
    }

    private static long fsync(Path file) {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
            ch.force(true);
            return ch.size();
        } catch (IOException e) {
            throw new IllegalStateException("cannot fsync " + file + ": " + e.getMessage(), e);
        }
    }

    /** Drops the host's page cache (root only), so a restore reads from storage. */
    public static boolean dropCaches() {
        ExternalCommand.Result r = ExternalCommand.run(List.of("sh", "-c", "sync && echo 3 > /proc/sys/vm/drop_caches"), Duration.ofMinutes(2));
        return r.succeeded();
    }
}
