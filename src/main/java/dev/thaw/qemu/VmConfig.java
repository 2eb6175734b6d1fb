package dev.thaw.qemu;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.regex.Pattern;

/**
 * Everything that decides the QEMU command line of a guest. A restore must start QEMU with the same
 * configuration as the saved guest (same machine type, devices and memory), plus {@code -incoming defer}.
 *
 * @param name              a name for logs, threads and {@code -name}; no commas
 * @param machineType       a versioned machine type such as {@code pc-i440fx-7.2}, never an alias like {@code pc}
 * @param memoryMiB         guest RAM in MiB
 * @param kernel            the guest kernel QEMU boots directly ({@code -kernel}); null for a guest its firmware boots from a
 *                          disk (then initrd is null and the command line empty: QEMU adds no linuxboot option ROM, so the
 *                          RAM blocks a restore must match differ)
 * @param initrd            the initramfs ({@code -initrd}); null exactly when kernel is
 * @param kernelCommandLine the guest kernel's command line ({@code -append}); empty without a kernel
 * @param incomingDefer     start with {@code -incoming defer} (the destination of a restore)
 * @param startPaused       start with {@code -S}
 * @param extraArgs         further QEMU arguments (devices), part of the configuration a restore repeats: only the
 *                          options {@link QemuOption} allows, since a configuration read from an image or a
 *                          {@code vm.json} is data from outside (Thaw's own per-launch arguments go to
 *                          {@link QemuVm#launch(VmConfig, List)} instead, and are never recorded)
 * @param disks             virtio-blk disks, each a block node on a file and its device at a fixed PCI address; an image
 *                          records none here (its manifest's disks, with their identity, are the truth), a restore
 *                          fills them with the overlays it created on the image's bases
 * @param firmware          another firmware than QEMU's default SeaBIOS ({@code -bios FILE}, mapped as the guest's BIOS
 *                          ROM: its size is a RAM block's); null for the default
 * @param flash             the firmware in flash instead ({@code -drive if=pflash}: unit 0 its code, unit 1 its variables),
 *                          each a RAM block the stream carries; empty for none. A writable one (the variables) is written by
 *                          its QEMU, so each restore runs on a copy of its own ({@code RestoreDisks})
 * @param qemuDefaults      QEMU's default devices kept (no {@code -nodefaults}: a VGA, an IDE CD-ROM drive, a floppy drive,
 *                          a parallel port, and a NIC where no network is given), as a command line that Thaw did not write
 *                          had them: their state is in the stream, so the restore's QEMU must have them too (a save from now
 *                          on records the default NIC in extraArgs, as a -netdev and a -device, so QEMU adds none)
 */
