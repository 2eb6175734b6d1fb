package dev.thaw.restore;

import dev.thaw.image.CheckpointImage;
import dev.thaw.migration.RamBlock;
import dev.thaw.migration.StreamWriter;
import dev.thaw.migration.Wire;
import dev.thaw.qemu.QemuVm;
import dev.thaw.qemu.QmpClient;
import dev.thaw.qemu.QmpException;
import dev.thaw.qemu.VmConfig;
import dev.thaw.util.ThawPaths;
import dev.thaw.util.DirectChannelOutput;
import dev.thaw.util.StallWatchdog;
import java.io.IOException;
import java.io.OutputStream;
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
    /** @param identity who the restored guest is ({@link RestoreIdentity}: its VM generation ID; a clone's ports and MACs) */
    public record Options(String vmName, Duration stallTimeout, Duration completionTimeout, RestoreIdentity identity) {
        public static Options defaults(String vmName) {
            return new Options(vmName, Duration.ofSeconds(60), Duration.ofSeconds(120), RestoreIdentity.single());
        }

        public Options withIdentity(RestoreIdentity newIdentity) {
            return new Options(vmName, stallTimeout, completionTimeout, newIdentity);
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

    /** Restores the image into a new QEMU; the caller owns (and closes) the returned VM. */
    public static Result restore(CheckpointImage image, Options options, Consumer<Progress> progress) {
        long started = System.nanoTime();
        VmConfig config = IncomingQemu.config(image, options.vmName(), options.identity());
        QemuVm vm = QemuVm.launch(config);
        try {
            long qemuReady = System.nanoTime() - started;
            QmpClient qmp = vm.qmp();
            qmp.migrateSetCapabilities(Map.of("events", true));
            Path socket = vm.runDir().resolve("incoming.sock");
            qmp.migrateIncoming("unix:" + socket);
            AtomicLong bytes = new AtomicLong();
            long pagesSent;
            try (SocketChannel channel = IncomingQemu.connect(socket, vm, Duration.ofSeconds(10));
                 StallWatchdog watchdog = new StallWatchdog("restore-" + vm.name(), bytes::get, options.stallTimeout(), channel)) {
                OutputStream out = new DirectChannelOutput(channel, 1 << 20, bytes);
                try {
                    pagesSent = EagerStreams.write(image, new StreamWriter(out, image.ramBlocks()), progress);
                } catch (IOException e) {
                    throw new RestoreException("sending the image to " + vm.name() + " failed after " + bytes.get() + " bytes"
                            + (watchdog.stalled() ? " (QEMU read nothing for " + options.stallTimeout().toSeconds() + " s)" : "")
                            + ": " + e.getMessage() + "; " + vm.describeState(), e);
                }
                long sent = System.nanoTime() - started;
                IncomingQemu.awaitCompleted(vm, options.completionTimeout());
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
}
