package dev.thaw.save;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.thaw.qemu.Accel;
import dev.thaw.qemu.ForeignCommandLine;
import dev.thaw.qemu.QemuProcesses;
import dev.thaw.qemu.QemuVm;
import dev.thaw.qemu.QmpClient;
import dev.thaw.qemu.VmConfig;
import dev.thaw.util.ExternalCommand;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * A QEMU that Thaw did not start, as a save sees it: its process (found behind its QMP socket), its command line (what to
 * replay, or the option that cannot be) and QMP's facts about what that command line became (the versioned machine type an
 * alias like {@code pc} resolved to, the accelerator, RAM, vCPUs, each disk's active file, format and PCI address). All of it
 * is read before the guest is stopped, so a QEMU Thaw cannot restore is refused while it runs on untouched.
 *
 * @param pid    the QEMU's process id
 * @param config the configuration a restore starts its twin with (disks on their current files: the save's bases)
 */
public record ForeignGuest(long pid, VmConfig config) {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String VIRTIO_BLK_BACKEND = "/virtio-backend";
    /** The pc machines' flash devices (hw/i386/pc_sysfw.c), which -drive if=pflash backs. */
    private static final java.util.regex.Pattern FLASH_DEVICE = java.util.regex.Pattern.compile("/machine/system\\.flash[01]");

    /** Reads the QEMU behind {@code qmpSocket} through {@code qmp} (a connection to that socket); changes nothing. */
    public static ForeignGuest inspect(Path qmpSocket, QmpClient qmp) {
        QemuProcesses.Found process = QemuProcesses.serving(qmpSocket);
        ForeignCommandLine line = ForeignCommandLine.parse(process.argv(), process.cwd());
        String type = qmp.execute("qom-get", JSON.createObjectNode().put("path", "/machine").put("property", "type")).asText()
                .replaceFirst("-machine$", "");
        Accel accel = qmp.execute("query-kvm").path("enabled").asBoolean() ? Accel.KVM : Accel.TCG;
        long memoryMiB = qmp.execute("query-memory-size-summary").path("base-memory").asLong() >> 20;
        int cpus = qmp.execute("query-cpus-fast").size();
        List<VmConfig.Disk> disks = disks(qmp);
        try {
            Path firmware = line.firmware() == null ? null : firmwareFile("-bios", line.firmware(), process.cwd());
            List<VmConfig.Flash> flash = new ArrayList<>();
            for (VmConfig.Flash f : line.flash()) flash.add(new VmConfig.Flash(f.unit(), firmwareFile("pflash unit " + f.unit(), f.file(), process.cwd()), f.readOnly()));
            return new ForeignGuest(process.pid(), new VmConfig("qemu-" + process.pid(), type, accel, memoryMiB, cpus, line.kernel(),
                    line.initrd(), line.kernelCommandLine(), false, false, line.replayedArgs(), disks, firmware, flash, line.qemuDefaults()));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("the QEMU behind " + qmpSocket + " (pid " + process.pid() + ") cannot be replayed: "
                    + e.getMessage(), e);
        }
    }

    /**
     * The file QEMU read for {@code -bios} (or a pflash unit: then a path), found as QEMU finds it (a path as it is; a bare name in QEMU's working directory,
     * then in its data directories), bounded in size since the image carries a copy.
     */
    static Path firmwareFile(String option, Path given, Path cwd) {
        List<Path> candidates = new ArrayList<>();
        if (given.isAbsolute()) {
            candidates.add(given);
        } else {
            candidates.add(cwd.resolve(given));
            ExternalCommand.Result dirs = ExternalCommand.run(List.of(QemuVm.QEMU_BINARY, "-L", "help"), Duration.ofSeconds(10));
            if (!dirs.succeeded()) throw new IllegalArgumentException(option + " " + given + ": cannot list QEMU's data directories: " + dirs.describe());
            dirs.stdout().lines().map(String::strip).filter(l -> !l.isEmpty()).forEach(d -> candidates.add(Path.of(d).resolve(given).normalize()));
        }
        for (Path file : candidates) {
            if (!Files.isRegularFile(file)) continue;
            long byteSize;
            try {
                byteSize = Files.size(file);
            } catch (IOException e) {
                throw new IllegalArgumentException(option + " " + file + ": expected a readable file, actual " + e, e);
            }
            if (byteSize > VmConfig.MAX_FIRMWARE_BYTES) {
                throw new IllegalArgumentException(option + " " + file + ": expected a firmware file of at most " + (VmConfig.MAX_FIRMWARE_BYTES >> 20)
                        + " MiB (the image carries a copy), actual " + byteSize + " bytes");
            }
            try {
                return file.toRealPath();
            } catch (IOException e) {
                throw new IllegalArgumentException(option + " " + file + ": expected a readable file, actual " + e, e);
            }
        }
        throw new IllegalArgumentException(option + " " + given + ": expected a regular file at one of " + candidates + ", actual none");
    }

    /** Every disk with a medium, from {@code query-block}; one that is not a virtio-blk disk on a raw or qcow2 file is refused. */
    private static List<VmConfig.Disk> disks(QmpClient qmp) {
        List<VmConfig.Disk> disks = new ArrayList<>();
        for (JsonNode block : qmp.execute("query-block")) {
            JsonNode inserted = block.path("inserted");
            if (inserted.isMissingNode()) continue; // an empty drive holds nothing to save
            if (FLASH_DEVICE.matcher(block.path("qdev").asText()).matches()) continue; // the firmware's flash: from the command line
            String name = block.path("device").asText().isEmpty() ? block.path("qdev").asText() : block.path("device").asText();
            String qdev = block.path("qdev").asText();
            if (!qdev.endsWith(VIRTIO_BLK_BACKEND)) {
                throw new IllegalArgumentException("disk " + name + ": expected a virtio-blk device, actual device '" + qdev + "'");
            }
            if (inserted.path("encrypted").asBoolean()) {
                throw new IllegalArgumentException("disk " + name + ": expected an unencrypted image, actual an encrypted one");
            }
            String format = inserted.path("drv").asText();
            if (!format.equals("raw") && !format.equals("qcow2")) {
                throw new IllegalArgumentException("disk " + name + ": expected format raw or qcow2, actual '" + format + "'");
            }
            int devfn = qmp.execute("qom-get", JSON.createObjectNode().put("path", qdev.substring(0, qdev.length() - VIRTIO_BLK_BACKEND.length()))
                    .put("property", "addr")).asInt();
            String file = inserted.path("image").path("filename").asText();
            // The file becomes a base that restores find by its path and identity: a link or a device would be refused after
            // the guest was stopped, when its identity is taken; refused here instead.
            if (!java.nio.file.Files.isRegularFile(Path.of(file), java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
                throw new IllegalArgumentException("disk " + name + ": expected a regular file (not a link, a device or a network"
                        + " image), actual '" + file + "'");
            }
            try {
                disks.add(new VmConfig.Disk("disk" + disks.size(), format, Path.of(file), inserted.path("ro").asBoolean(),
                        String.format("%02x.%x", devfn >> 3, devfn & 7)));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("disk " + name + ": " + e.getMessage(), e);
            }
        }
        return List.copyOf(disks);
    }
}
