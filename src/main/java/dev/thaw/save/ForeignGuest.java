package dev.thaw.save;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.thaw.qemu.Accel;
import dev.thaw.qemu.ForeignCommandLine;
import dev.thaw.qemu.QemuOption;
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
            List<String> replayed = line.replayedArgs(new QmpDeviceFacts(qmp), disks.stream().map(VmConfig.Disk::pciAddress).toList());
            // QEMU's data directories, asked once: where it found a bare firmware name after its working directory and -L's.
            List<Path> qemuDirectories = dataDirectories();
            Path firmware = line.firmware() != null
                    ? firmwareFile("-bios", line.firmware(), process.cwd(), line.firmwareDirectories(), qemuDirectories)
                    : line.flash().isEmpty() ? defaultFirmwareFrom(process.cwd(), line.firmwareDirectories()) : null;
            List<VmConfig.Flash> flash = new ArrayList<>();
            for (VmConfig.Flash f : line.flash()) {
                flash.add(new VmConfig.Flash(f.unit(), firmwareFile("pflash unit " + f.unit(), f.file(), process.cwd(), List.of(), List.of()),
                        f.readOnly()));
            }
            List<Path> before = new ArrayList<>(List.of(process.cwd()));
            before.addAll(line.firmwareDirectories());
            requireQemusOwnRoms(before, firmware, qemuDirectories);
            return new ForeignGuest(process.pid(), new VmConfig("qemu-" + process.pid(), type, accel, memoryMiB, cpus, line.kernel(),
                    line.initrd(), line.kernelCommandLine(), false, false, replayed, disks, firmware, flash, line.qemuDefaults()));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("the QEMU behind " + qmpSocket + " (pid " + process.pid() + ") cannot be replayed: "
                    + e.getMessage(), e);
        }
    }

    /** QEMU's firmware for pc machines when no -bios is given (hw/i386/pc_sysfw.c). */
    static final String DEFAULT_FIRMWARE = "bios-256k.bin";

    /**
     * The file QEMU read for {@code -bios} (or a pflash unit: then a path), found as QEMU finds it (a path as it is; a bare name in
     * QEMU's working directory, then in the {@code -L} directories, then in its own data directories), bounded in size since the
     * image carries a copy.
     */
    static Path firmwareFile(String option, Path given, Path cwd, List<Path> firmwareDirectories, List<Path> qemuDirectories) {
        List<Path> candidates = new ArrayList<>();
        if (given.isAbsolute()) {
            candidates.add(given);
        } else {
            candidates.add(cwd.resolve(given));
            for (Path d : firmwareDirectories) candidates.add(d.resolve(given).normalize());
            for (Path d : qemuDirectories) candidates.add(d.resolve(given).normalize());
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

    /**
     * The firmware QEMU loaded without -bios, if it is not its own: its default name found first in its working directory or a
     * {@code -L} directory (qemu_find_file looks there before its data directories); null where QEMU's own was loaded.
     */
    static Path defaultFirmwareFrom(Path cwd, List<Path> firmwareDirectories) {
        List<Path> before = new ArrayList<>(List.of(cwd));
        before.addAll(firmwareDirectories);
        for (Path d : before) {
            if (Files.isRegularFile(d.resolve(DEFAULT_FIRMWARE))) {
                return firmwareFile("the default firmware " + DEFAULT_FIRMWARE, d.resolve(DEFAULT_FIRMWARE).toAbsolutePath(), cwd, List.of(),
                        List.of());
            }
        }
        return null;
    }

    /**
     * Refuses an option ROM or other firmware file in QEMU's working directory or a {@code -L} directory ({@code before}, in
     * that order: qemu_find_file tries a bare name in the working directory first, then the data directories) that differs from
     * the copy QEMU would otherwise pick, the first of that name in its own directories ({@code qemuDirectories}): QEMU loaded
     * it in place of its own (a NIC's or VGA's ROM, linuxboot), and the restore's QEMU, in another directory and without -L,
     * loads its own, whose size and contents the stream's ROM blocks need not match. {@code firmware}, which the image
     * carries, is exempt.
     */
    static void requireQemusOwnRoms(List<Path> before, Path firmware, List<Path> qemuDirectories) {
        for (int i = 0; i < before.size(); i++) {
            Path dir = before.get(i);
            String label = i == 0 ? "QEMU's working directory " + dir : "-L " + dir;
            if (!Files.isDirectory(dir)) throw new IllegalArgumentException(label + ": expected a directory, actual none");
            List<Path> files;
            try (var list = Files.list(dir)) {
                files = list.filter(Files::isRegularFile).sorted().toList();
            } catch (IOException e) {
                throw new IllegalArgumentException(label + ": expected a readable directory, actual " + e, e);
            }
            for (Path file : files) {
                if (firmware != null && sameFile(file, firmware)) continue;
                Path qemus = qemuDirectories.stream().map(d -> d.resolve(file.getFileName())).filter(Files::isRegularFile).findFirst()
                        .orElse(null);
                if (qemus != null && !sameFile(file, qemus) && !sameContent(file, qemus)) {
                    throw new IllegalArgumentException(label + ": expected only the firmware and files identical to QEMU's own (option"
                            + " ROMs found before QEMU's own are not carried in the image), actual " + file + ", which differs from "
                            + qemus.toAbsolutePath().normalize());
                }
            }
        }
    }

    private static boolean sameFile(Path a, Path b) {
        try {
            return Files.isSameFile(a, b);
        } catch (IOException e) {
            return false;
        }
    }

    private static boolean sameContent(Path a, Path b) {
        try {
            return Files.mismatch(a, b) < 0;
        } catch (IOException e) {
            throw new IllegalArgumentException("firmware files: expected readable files, actual " + e, e);
        }
    }

    /** QEMU's own data directories ({@code qemu-system-x86_64 -L help}), where it finds firmware by name after -L's. */
    private static List<Path> dataDirectories() {
        ExternalCommand.Result dirs = ExternalCommand.run(List.of(QemuVm.QEMU_BINARY, "-L", "help"), Duration.ofSeconds(10));
        if (!dirs.succeeded()) throw new IllegalArgumentException("QEMU's firmware: cannot list its data directories: " + dirs.describe());
        return dirs.stdout().lines().map(String::strip).filter(l -> !l.isEmpty()).map(l -> Path.of(l).normalize()).toList();
    }

    /** QMP's answers about the devices: qom-get and qom-list for each device, query-pci for the bus; read-only. */
    private record QmpDeviceFacts(QmpClient qmp) implements ForeignCommandLine.DeviceFacts {
        private static final java.util.regex.Pattern UNATTACHED_DEVICE = java.util.regex.Pattern.compile("device\\[(\\d+)]");

        private JsonNode get(String qomPath, String property) {
            try {
                return qmp.execute("qom-get", JSON.createObjectNode().put("path", qomPath).put("property", property));
            } catch (dev.thaw.qemu.QmpException e) {
                throw new IllegalArgumentException("qom-get " + qomPath + " " + property + ": expected a value, actual QEMU's error: "
                        + e.getMessage(), e);
            }
        }

        @Override
        public String type(String qomPath) {
            return get(qomPath, "type").asText();
        }

        private int integer(String qomPath, String property, String what) {
            JsonNode value = get(qomPath, property);
            if (!value.isInt()) throw new IllegalArgumentException("qom-get " + qomPath + " " + property + ": expected " + what + ", actual " + value);
            return value.asInt();
        }

        @Override
        public int devfn(String qomPath) {
            return integer(qomPath, "addr", "a devfn");
        }

        @Override
        public String mac(String qomPath) {
            return get(qomPath, "mac").asText();
        }

        @Override
        public int vectors(String qomPath) {
            return integer(qomPath, "vectors", "a count");
        }

        @Override
        public List<String> boardNics() {
            java.util.TreeMap<Integer, String> nics = new java.util.TreeMap<>();
            for (JsonNode child : qmp.execute("qom-list", JSON.createObjectNode().put("path", "/machine/unattached"))) {
                String type = child.path("type").asText();
                java.util.regex.Matcher m = UNATTACHED_DEVICE.matcher(child.path("name").asText());
                if (m.matches() && type.startsWith("child<") && QemuOption.NIC_TYPES.contains(type.substring(6, type.length() - 1))) {
                    nics.put(Integer.parseInt(m.group(1)), "/machine/unattached/" + child.path("name").asText());
                }
            }
            return List.copyOf(nics.values());
        }

        @Override
        public List<ForeignCommandLine.PciDevice> pciDevices() {
            List<ForeignCommandLine.PciDevice> devices = new ArrayList<>();
            for (JsonNode bus : qmp.execute("query-pci")) {
                if (bus.path("bus").asInt(-1) != 0) continue;
                for (JsonNode d : bus.path("devices")) {
                    devices.add(new ForeignCommandLine.PciDevice((d.path("slot").asInt() << 3) | d.path("function").asInt(),
                            d.path("qdev_id").asText(), d.path("class_info").path("class").asInt()));
                }
            }
            return List.copyOf(devices);
        }
    }

    /**
     * A disk's {@code bootindex} as {@code qom-get} answers it: null for -1, QEMU's "unset" (the firmware's boot order is
     * fw_cfg, built by each QEMU from its devices), else the index.
     *
     * @throws IllegalArgumentException for anything but an integer from -1 up
     */
    static Integer bootIndex(String qomPath, JsonNode value) {
        if (!value.isInt() || value.asInt() < -1) {
            throw new IllegalArgumentException("qom-get " + qomPath + " bootindex: expected an integer, -1 for none, actual " + value);
        }
        return value.asInt() < 0 ? null : value.asInt();
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
            String device = qdev.substring(0, qdev.length() - VIRTIO_BLK_BACKEND.length());
            QmpDeviceFacts facts = new QmpDeviceFacts(qmp);
            int devfn = facts.devfn(device);
            Integer bootIndex = bootIndex(device, facts.get(device, "bootindex"));
            String file = inserted.path("image").path("filename").asText();
            // The file becomes a base that restores find by its path and identity: a link or a device would be refused after
            // the guest was stopped, when its identity is taken; refused here instead.
            if (!java.nio.file.Files.isRegularFile(Path.of(file), java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
                throw new IllegalArgumentException("disk " + name + ": expected a regular file (not a link, a device or a network"
                        + " image), actual '" + file + "'");
            }
            try {
                disks.add(new VmConfig.Disk("disk" + disks.size(), format, Path.of(file), inserted.path("ro").asBoolean(),
                        ForeignCommandLine.PciDevice.address(devfn), bootIndex));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("disk " + name + ": " + e.getMessage(), e);
            }
        }
        return List.copyOf(disks);
    }
}
