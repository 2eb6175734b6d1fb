package dev.thaw.restore;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.thaw.image.CheckpointImage;
import dev.thaw.migration.RamBlock;
import dev.thaw.migration.StreamWriter;
import dev.thaw.migration.Wire;
import dev.thaw.qemu.QemuVm;
import dev.thaw.qemu.QmpClient;
import dev.thaw.qemu.QmpException;
import dev.thaw.qemu.VmConfig;
import dev.thaw.util.ThawPaths;
import dev.thaw.util.CountingOutputStream;
import dev.thaw.util.StallWatchdog;
import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;

/**
 * Eager restore: a fresh QEMU with the saved configuration and {@code -incoming defer} is fed a
 * plain precopy stream (the saved header, every page, the device state, EOF and the description
 * trailer), and started once it reports the migration {@code completed}. The baseline every other
 * mode is measured against, and the proof that an image is right. The image is only read.
 */
public final class EagerRestore {
    private static final ObjectMapper JSON = new ObjectMapper().findAndRegisterModules();
    public record Options(String vmName, Duration stallTimeout, Duration completionTimeout) {
        public static Options defaults(String vmName) {
            return new Options(vmName, Duration.ofSeconds(60), Duration.ofSeconds(120));
        }
    }

    /** Progress while pages are sent. */
    public record Progress(long pagesSent, long pageCount, long streamBytes) {}

    /**
     * The restored, running guest, and when each step finished (nanoseconds after the restore began).
     *
     * @param qemuReadyNanos  QEMU launched and answering QMP
     * @param streamSentNanos the last byte of the stream written
     * @param runningNanos    the guest running again
     */
    public record Result(QemuVm vm, long qemuReadyNanos, long streamSentNanos, long runningNanos, long streamBytes, long pagesSent) {}

    private EagerRestore() {}

    /** The launch configuration recorded in the image. */
    public static VmConfig savedConfig(CheckpointImage image) {
        JsonNode node = image.manifest().source().vmConfig();
        if (node == null || node.isNull()) {
            throw new RestoreException("image " + image.directory() + " records no launch configuration: expected the VM's"
                    + " configuration in its manifest (images saved from VMs Thaw launched, or with --vm-config, have one)", null);
        }
        try {
            // The manifest is data from outside: its options were checked by VmConfig, its files are checked here.
            return JSON.treeToValue(node, VmConfig.class).requireGuestFilesIn(ThawPaths.guestDirs());
        } catch (IOException | IllegalArgumentException e) {
            throw new RestoreException("image " + image.directory() + ": the recorded launch configuration is invalid: " + e.getMessage(), e);
        }
    }

    /** Restores the image into a new QEMU; the caller owns (and closes) the returned VM. */
    public static Result restore(CheckpointImage image, Options options, Consumer<Progress> progress) {
        long started = System.nanoTime();
        VmConfig config = savedConfig(image).asIncoming(options.vmName());
        QemuVm vm = QemuVm.launch(config);
        try {
            long qemuReady = System.nanoTime() - started;
            QmpClient qmp = vm.qmp();
            qmp.migrateSetCapabilities(Map.of("events", true));
            Path socket = vm.runDir().resolve("incoming.sock");
            qmp.migrateIncoming("unix:" + socket);
            AtomicLong bytes = new AtomicLong();
            long pagesSent;
            try (SocketChannel channel = IncomingSocket.connect(socket, vm, Duration.ofSeconds(10));
                 StallWatchdog watchdog = new StallWatchdog("restore-" + vm.name(), bytes::get, options.stallTimeout(), channel)) {
                OutputStream out = new BufferedOutputStream(new CountingOutputStream(Channels.newOutputStream(channel), bytes), 1 << 20);
                try {
                    pagesSent = EagerStreams.write(image, new StreamWriter(out, image.ramBlocks()), progress);
                } catch (IOException e) {
                    throw new RestoreException("sending the image to " + vm.name() + " failed after " + bytes.get() + " bytes"
                            + (watchdog.stalled() ? " (QEMU read nothing for " + options.stallTimeout().toSeconds() + " s)" : "")
                            + ": " + e.getMessage() + "; " + vm.describeState(), e);
                }
                long sent = System.nanoTime() - started;
                awaitCompleted(vm, options.completionTimeout());
                qmp.cont();
                long running = System.nanoTime() - started;
                return new Result(vm, qemuReady, sent, running, bytes.get(), pagesSent);
            }
        } catch (IOException e) {
            vm.close();
            throw new RestoreException("restore into " + vm.name() + " failed: " + e.getMessage() + "; " + vm.describeState(), e);
        } catch (QmpException e) {
            vm.close();
            throw new RestoreException("restore into " + vm.name() + " failed: " + e.getMessage() + "; " + vm.describeState(), e);
        } catch (RuntimeException e) {
            vm.close();
            throw e;
        }
    }

    static QmpClient.MigrationInfo awaitCompleted(QemuVm vm, Duration timeout) {
        QmpClient.MigrationInfo info;
        try {
            info = vm.qmp().awaitMigrationEnd(timeout);
        } catch (QmpException.Timeout e) {
            throw new RestoreException(vm.name() + ": the incoming migration did not complete within " + timeout.toSeconds() + " s; "
                    + vm.describeState(), e);
        } catch (QmpException e) {
            throw new RestoreException(vm.name() + ": waiting for the incoming migration to complete failed: " + e.getMessage() + "; "
                    + vm.describeState(), e);
        }
        if (!info.completed()) {
            throw new RestoreException(vm.name() + ": the incoming migration " + info.status() + ": " + info.errorDescription() + "; "
                    + vm.describeState(), null);
        }
        return info;
    }
}
