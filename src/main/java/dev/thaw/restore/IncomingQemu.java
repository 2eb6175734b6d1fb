package dev.thaw.restore;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.thaw.image.CheckpointImage;
import dev.thaw.qemu.QemuVm;
import dev.thaw.qemu.QmpClient;
import dev.thaw.qemu.QmpException;
import dev.thaw.qemu.VmConfig;
import dev.thaw.util.ThawPaths;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

/**
 * The destination QEMU of every restore: launched from the configuration saved in the image with
 * {@code -incoming defer}, connected to once it listens after {@code migrate-incoming}, and waited
 * on until it reports the migration {@code completed}. Its failures are {@link RestoreException}s
 * that name the QEMU and its state (exit status, the end of its stderr).
 */
public final class IncomingQemu {
    private static final ObjectMapper JSON = new ObjectMapper().findAndRegisterModules();

    private IncomingQemu() {}

    /** The launch configuration recorded in the image. */
    public static VmConfig savedConfig(CheckpointImage image) {
        JsonNode node = image.manifest().source().vmConfig();
        if (node == null || node.isNull()) {
            throw new RestoreException("image " + image.directory() + " records no launch configuration: expected the VM's"
                    + " configuration in its manifest (images saved from VMs Thaw launched, or with --vm-config, have one)", null);
        }
        try {
            // The manifest is data from outside: its options were checked by VmConfig, its files are checked here. A cluster
            // member's stream netdev is refused: restoring a member onto its cluster's switch is not built yet (issue 16).
            // Guest files the image carries were checked against their recorded SHA-256 and may come from its own directory.
            List<Path> trusted = new java.util.ArrayList<>(ThawPaths.guestDirs());
            if (!image.manifest().guestFiles().isEmpty()) trusted.add(image.directory().resolve(dev.thaw.image.Manifest.GUEST_FILES_DIRECTORY));
            VmConfig recorded = JSON.treeToValue(node, VmConfig.class);
            if (!recorded.disks().isEmpty()) throw new IllegalArgumentException("expected no disks in the configuration (the manifest's"
                    + " disks, with their identities, are the image's), actual " + recorded.disks().size());
            return RestoreDisks.withGuestFiles(image, recorded).requireGuestFilesIn(trusted).requireClusterSocketsIn(List.of());
        } catch (IOException | IllegalArgumentException e) {
            throw new RestoreException("image " + image.directory() + ": the recorded launch configuration is invalid: " + e.getMessage(), e);
        }
    }

    /**
     * The image's saved configuration as a migration destination ({@code -incoming defer}) called {@code vmName}, on fresh
     * overlays of the image's disks ({@link RestoreDisks}: each base checked against its identity first).
     */
    public static VmConfig config(CheckpointImage image, String vmName) {
        return RestoreDisks.withDisks(image, savedConfig(image), vmName).asIncoming(vmName);
    }

    /** Retries until QEMU has created the socket; gives up at the deadline or when QEMU has exited. */
    static SocketChannel connect(Path socket, QemuVm vm, Duration timeout) throws IOException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            SocketChannel channel = SocketChannel.open(StandardProtocolFamily.UNIX);
            try {
                channel.connect(UnixDomainSocketAddress.of(socket));
                return channel;
            } catch (IOException e) {
                channel.close();
                if (!vm.isAlive() || System.nanoTime() > deadline) {
                    throw new IOException("cannot connect to the incoming socket " + socket + ": " + e.getMessage(), e);
                }
                try {
                    Thread.sleep(10);
                } catch (InterruptedException ie) {
                    Thread.currentThread().interrupt();
                    throw new IOException("interrupted", ie);
                }
            }
        }
    }

    /** Waits until the incoming migration ends and requires it {@code completed}. */
    public static QmpClient.MigrationInfo awaitCompleted(QemuVm vm, Duration timeout) {
        try {
            return vm.qmp().awaitMigrationCompleted(timeout);
        } catch (QmpException.Timeout e) {
            throw new RestoreException(vm.name() + ": the incoming migration did not complete within " + timeout.toSeconds() + " s; "
                    + vm.describeState(), e);
        } catch (QmpException.MigrationFailed e) {
            throw new RestoreException(vm.name() + ": the incoming migration " + e.status() + ": " + e.errorDescription() + "; "
                    + vm.describeState(), e);
        } catch (QmpException e) {
            throw new RestoreException(vm.name() + ": waiting for the incoming migration to complete failed: " + e.getMessage() + "; "
                    + vm.describeState(), e);
        }
    }

    /** How long a QEMU launched in the background may take to answer QMP (QemuVm.launch gives up after 30 s itself). */
    static final Duration LAUNCH_TIMEOUT = Duration.ofSeconds(60);

    /**
     * A QEMU launched on a thread of its own, so that the restore prepares what it sends first while QEMU starts (on a fresh
     * JVM the preparation took about as long as QEMU's start). Whatever happens, no QEMU is left behind: {@link #abandon}
     * closes it whenever its launch ends.
     */
    static final class Launch {
        private final java.util.concurrent.CompletableFuture<QemuVm> future = new java.util.concurrent.CompletableFuture<>();
        private final String name;

        /** @param release run once the QEMU is gone (hugetlb pages set aside for it), or at once if it fails to start; may be null */
        Launch(VmConfig config, List<String> launchArgs, boolean spareMonitor, Runnable release) {
            this.name = config.name();
            Thread.ofPlatform().daemon().name("qemu-launch-" + config.name()).start(() -> {
                try {
                    QemuVm vm = QemuVm.launch(config, launchArgs, spareMonitor);
                    if (release != null) vm.onClose(release);
                    future.complete(vm);
                } catch (Throwable t) {
                    if (release != null) release.run();
                    future.completeExceptionally(t);
                }
            });
        }

        /** The launched QEMU, or its launch's failure as it was thrown. */
        QemuVm await() {
            try {
                return future.get(LAUNCH_TIMEOUT.toMillis(), java.util.concurrent.TimeUnit.MILLISECONDS);
            } catch (java.util.concurrent.ExecutionException e) {
                if (e.getCause() instanceof RuntimeException r) throw r;
                if (e.getCause() instanceof Error err) throw err;
                throw new RestoreException(name + ": launching QEMU failed: " + e.getCause(), e.getCause());
            } catch (java.util.concurrent.TimeoutException e) {
                abandon();
                throw new RestoreException(name + ": expected QEMU to answer QMP within " + LAUNCH_TIMEOUT.toSeconds()
                        + " s of its launch, actual no answer", e);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                abandon();
                throw new RestoreException(name + ": interrupted while QEMU started", e);
            }
        }

        /** The restore will not use this QEMU: it is closed as soon as its launch ends (now, if it has). */
        void abandon() {
            future.whenComplete((vm, failure) -> {
                if (vm != null) vm.close();
            });
        }
    }
}