public record VmConfig(String name, String machineType, Accel accel, long memoryMiB, int cpuCount,
                       Path kernel, Path initrd, String kernelCommandLine,
                       boolean incomingDefer, boolean startPaused, List<String> extraArgs, List<Disk> disks,
                       @com.fasterxml.jackson.annotation.JsonInclude(com.fasterxml.jackson.annotation.JsonInclude.Include.NON_NULL)
                       Path firmware,
                       @com.fasterxml.jackson.annotation.JsonInclude(com.fasterxml.jackson.annotation.JsonInclude.Include.NON_EMPTY)
                       List<Flash> flash,
                       @com.fasterxml.jackson.annotation.JsonInclude(com.fasterxml.jackson.annotation.JsonInclude.Include.NON_DEFAULT)
                       boolean qemuDefaults) {
    /**
     * A flash device holding firmware ({@code -drive if=pflash,format=raw,unit=U,file=FILE[,readonly=on]}).
     *
     * @param unit 0 (the firmware's code, mapped just below 4 GiB) or 1 (its variables, below that)
     */
    public record Flash(int unit, Path file, boolean readOnly) {
        public Flash {
            if (unit != 0 && unit != 1) throw new IllegalArgumentException("pflash unit: expected 0 or 1, actual " + unit);
            if (file == null || !Disk.PLAIN_PATH.matcher(file.toString()).matches() || !file.normalize().equals(file)) {
                throw new IllegalArgumentException("pflash unit " + unit + " file: expected an absolute normalized path without commas,"
                        + " actual '" + file + "'");
            }
        }

        /** Its role among the guest files an image carries: flash0, flash1. */
        public String role() {
            return "flash" + unit;
        }

        List<String> arguments() {
            return List.of("-drive", "if=pflash,format=raw,unit=" + unit + ",file=" + file + (readOnly ? ",readonly=on" : ""));
        }
    }

    /**
     * A virtio-blk disk as QEMU gets it: {@code -blockdev driver=FORMAT,node-name=NODE,file.driver=file,file.filename=FILE}
     * and {@code -device virtio-blk-pci,drive=NODE,addr=PCI}. The address is explicit because the migration stream names a
     * PCI device's state by its address (a {@code -drive if=virtio} takes the first free slot after every {@code -device}).
     *
     * @param format     raw or qcow2 (the file's own format: a restore's overlay is qcow2 on a base of either)
     * @param pciAddress {@code SLOT.FUNCTION} in hex, such as {@code 03.0}
     * @param bootIndex  its place in the firmware's boot order ({@code bootindex=}); null for none
     */
    public record Disk(String node, String format, Path file, boolean readOnly, String pciAddress,
                       @com.fasterxml.jackson.annotation.JsonInclude(com.fasterxml.jackson.annotation.JsonInclude.Include.NON_NULL)
                       Integer bootIndex) {
        private static final Pattern NODE = Pattern.compile("[A-Za-z][A-Za-z0-9_-]{0,31}");
        private static final Pattern PCI = Pattern.compile("[0-9a-f]{2}\\.[0-7]");
        // QEMU reads "," as the end of a value; no control characters in a path QEMU is handed.
        static final Pattern PLAIN_PATH = Pattern.compile("/[^,\\p{Cntrl}]{0,4095}");

        /** A disk outside the firmware's boot order. */
        public Disk(String node, String format, Path file, boolean readOnly, String pciAddress) {
            this(node, format, file, readOnly, pciAddress, null);
        }

        @com.fasterxml.jackson.annotation.JsonCreator
        public Disk {
            if (bootIndex != null && (bootIndex < 0 || bootIndex > 999)) {
                throw new IllegalArgumentException("disk " + node + " boot index: expected 0-999, actual " + bootIndex);
            }
            if (node == null || !NODE.matcher(node).matches()) {
                throw new IllegalArgumentException("disk node name: expected " + NODE.pattern() + ", actual '" + node + "'");
            }
            if (!"raw".equals(format) && !"qcow2".equals(format)) {
                throw new IllegalArgumentException("disk " + node + " format: expected raw or qcow2, actual '" + format + "'");
            }
            if (file == null || !PLAIN_PATH.matcher(file.toString()).matches() || !file.normalize().equals(file)) {
                throw new IllegalArgumentException("disk " + node + " file: expected an absolute normalized path without commas, actual '"
                        + file + "'");
            }
            if (pciAddress == null || !PCI.matcher(pciAddress).matches()) {
                throw new IllegalArgumentException("disk " + node + " PCI address: expected SS.F in hex (such as 04.0), actual '"
                        + pciAddress + "'");
            }
        }

        /** The same disk on another file (a restore's overlay) in another format. */
        public Disk on(Path newFile, String newFormat, boolean newReadOnly) {
            return new Disk(node, newFormat, newFile, newReadOnly, pciAddress, bootIndex);
        }

        List<String> arguments() {
            return List.of("-blockdev", "driver=" + format + ",node-name=" + node + (readOnly ? ",read-only=on" : "")
                            + ",file.driver=file,file.filename=" + file,
                    "-device", "virtio-blk-pci,drive=" + node + ",addr=" + pciAddress + (bootIndex == null ? "" : ",bootindex=" + bootIndex));
        }
    }

    /** A configuration without disks (every guest Thaw boots itself). */
    public VmConfig(String name, String machineType, Accel accel, long memoryMiB, int cpuCount, Path kernel, Path initrd,
                    String kernelCommandLine, boolean incomingDefer, boolean startPaused, List<String> extraArgs) {
        this(name, machineType, accel, memoryMiB, cpuCount, kernel, initrd, kernelCommandLine, incomingDefer, startPaused, extraArgs,
                List.of());
    }

    /** A configuration on QEMU's default firmware. */
    public VmConfig(String name, String machineType, Accel accel, long memoryMiB, int cpuCount, Path kernel, Path initrd,
                    String kernelCommandLine, boolean incomingDefer, boolean startPaused, List<String> extraArgs, List<Disk> disks) {
        this(name, machineType, accel, memoryMiB, cpuCount, kernel, initrd, kernelCommandLine, incomingDefer, startPaused, extraArgs,
                disks, null, List.of());
    }

    /** A configuration without firmware in flash. */
    public VmConfig(String name, String machineType, Accel accel, long memoryMiB, int cpuCount, Path kernel, Path initrd,
                    String kernelCommandLine, boolean incomingDefer, boolean startPaused, List<String> extraArgs, List<Disk> disks,
                    Path firmware) {
        this(name, machineType, accel, memoryMiB, cpuCount, kernel, initrd, kernelCommandLine, incomingDefer, startPaused, extraArgs,
                disks, firmware, List.of());
    }

    /** A configuration without QEMU's default devices ({@code -nodefaults}, as every guest Thaw boots). */
    public VmConfig(String name, String machineType, Accel accel, long memoryMiB, int cpuCount, Path kernel, Path initrd,
                    String kernelCommandLine, boolean incomingDefer, boolean startPaused, List<String> extraArgs, List<Disk> disks,
                    Path firmware, List<Flash> flash) {
        this(name, machineType, accel, memoryMiB, cpuCount, kernel, initrd, kernelCommandLine, incomingDefer, startPaused, extraArgs,
                disks, firmware, flash, false);
    }

    /** The largest firmware file a configuration names: OVMF is 2-4 MiB, SeaBIOS 256 KiB; QEMU maps it below 4 GiB. */
    public static final long MAX_FIRMWARE_BYTES = 16L << 20;

    // The machine families Thaw understands, versioned; no properties (no commas).
    private static final Pattern VERSIONED_MACHINE = Pattern.compile("pc-(?:i440fx|q35)-\\d+\\.\\d+");
    static final long MAX_MEMORY_MIB = 1L << 20;
    static final int MAX_CPU_COUNT = 255;
    private static final Pattern NAME = Pattern.compile("[A-Za-z0-9._-]{1,64}");

    /** Whether {@code name} is a VM name Thaw accepts: 1-64 of [A-Za-z0-9._-]. */
    public static boolean isValidName(String name) {
        return name != null && NAME.matcher(name).matches();
    }
    private static final com.fasterxml.jackson.databind.ObjectMapper FILE_JSON =
            new com.fasterxml.jackson.databind.ObjectMapper().findAndRegisterModules();

    @com.fasterxml.jackson.annotation.JsonCreator
    public VmConfig {
        Objects.requireNonNull(accel, "accel");
        if ((kernel == null) != (initrd == null)) {
            throw new IllegalArgumentException("guest kernel and initrd: expected both (QEMU boots the kernel) or neither (the"
                    + " firmware boots a disk), actual " + (kernel == null ? "an initrd without a kernel" : "a kernel without an initrd"));
        }
        kernelCommandLine = kernelCommandLine == null ? "" : kernelCommandLine;
        if (kernel == null && !kernelCommandLine.isEmpty()) {
            throw new IllegalArgumentException("kernel command line: expected none without a kernel (QEMU refuses -append without"
                    + " -kernel), actual '" + kernelCommandLine + "'");
        }
        // A relative path would name another file where the configuration is read again (a manifest records it resolved
        // against the saving Thaw's working directory: "" became that directory).
        flash = flash == null ? List.of() : List.copyOf(flash);
        if (flash.stream().map(Flash::unit).distinct().count() < flash.size() || (!flash.isEmpty() && flash.getFirst().unit() != 0)) {
            throw new IllegalArgumentException("pflash: expected unit 0 (the firmware's code) first and each unit once, actual " + flash);
        }
        if (firmware != null && !flash.isEmpty()) {
            throw new IllegalArgumentException("firmware: expected -bios or pflash, actual both (QEMU boots the flash and ignores -bios)");
        }
        for (Map.Entry<String, Path> file : guestFiles(kernel, initrd, firmware, flash)) {
            if (!file.getValue().isAbsolute()) {
                throw new IllegalArgumentException("guest " + file.getKey() + ": expected an absolute path, actual '" + file.getValue() + "'");
            }
        }
        if (!isValidName(name)) {
            throw new IllegalArgumentException("VM name: expected 1-64 of [A-Za-z0-9._-], actual '" + name + "'");
        }
        if (machineType == null || !VERSIONED_MACHINE.matcher(machineType).matches()) {
            throw new IllegalArgumentException("machine type: expected a versioned type pc-i440fx-X.Y or pc-q35-X.Y"
                    + " (an alias such as 'pc' changes meaning between QEMU versions), actual '" + machineType + "'");
        }
        // Bounds as for the RAM blocks an image may hold (1 TiB) and the vCPUs an i440fx takes (255).
        if (memoryMiB < 64 || memoryMiB > MAX_MEMORY_MIB) {
            throw new IllegalArgumentException("guest memory: expected 64 to " + MAX_MEMORY_MIB + " MiB, actual " + memoryMiB + " MiB");
        }
        if (cpuCount < 1 || cpuCount > MAX_CPU_COUNT) {
            throw new IllegalArgumentException("cpu count: expected 1 to " + MAX_CPU_COUNT + ", actual " + cpuCount);
        }
        // What QEMU gets is what was checked, re-rendered from the typed form.
        extraArgs = QemuOption.arguments(QemuOption.parse(extraArgs == null ? List.of() : extraArgs));
        disks = disks == null ? List.of() : List.copyOf(disks);
        if (disks.stream().map(Disk::node).distinct().count() < disks.size()
                || disks.stream().map(Disk::pciAddress).distinct().count() < disks.size()) {
            throw new IllegalArgumentException("disks: expected distinct node names and PCI addresses, actual " + disks);
        }
    }

    /**
     * Reads a configuration file ({@code vm.json} beside a QMP socket, {@code save --vm-config}): data from outside, checked
     * as every configuration is, every error an {@link IllegalArgumentException} naming the file and what was wrong where.
     */
    public static VmConfig read(Path file) {
        try {
            VmConfig config = FILE_JSON.readValue(file.toFile(), VmConfig.class);
            // Jackson reads a file holding the literal null (or nothing but it) as no configuration at all.
            if (config == null) throw new IllegalArgumentException(file + ": expected a VM configuration (a JSON object), actual null");
            return config;
        } catch (IOException e) {
            // Jackson's message says where (line, column, field) and, for a refused value, the constructor's expected/actual.
            throw new IllegalArgumentException(file + ": expected a VM configuration (a JSON object: name, machineType, accel,"
                    + " memoryMiB, cpuCount, kernel, initrd, ...), actual: " + e.getMessage(), e);
        }
    }

    /** The files QEMU hands the guest (those present), by role: kernel, initrd, firmware, flash0, flash1. */
    public List<Map.Entry<String, Path>> guestFiles() {
        return guestFiles(kernel, initrd, firmware, flash);
    }

    private static List<Map.Entry<String, Path>> guestFiles(Path kernel, Path initrd, Path firmware, List<Flash> flash) {
        List<Map.Entry<String, Path>> files = new ArrayList<>();
        if (kernel != null) files.add(Map.entry("kernel", kernel));
        if (initrd != null) files.add(Map.entry("initrd", initrd));
        if (firmware != null) files.add(Map.entry("firmware", firmware));
        for (Flash f : flash) files.add(Map.entry(f.role(), f.file()));
        return files;
    }

    /**
     * Checks that the kernel, initrd and firmware (those given) are regular files inside one of {@code trustedDirectories},
     * symbolic links resolved. QEMU reads them as whoever runs Thaw and the guest can read them back
     * through fw_cfg (the firmware: in its ROM), so a recorded configuration naming {@code /root/.ssh/id_rsa} as its kernel
     * would hand that file to its guest.
     */
    public VmConfig requireGuestFilesIn(List<Path> trustedDirectories) {
        for (Map.Entry<String, Path> file : guestFiles()) {
            Path real;
            try {
                real = file.getValue().toRealPath();
            } catch (IOException e) {
                throw new IllegalArgumentException("guest " + file.getKey() + " " + file.getValue() + ": expected a readable file, actual "
                        + e, e);
            }
            boolean trusted = Files.isRegularFile(real) && trustedDirectories.stream().anyMatch(d -> {
                try {
                    return real.startsWith(d.toRealPath());
                } catch (IOException e) {
                    return false; // a trusted directory that does not exist holds nothing
                }
            });
            if (!trusted) {
                throw new IllegalArgumentException("guest " + file.getKey() + ": expected a regular file inside one of " + trustedDirectories
                        + " (Thaw's guest builds, or THAW_GUEST_DIRS), actual " + real);
            }
        }
        return this;
    }

    /**
     * Checks that every stream netdev connects to a socket directly inside one of {@code clusterDirectories} (a cluster
     * switch's directory). QEMU connects as whoever runs Thaw, and the guest writes raw bytes to that socket, so a recorded
     * configuration naming {@code /run/docker.sock} would hand that service to its guest.
     */
    public VmConfig requireClusterSocketsIn(List<Path> clusterDirectories) {
        for (QemuOption option : QemuOption.parse(extraArgs)) {
            option.clusterSocket().ifPresent(socket -> {
                Path dir = socket.getParent();
                if (clusterDirectories.stream().noneMatch(d -> d.toAbsolutePath().normalize().equals(dir))) {
                    throw new IllegalArgumentException("stream netdev socket: expected a socket directly inside one of "
                            + clusterDirectories + " (the cluster's directory), actual " + socket);
                }
            });
        }
        return this;
    }

    /** The same guest, started as the destination of a restore. */
    public VmConfig asIncoming(String newName) {
        return new VmConfig(newName, machineType, accel, memoryMiB, cpuCount, kernel, initrd, kernelCommandLine,
                true, startPaused, extraArgs, disks, firmware, flash, qemuDefaults);
    }

    /** The same guest, started paused ({@code -S}) and not as a migration destination (for example to {@code loadvm} into). */
    public VmConfig asPaused(String newName) {
        return new VmConfig(newName, machineType, accel, memoryMiB, cpuCount, kernel, initrd, kernelCommandLine,
                false, true, extraArgs, disks, firmware, flash, qemuDefaults);
    }

    /** The same guest with or without {@code -S}: started, its vCPUs wait for {@code cont} (a cluster member waits for START). */
    public VmConfig withStartPaused(boolean paused) {
        return new VmConfig(name, machineType, accel, memoryMiB, cpuCount, kernel, initrd, kernelCommandLine, incomingDefer,
                paused, extraArgs, disks, firmware, flash, qemuDefaults);
    }

    /** The same guest with or without QEMU's default devices (a command line Thaw did not write may keep them). */
    public VmConfig withQemuDefaults(boolean keep) {
        return new VmConfig(name, machineType, accel, memoryMiB, cpuCount, kernel, initrd, kernelCommandLine, incomingDefer,
                startPaused, extraArgs, disks, firmware, flash, keep);
    }

    /** The same guest on other disks (a restore's overlays; none for what an image records). */
    public VmConfig withDisks(List<Disk> newDisks) {
        return new VmConfig(name, machineType, accel, memoryMiB, cpuCount, kernel, initrd, kernelCommandLine, incomingDefer,
                startPaused, extraArgs, newDisks, firmware, flash, qemuDefaults);
    }

    /** The same guest with other recorded options (checked by {@link QemuOption} as every configuration's are). */
    public VmConfig withExtraArgs(List<String> newExtraArgs) {
        return new VmConfig(name, machineType, accel, memoryMiB, cpuCount, kernel, initrd, kernelCommandLine, incomingDefer,
                startPaused, newExtraArgs, disks, firmware, flash, qemuDefaults);
    }

    /** The same guest with another copy of its guest file {@code role} (one {@link #guestFiles} names: an image's copy). */
    public VmConfig withGuestFile(String role, Path copy) {
        List<Flash> newFlash = flash.stream().map(f -> f.role().equals(role) ? new Flash(f.unit(), copy, f.readOnly()) : f).toList();
        return new VmConfig(name, machineType, accel, memoryMiB, cpuCount, role.equals("kernel") ? copy : kernel,
                role.equals("initrd") ? copy : initrd, kernelCommandLine, incomingDefer, startPaused, extraArgs, disks,
                role.equals("firmware") ? copy : firmware, newFlash, qemuDefaults);
    }

    /**
     * The QEMU arguments, given the per-launch socket paths. The serial console (ttyS0) is QEMU's
     * stdio, which Thaw reads continuously; ttyS1 is the guest agent's port, on a unix socket.
     */
    public List<String> qemuArguments(String qemuBinary, Path qmpSocket, Path controlSocket) {
        return qemuArguments(qemuBinary, qmpSocket, null, controlSocket);
    }

    /**
     * @param extraQmpSocket a second QMP monitor for other clients (QEMU serves one client per
     *                       monitor socket, and Thaw keeps the first); null for none
     */
    public List<String> qemuArguments(String qemuBinary, Path qmpSocket, Path extraQmpSocket, Path controlSocket) {
        List<String> args = new ArrayList<>(List.of(qemuBinary,
                "-name", "guest=" + name + ",debug-threads=on",
                "-machine", machineType,
                "-accel", accel.qemuName(),
                "-cpu", "qemu64",
                "-smp", Integer.toString(cpuCount),
                "-m", memoryMiB + "M",
                "-display", "none", "-no-user-config", "-no-reboot",
                "-chardev", "stdio,id=console,signal=off",
                "-serial", "chardev:console",
                "-chardev", "socket,id=control,path=" + controlSocket + ",server=on,wait=off",
                "-serial", "chardev:control",
                "-chardev", "socket,id=qmp,path=" + qmpSocket + ",server=on,wait=off",
                "-mon", "chardev=qmp,mode=control"));
        if (!qemuDefaults) args.add(args.indexOf("-display"), "-nodefaults");
        // Without -kernel the firmware boots the guest's disk (and QEMU adds no linuxboot option ROM, a RAM block of its own).
        if (kernel != null) args.addAll(List.of("-kernel", kernel.toString(), "-initrd", initrd.toString(), "-append", kernelCommandLine));
        if (firmware != null) args.addAll(List.of("-bios", firmware.toString()));
        for (Flash f : flash) args.addAll(f.arguments());
        if (extraQmpSocket != null) {
            args.addAll(List.of("-chardev", "socket,id=qmp-extra,path=" + extraQmpSocket + ",server=on,wait=off",
                    "-mon", "chardev=qmp-extra,mode=control"));
        }
        args.addAll(extraArgs);
        for (Disk d : disks) args.addAll(d.arguments());
        if (startPaused) {
            args.add("-S");
        }
        if (incomingDefer) {
            args.addAll(List.of("-incoming", "defer"));
        }
        return args;
    }
}
