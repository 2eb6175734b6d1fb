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

    /** Builds the JSON reader of a recorded launch configuration ahead of the first restore (the CLI's preload). */
    public static void preload() {
        JSON.readerFor(VmConfig.class);
    }

    /** The launch configuration recorded in the image. */
    public static VmConfig savedConfig(CheckpointImage image) {
        try {
            return savedConfigAnywhere(image).requireClusterSocketsIn(List.of());
        } catch (IllegalArgumentException e) {
            throw new RestoreException("image " + image.directory() + ": the recorded launch configuration is invalid: " + e.getMessage(), e);
        }
    }

    /** As {@link #savedConfig}, but a cluster member's stream netdev socket is left for the caller to check (or move). */
    private static VmConfig savedConfigAnywhere(CheckpointImage image) {
        JsonNode node = image.manifest().source().vmConfig();
        if (node == null || node.isNull()) {
            throw new RestoreException("image " + image.directory() + " records no launch configuration: expected the VM's"
                    + " configuration in its manifest (images saved from VMs Thaw launched, or with --vm-config, have one)", null);
        }
        try {
            // The manifest is data from outside: its options were checked by VmConfig, its files are checked here. A cluster
            // member's stream netdev is refused here; config() admits it once the cluster restore moved it onto its new switch.
            // Guest files the image carries were checked against their recorded SHA-256 and may come from its own directory.
            List<Path> trusted = new java.util.ArrayList<>(ThawPaths.guestDirs());
            if (!image.manifest().guestFiles().isEmpty()) trusted.add(image.directory().resolve(dev.thaw.image.Manifest.GUEST_FILES_DIRECTORY));
            VmConfig recorded = JSON.treeToValue(node, VmConfig.class);
            if (!recorded.disks().isEmpty()) throw new IllegalArgumentException("expected no disks in the configuration (the manifest's"
                    + " disks, with their identities, are the image's), actual " + recorded.disks().size());
            return RestoreDisks.withGuestFiles(image, recorded).requireGuestFilesIn(trusted);
        } catch (IOException | IllegalArgumentException e) {
            throw new RestoreException("image " + image.directory() + ": the recorded launch configuration is invalid: " + e.getMessage(), e);
        }
    }

    /**
     * The saved guest's vCPUs, from the recorded configuration alone: what a restore decides on before it launches QEMU, without
     * {@link #savedConfig}'s checks (a SHA-256 of each guest file the image carries), which the launch runs and which refuse
     * a bad configuration there.
     */
    public static int savedCpuCount(CheckpointImage image) {
        JsonNode node = image.manifest().source().vmConfig();
        return node == null ? 1 : Math.max(1, node.path("cpuCount").asInt(1));
    }

    /**
     * The image's saved configuration as a migration destination ({@code -incoming defer}) called {@code vmName}, as
     * {@code identity} rewrites it (its VM generation ID; a clone's ports and MACs), on fresh overlays of the image's disks
     * ({@link RestoreDisks}: each base checked against its identity first).
     */
    public static VmConfig config(CheckpointImage image, String vmName, RestoreIdentity identity) {
        VmConfig saved;
        try {
            saved = identity.applyTo(savedConfigAnywhere(image)).requireClusterSocketsIn(identity.clusterDirectories());
        } catch (IllegalArgumentException e) {
            throw new RestoreException("image " + image.directory() + ": the recorded launch configuration is invalid: " + e.getMessage()
                    + (identity.clusterDirectory().isEmpty() ? " (a cluster member's image restores with thaw cluster restore)" : ""), e);
        }
        return RestoreDisks.withDisks(image, saved, vmName, identity.diskDirectory()).asIncoming(vmName);
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

    /**
     * Waits until QEMU's postcopy listen thread has torn its incoming migration down (the last step of that teardown unregisters
     * the migration's yank instance, which {@code query-yank} reads under its lock). Why: QEMU 7.2's listen thread frees the
     * migration's socket address list after it sends SHUT, while a {@code query-migrate} on the main thread may be copying that
     * list, and then QEMU aborts (a core dump showed {@code qapi_clone} of it in {@code qmp_query_migrate} beside the listen thread
     * in {@code socket_listen_cleanup}; once in about 15 post-save traces here). So after SHUT no {@code query-migrate} goes
     * before this.
     */
    public static void awaitTeardown(QemuVm vm, Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        try {
            while (true) {
                JsonNode instances = vm.qmp().execute("query-yank", null, timeout);
                if (!migrationYankRegistered(instances)) return;
                if (System.nanoTime() > deadline) {
                    throw new RestoreException(vm.name() + ": QEMU's incoming migration was not torn down within " + timeout.toSeconds()
                            + " s after SHUT (query-yank still lists it); " + vm.describeState(), null);
                }
                Thread.sleep(2);
            }
        } catch (QmpException e) {
            throw new RestoreException(vm.name() + ": waiting for the incoming migration's teardown failed: " + e.getMessage() + "; "
                    + vm.describeState(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new RestoreException(vm.name() + ": interrupted while waiting for the incoming migration's teardown", e);
        }
    }

    /** Whether {@code query-yank}'s answer lists the migration's instance; an answer that is not a list is an error. */
    static boolean migrationYankRegistered(JsonNode instances) {
        if (instances == null || !instances.isArray()) {
            throw new IllegalArgumentException("query-yank: expected a list of instances, actual " + instances);
        }
        for (JsonNode i : instances) {
            if ("migration".equals(i.path("type").asText())) return true;
        }
        return false;
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
}
