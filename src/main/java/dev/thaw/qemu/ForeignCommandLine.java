package dev.thaw.qemu;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Pattern;

/**
 * The command line of a QEMU that Thaw did not start, read to decide whether Thaw can start its twin for a restore. Every
 * option is either replayed (the guest's devices, from {@link QemuOption}'s allowlist; its disks, through QMP's view of
 * them), known to leave no trace in the guest's state (monitors, chardev backends, pid files, display none), or refused
 * by name: an unknown option may add a device whose state the migration stream carries and the twin would lack, or a
 * host resource (a tap's script, vfio, vhost-user) a restore must not recreate from an image. What QEMU chose by the order
 * it created devices (a PCI slot, a NIC's MAC, the NICs of -nic, -net and its default network) is not on the command line:
 * parsing says where to ask, and {@link #replayedArgs} completes it from QMP's answers ({@link DeviceFacts}), so the
 * restore's command line places everything explicitly.
 *
 * @param accel          {@code -accel}, {@code -enable-kvm} or {@code -machine accel=}; TCG when none is given
 * @param kernel         {@code -kernel}, resolved against QEMU's working directory; null for a guest its firmware boots from a
 *                       disk (no -kernel, -initrd nor -append)
 * @param initrd         {@code -initrd}, likewise; null exactly when kernel is
 * @param kernelCommandLine {@code -append}, or empty
 * @param firmware       {@code -bios}: a path (with a slash) resolved against QEMU's working directory, or a bare name as given,
 *                       which QEMU looks up in its working directory and then its data directory ({@code ForeignGuest} does
 *                       the same); null for QEMU's default firmware
 * @param flash          {@code -drive if=pflash}: the firmware's code (unit 0) and variables (unit 1), resolved against QEMU's
 *                       working directory; empty for none
 * @param replayed       the {@code -device}, {@code -netdev}, {@code -object iothread}, {@code -boot} and {@code -nic none} options
 *                       a restore repeats (checked by {@link QemuOption}), and the NICs QEMU created from {@code -nic}, {@code -net}
 *                       or its default network; where QEMU chose a device's PCI address or MAC, QMP says which
 *                       ({@link #replayedArgs})
 * @param serialPorts    how many {@code -serial} ports (a restore gives the guest two: its console and Thaw's agent port)
 * @param qemuDefaults   no {@code -nodefaults}: QEMU's default devices (VGA, IDE CD-ROM and floppy drives, parallel port), which
 *                       the restore's QEMU then keeps too; its default NIC (where no network is given) is one of {@code replayed}
 * @param firmwareDirectories {@code -L DIR}, resolved against QEMU's working directory: where QEMU looked for firmware and option
 *                       ROMs before its own data directories ({@code ForeignGuest} resolves the firmware through them)
 */
public record ForeignCommandLine(Accel accel, Path kernel, Path initrd, String kernelCommandLine, List<Replayed> replayed,
                                 int serialPorts, Path firmware, List<VmConfig.Flash> flash, boolean qemuDefaults,
                                 List<Path> firmwareDirectories) {
    /** An option, or a NIC, that a restore repeats. */
    public sealed interface Replayed {
        /** Repeated as given: everything QEMU made of it is on the command line. */
        record AsGiven(QemuOption option) implements Replayed {}

        /**
         * A {@code -device} without {@code addr=} (QEMU gave it the next free PCI slot in the order it created devices) or a NIC
         * without {@code mac=} (QEMU gave it the next free 52:54:00:12:34:xx, in the same order): a restore's command line does
         * not repeat that order, so it gets the address and MAC QMP reports for the device at {@code qomPath}.
         *
         * @param where the argument, for errors
         */
        record Placed(QemuOption device, String qomPath, String where) implements Replayed {}

        /**
         * A NIC QEMU's board created ({@code -nic user}, {@code -net nic} with {@code -net user}, or its default network), replayed
         * as {@code -netdev user} and a {@code -device} of the type QEMU chose, at its address and with its MAC: the same device
         * and device state; its link to the user network is direct where {@code -net} had a hub between them (a hub has no
         * state and forwards every frame, and the two ports are all it had).
         *
         * @param netdev     its user network, under an id of Thaw's
         * @param model      the device type asked for ({@code model=}, aliases resolved); empty: the machine's default
         * @param mac        {@code mac=} or {@code macaddr=}, if given (QMP's answer must agree)
         * @param pciAddress {@code addr=}, if given (likewise)
         * @param where      the option(s) it came from, for errors
         */
        record BoardNic(QemuOption netdev, Optional<String> model, Optional<String> mac, Optional<String> pciAddress, String where)
                implements Replayed {}
    }

    /** A device on PCI bus 0 as QMP's {@code query-pci} lists it. */
    public record PciDevice(int devfn, String qdevId, int classCode) {
        /**
         * The classes of the devices QEMU's pc and q35 boards create themselves: host bridge, ISA bridge, IDE, SATA, the
         * PIIX4's power management ("other bridge"), SMBus; none of them a device Thaw replays from a command line.
         */
        static final Set<Integer> BOARD_CLASSES = Set.of(0x0600, 0x0601, 0x0101, 0x0106, 0x0680, 0x0c05);
        /** QEMU's default VGA (without -nodefaults). */
        static final int VGA = 0x0300;

        /** The address {@code addr=} gives for a devfn: SLOT.FUNCTION in hex. */
        public static String address(int devfn) {
            return String.format("%02x.%x", devfn >> 3, devfn & 7);
        }
    }

    /**
     * What the running QEMU says about its devices; {@code ForeignGuest} asks over QMP (before the guest is stopped). Each method
     * throws {@link IllegalArgumentException} saying what it asked and what QEMU answered when the answer does not fit.
     */
    public interface DeviceFacts {
        /** The QOM type of the object at {@code qomPath} ({@code qom-get PATH type}). */
        String type(String qomPath);

        /** The PCI device's {@code devfn} ({@code qom-get PATH addr}). */
        int devfn(String qomPath);

        /** The NIC's MAC ({@code qom-get PATH mac}). */
        String mac(String qomPath);

        /** A virtio NIC's MSI-X vector count ({@code qom-get PATH vectors}). */
        int vectors(String qomPath);

        /** The NICs QEMU's board created (in {@code /machine/unattached}), their QOM paths in the order it created them. */
        List<String> boardNics();

        /** The devices on PCI bus 0 ({@code query-pci}). */
        List<PciDevice> pciDevices();
    }
    /** Options without a value that leave nothing in the guest's migrated state. */
    private static final Set<String> HARMLESS_FLAGS = Set.of("nodefaults", "no-user-config", "nographic", "no-reboot", "no-shutdown",
            "S", "enable-kvm");
    /** Options whose value is host-side only (monitors, chardev backends, names, files QEMU writes): accepted, not replayed. */
    private static final Set<String> HOST_SIDE = Set.of("name", "pidfile", "chardev", "mon", "qmp", "qmp-pretty", "monitor", "incoming");
    /** Options Thaw understands and handles one by one below. */
    private static final Set<String> HANDLED = Set.of("machine", "M", "accel", "cpu", "smp", "m", "kernel", "initrd", "append", "serial",
            "display", "vga", "drive", "blockdev", "device", "netdev", "object", "bios", "nic", "net", "boot", "L");
    /** Refused with a reason more useful than "unknown". */
    private static final Map<String, String> REFUSED = Map.of(
            "daemonize", "a daemonized QEMU has left its parent and its pipes; start it in the foreground (or under a supervisor)",
            "global", "-global changes device defaults the restore would not repeat");
    /** {@code -nic} and {@code -net nic}'s {@code model=}: QEMU's alias resolved. */
    private static final Map<String, String> NIC_MODEL_ALIASES = Map.of("virtio", "virtio-net-pci");
    private static final Pattern MAC = QemuOption.MAC;
    private static final Pattern PCI_ADDRESS = QemuOption.PCI_ADDRESS;
    private static final Pattern ID = QemuOption.ID;
    private static final Pattern MEMORY = Pattern.compile("(?:size=)?\\d+[MG]?");
    private static final Pattern SMP = Pattern.compile("(?:cpus=)?\\d+");
    private static final Map<String, Pattern> DRIVE = Map.of("file", Pattern.compile("[^,]+"), "if", Pattern.compile("virtio|none"),
            "format", Pattern.compile("raw|qcow2"), "id", ID,
            "readonly", Pattern.compile("on|off"), "cache", Pattern.compile("writeback|none|writethrough|directsync|unsafe"),
            "aio", Pattern.compile("threads|native|io_uring"), "discard", Pattern.compile("ignore|off|unmap|on"),
            "media", Pattern.compile("disk"), "node-name", ID);
    /** A firmware's flash: raw files, read whole into the RAM blocks the stream carries. */
    private static final Map<String, Pattern> PFLASH = Map.of("file", Pattern.compile("[^,]+"), "if", Pattern.compile("pflash"),
            "format", Pattern.compile("raw"), "unit", Pattern.compile("[01]"), "readonly", Pattern.compile("on|off"));
    private static final Map<String, Pattern> BLOCKDEV = Map.ofEntries(Map.entry("driver", Pattern.compile("file|raw|qcow2")),
            Map.entry("node-name", ID), Map.entry("file", Pattern.compile("[^,]+")),
            Map.entry("file.driver", Pattern.compile("file")), Map.entry("file.filename", Pattern.compile("[^,]+")),
            Map.entry("filename", Pattern.compile("[^,]+")), Map.entry("read-only", Pattern.compile("on|off")),
            Map.entry("auto-read-only", Pattern.compile("on|off")), Map.entry("cache.direct", Pattern.compile("on|off")),
            Map.entry("cache.no-flush", Pattern.compile("on|off")), Map.entry("discard", Pattern.compile("ignore|off|unmap|on")),
            Map.entry("aio", Pattern.compile("threads|native|io_uring")));
    private static final Map<String, Pattern> VIRTIO_BLK = Map.of("drive", ID, "id", ID, "addr", PCI_ADDRESS,
            "bootindex", QemuOption.BOOT_INDEX);

    /**
     * Reads {@code argv} (as in {@code /proc/PID/cmdline}) of a QEMU whose working directory is {@code cwd}.
     *
     * @throws QemuOption.RefusedException naming the first argument that cannot be replayed, before anything touched the guest
     */
    public static ForeignCommandLine parse(List<String> argv, Path cwd) {
        if (argv.isEmpty() || !Path.of(argv.getFirst()).getFileName().toString().equals(QemuVm.QEMU_BINARY)) {
            throw new QemuOption.RefusedException("the QEMU command line: expected " + QemuVm.QEMU_BINARY + " as its program, actual '"
                    + (argv.isEmpty() ? "" : argv.getFirst()) + "'");
        }
        Accel accel = Accel.TCG;
        Path kernel = null;
        Path initrd = null;
        String append = null;
        Path firmware = null;
        List<VmConfig.Flash> flash = new ArrayList<>();
        List<Path> firmwareDirectories = new ArrayList<>();
        boolean nodefaults = false;
        boolean vgaNone = false;
        boolean network = false; // any -netdev, -nic or -net: QEMU then adds no default NIC
        boolean boot = false;
        int serials = 0;
        int anonymousDevices = 0; // QEMU names a -device without id= /machine/peripheral-anon/device[N], N counting from 0
        List<Replayed> replayed = new ArrayList<>();
        Set<String> netdevIds = new java.util.HashSet<>();
        // QEMU creates the NICs of every -nic first, then those of -net nic, whatever their order on the command line.
        List<PendingNic> nics = new ArrayList<>();
        List<PendingNic> legacyNics = new ArrayList<>();
        List<PendingNic> legacyUsers = new ArrayList<>();
        for (int i = 1; i < argv.size(); i++) {
            String arg = argv.get(i);
            if (!arg.startsWith("-") || arg.equals("-")) {
                throw refused(i, arg, "expected an option (QEMU's positional disk image is an IDE disk, not replayed yet), actual '" + arg + "'");
            }
            String option = arg.replaceFirst("^--?", "");
            if (REFUSED.containsKey(option)) throw refused(i, arg, "expected none of " + new TreeSet<>(REFUSED.keySet()) + ", actual " + arg + ": " + REFUSED.get(option));
            if (HARMLESS_FLAGS.contains(option)) {
                if (option.equals("nodefaults")) nodefaults = true;
                if (option.equals("enable-kvm")) accel = Accel.KVM;
                continue;
            }
            if (!HOST_SIDE.contains(option) && !HANDLED.contains(option)) {
                throw refused(i, arg, "expected one of " + new TreeSet<>(union(HARMLESS_FLAGS, HOST_SIDE, HANDLED))
                        + " (the options Thaw can replay or knows to be host-side only), actual '" + arg + "'");
            }
            if (i + 1 == argv.size()) throw refused(i, arg, "expected a value after it, actual the end of the command line");
            int at = i; // errors name the option's own position (argv[at]; argv[0] is the program)
            String value = argv.get(++i);
            String where = arg + " " + value;
            switch (option) {
                case "machine", "M" -> accel = machineAccel(at, where, value).orElse(accel);
                case "accel" -> accel = switch (value) {
                    case "tcg" -> Accel.TCG;
                    case "kvm" -> Accel.KVM;
                    default -> throw refused(at, where, "expected tcg or kvm without properties, actual '" + value + "'");
                };
                case "cpu" -> {
                    // VmConfig starts every guest with qemu64, QEMU's default for x86_64 under TCG and KVM.
                    if (!value.equals("qemu64")) throw refused(at, where, "expected qemu64 (the default; other CPU models are not replayed yet), actual '" + value + "'");
                }
                case "smp" -> require(at, where, SMP, value, "N or cpus=N (topologies and maxcpus are not replayed yet)");
                case "m" -> require(at, where, MEMORY, value, "N, NM, NG or size=... (memory hotplug slots are not replayed yet)");
                case "kernel" -> kernel = cwd.resolve(value).normalize();
                case "initrd" -> {
                    if (value.contains(",")) throw refused(at, where, "expected one initrd file, actual several");
                    initrd = cwd.resolve(value).normalize();
                }
                case "append" -> append = value;
                case "bios" -> firmware = value.contains("/") ? cwd.resolve(value).normalize() : Path.of(value);
                case "L" -> {
                    if (value.equals("help") || value.isEmpty()) throw refused(at, where, "expected a directory, actual '" + value + "'");
                    firmwareDirectories.add(cwd.resolve(value).normalize());
                }
                case "serial" -> serials++;
                case "display", "vga" -> {
                    if (!value.equals("none")) throw refused(at, where, "expected none (display devices are not replayed yet), actual '" + value + "'");
                    if (option.equals("vga")) vgaNone = true;
                }
                case "drive" -> {
                    if (value.matches("(?:.*,)?if=pflash(?:,.*)?")) {
                        Map<String, String> p = checkProperties(at, where, value, PFLASH, Set.of("file", "format"), " (a firmware's flash)");
                        // Without unit= QEMU gives the next unit, in the order of the -drive options.
                        int unit = p.containsKey("unit") ? Integer.parseInt(p.get("unit")) : flash.size();
                        if (unit > 1) throw refused(at, where, "expected at most two pflash units (code and variables), actual a third");
                        try {
                            flash.add(new VmConfig.Flash(unit, cwd.resolve(p.get("file")).normalize(), "on".equals(p.get("readonly"))));
                        } catch (IllegalArgumentException e) {
                            throw refused(at, where, e.getMessage());
                        }
                    } else {
                        checkProperties(at, where, value, DRIVE, Set.of("file", "if"),
                                "(only virtio disks, if=virtio or if=none with -device virtio-blk-pci, and a firmware's if=pflash are replayed)");
                    }
                }
                case "blockdev" -> {
                    if (value.startsWith("{")) throw refused(at, where, "expected key=value properties (the JSON form is not read yet), actual JSON");
                    checkProperties(at, where, value, BLOCKDEV, Set.of("driver"), "");
                }
                case "device" -> {
                    if (value.startsWith("{")) throw refused(at, where, "expected type,key=value... (the JSON form is not read yet), actual JSON");
                    Optional<String> id = java.util.Arrays.stream(value.split(",")).filter(p -> p.startsWith("id=")).map(p -> p.substring(3)).findFirst();
                    String qomPath = id.map(d -> "/machine/peripheral/" + d).orElse(null);
                    if (id.isEmpty()) qomPath = "/machine/peripheral-anon/device[" + anonymousDevices++ + "]";
                    if (value.startsWith("virtio-blk-pci")) {
                        // A disk: QMP's query-block says where it is (ForeignGuest), not this.
                        checkProperties(at, where, value.substring("virtio-blk-pci".length()).replaceFirst("^,", ""), VIRTIO_BLK,
                                Set.of("drive"), "");
                    } else {
                        String type = value.split(",", 2)[0];
                        if (!QemuOption.ALLOWED.get("-device").containsKey(type)) {
                            Set<String> types = new TreeSet<>(QemuOption.ALLOWED.get("-device").keySet());
                            types.add("virtio-blk-pci");
                            throw refused(at, where, "expected one of " + types + " as its type, actual '" + type + "'");
                        }
                        QemuOption device = parseAllowed(at, arg, value);
                        // A -device without an address took the next free slot in the order QEMU created devices, a NIC without
                        // a MAC the next free one: the restore's command line (disks and board NICs placed explicitly) does not
                        // repeat that order, so QMP says what they became.
                        boolean unplaced = !device.isDevice("vmgenid") && device.property("addr").isEmpty();
                        if (unplaced || (device.isNic() && device.property("mac").isEmpty())) {
                            replayed.add(new Replayed.Placed(device, qomPath, "argument " + at + " (" + where + ")"));
                        } else {
                            replayed.add(new Replayed.AsGiven(device));
                        }
                    }
                }
                case "netdev" -> {
                    network = true;
                    QemuOption netdev = parseAllowed(at, arg, value);
                    netdev.property("id").ifPresent(netdevIds::add);
                    replayed.add(new Replayed.AsGiven(netdev));
                }
                case "nic" -> {
                    network = true;
                    // -nic TYPE[,model=M][,mac=MAC][,id=ID][,BACKEND PROPERTIES]; the type defaults to user.
                    String type = value.split(",", 2)[0];
                    String properties = type.contains("=") ? value : value.substring(type.length()).replaceFirst("^,", "");
                    if (type.contains("=") || type.isEmpty()) type = "user";
                    if (type.equals("none")) {
                        replayed.add(new Replayed.AsGiven(parseAllowed(at, arg, value)));
                    } else if (!type.equals("user")) {
                        throw refused(at, where, "expected user or none as its type (a tap's, bridge's or socket's host side is not"
                                + " recreated from an image), actual '" + type + "'");
                    } else {
                        nics.add(pendingNic(at, where, properties, Set.of("model", "mac", "id"), true));
                    }
                }
                case "net" -> {
                    network = true;
                    String type = value.split(",", 2)[0];
                    String properties = value.substring(type.length()).replaceFirst("^,", "");
                    switch (type) {
                        case "none" -> {
                            if (!properties.isEmpty()) throw refused(at, where, "expected none without properties, actual '" + properties + "'");
                            replayed.add(new Replayed.AsGiven(parseAllowed(at, "-nic", "none")));
                        }
                        case "nic" -> legacyNics.add(pendingNic(at, where, properties, Set.of("model", "macaddr", "addr", "name"), false));
                        case "user" -> legacyUsers.add(pendingNic(at, where, properties, Set.of(), true));
                        default -> throw refused(at, where, "expected nic, user or none as its type (a tap's, bridge's or socket's host"
                                + " side is not recreated from an image), actual '" + type + "'");
                    }
                }
                case "boot" -> {
                    if (boot) throw refused(at, where, "expected one -boot, actual a second");
                    boot = true;
                    replayed.add(new Replayed.AsGiven(parseBoot(at, where, value)));
                }
                case "object" -> {
                    // An iothread (a balloon's free-page hinting runs in one) is replayed; any other object may be guest state.
                    if (!value.startsWith("iothread,") && !value.equals("iothread")) {
                        throw refused(at, where, "expected iothread,id=ID (other objects: memory backends, secrets, rng sources,"
                                + " are not replayed yet), actual '" + value.split(",", 2)[0] + "'");
                    }
                    replayed.add(new Replayed.AsGiven(parseAllowed(at, arg, value)));
                }
                default -> { } // host-side: not replayed
            }
        }
        // -net nic and -net user share QEMU's hub 0: one NIC and one user network on it are a NIC on that network; more ports
        // (two NICs that see each other's frames, two user networks) have no -netdev/-device equivalent Thaw replays.
        if (legacyNics.size() != legacyUsers.size() || legacyNics.size() > 1) {
            throw new QemuOption.RefusedException("the QEMU command line: expected -net nic with one -net user (QEMU's hub 0 with two"
                    + " ports, replayed as -netdev user and a -device), actual " + legacyNics.size() + " -net nic and " + legacyUsers.size()
                    + " -net user (give each NIC its -netdev and -device)");
        }
        if (!legacyNics.isEmpty()) nics.add(legacyNics.getFirst().on(legacyUsers.getFirst()));
        // Without -nodefaults and without any network option QEMU adds -net nic -net user: its default NIC, replayed explicitly
        // like the others (so that clones get MACs of their own; the restore's -netdev then keeps QEMU from adding another).
        if (!nodefaults && !network) nics.add(new PendingNic("QEMU's default NIC (no -nodefaults and no network option)", "", Map.of()));
        int n = 0;
        for (PendingNic nic : nics) {
            String netdevId;
            do {
                netdevId = "thaw-nic" + n++;
            } while (netdevIds.contains(netdevId));
            replayed.add(nic.replayed(netdevId));
        }
        // Without -nodefaults QEMU adds its default devices; the restore's QEMU, also without it, adds the same ones at the same
        // places (before any -device). A -vga none would leave the restore a VGA the stream does not have: not replayed yet.
        if (!nodefaults && vgaNone) {
            throw new QemuOption.RefusedException("the QEMU command line: expected -nodefaults with -vga none, actual -vga none alone"
                    + " (QEMU's other default devices without its VGA are not replayed yet)");
        }
        // Either QEMU boots a kernel (-kernel and -initrd: Thaw replays no other direct boot) or the firmware boots a disk.
        if (kernel != null && initrd == null) {
            throw new QemuOption.RefusedException("the QEMU command line: expected -initrd with -kernel, actual no -initrd (a kernel"
                    + " booted without an initramfs is not replayed yet)");
        }
        if (kernel == null && (initrd != null || append != null)) {
            throw new QemuOption.RefusedException("the QEMU command line: expected -kernel with " + (initrd != null ? "-initrd" : "-append")
                    + ", actual no -kernel (without one the firmware boots a disk and QEMU refuses " + (initrd != null ? "-initrd" : "-append") + ")");
        }
        if (serials > 2) {
            throw new QemuOption.RefusedException("the QEMU command line: expected at most 2 -serial ports (a restore gives the guest"
                    + " its console and Thaw's agent port), actual " + serials);
        }
        flash.sort(java.util.Comparator.comparingInt(VmConfig.Flash::unit));
        if (!flash.isEmpty() && (flash.getFirst().unit() != 0 || flash.stream().map(VmConfig.Flash::unit).distinct().count() < flash.size())) {
            throw new QemuOption.RefusedException("the QEMU command line: expected pflash unit 0 (the firmware's code) and at most"
                    + " one unit 1 (its variables), actual units " + flash.stream().map(VmConfig.Flash::unit).toList());
        }
        if (!flash.isEmpty() && firmware != null) {
            throw new QemuOption.RefusedException("the QEMU command line: expected -bios or if=pflash firmware, actual both (QEMU"
                    + " boots the flash and ignores -bios)");
        }
        return new ForeignCommandLine(accel, kernel, initrd, append == null ? "" : append, List.copyOf(replayed), serials, firmware,
                List.copyOf(flash), !nodefaults, List.copyOf(firmwareDirectories));
    }

    /**
     * The arguments a restore repeats: each option as given, each device QEMU placed at the PCI address and with the MAC that
     * {@code facts} report (a -device's own {@code addr=} and {@code mac=} kept), each NIC QEMU's board created as
     * {@code -netdev user} and a {@code -device} of its type at its address with its MAC. Every device query-pci lists on bus 0
     * must be the board's, one of these or a disk.
     *
     * @param diskAddresses the PCI addresses of the guest's disks (QMP's query-block: {@code ForeignGuest})
     * @throws IllegalArgumentException where QEMU's answer does not fit the command line (expected ... actual ...)
     */
    public List<String> replayedArgs(DeviceFacts facts, List<String> diskAddresses) {
        List<Replayed.BoardNic> boardNics = replayed.stream().filter(r -> r instanceof Replayed.BoardNic).map(r -> (Replayed.BoardNic) r).toList();
        List<String> boardPaths = boardNics.isEmpty() ? List.of() : facts.boardNics();
        if (boardPaths.size() != boardNics.size()) {
            throw new IllegalArgumentException("the NICs QEMU created from -nic, -net nic or its default network: expected "
                    + boardNics.size() + " (" + String.join("; ", boardNics.stream().map(Replayed.BoardNic::where).toList()) + "), actual "
                    + boardPaths.size() + " " + boardPaths);
        }
        List<PciDevice> pci = facts.pciDevices();
        List<String> args = new ArrayList<>();
        Set<Integer> replayedDevfns = new TreeSet<>();
        for (String disk : diskAddresses) replayedDevfns.add(devfn(disk));
        int board = 0;
        for (Replayed r : replayed) {
            QemuOption device = switch (r) {
                case Replayed.AsGiven given -> given.option();
                case Replayed.Placed placed -> place(placed.device(), placed.qomPath(), placed.where(), facts, pci);
                case Replayed.BoardNic nic -> {
                    String path = boardPaths.get(board++);
                    String type = facts.type(path);
                    String expected = nic.model().orElse(String.join(" or ", new TreeSet<>(QemuOption.NIC_TYPES)));
                    if (nic.model().isPresent() ? !type.equals(nic.model().get()) : !QemuOption.NIC_TYPES.contains(type)) {
                        throw new IllegalArgumentException(nic.where() + ": expected QEMU's NIC at " + path + " to be " + expected
                                + ", actual '" + type + "'");
                    }
                    QemuOption d = QemuOption.parse(List.of("-device", type + ",netdev=" + nic.netdev().property("id").orElseThrow()
                            + nic.mac().map(m -> ",mac=" + m).orElse("") + nic.pciAddress().map(a -> ",addr=" + a).orElse(""))).getFirst();
                    // -nic leaves a virtio NIC's vector count 0 (net_param_nic zeroes its NICInfo; qdev_set_nic_properties sets
                    // it): no MSI-X capability, which a -device's default (4) would add. The rest is as a -device's.
                    if (type.equals("virtio-net-pci")) d = d.with("vectors", Integer.toString(facts.vectors(path)));
                    args.addAll(nic.netdev().arguments());
                    yield place(d, path, nic.where(), facts, pci);
                }
            };
            device.property("addr").ifPresent(a -> replayedDevfns.add(devfn(a)));
            args.addAll(device.arguments());
        }
        // The cross-check against query-pci: every device on bus 0 is the board's or one the restore's command line has (a
        // device added by device_add is not, and the restore would fail on the stream only after the guest was stopped).
        for (PciDevice d : pci) {
            boolean boards = PciDevice.BOARD_CLASSES.contains(d.classCode()) || (qemuDefaults && d.classCode() == PciDevice.VGA);
            if (!boards && !replayedDevfns.contains(d.devfn())) {
                throw new IllegalArgumentException("the devices on PCI bus 0: expected QEMU's board's and those of the command line and"
                        + " its disks (at " + replayedDevfns.stream().map(PciDevice::address).toList() + "), actual also a device at "
                        + PciDevice.address(d.devfn()) + String.format(" (class 0x%04x", d.classCode())
                        + (d.qdevId().isEmpty() ? "" : ", id '" + d.qdevId() + "'") + ") in query-pci (a device added by device_add is"
                        + " not replayed)");
            }
        }
        return List.copyOf(args);
    }

    /** {@code device} (found at {@code qomPath}) with the PCI address and, for a NIC, the MAC QEMU gave it, checked against query-pci. */
    private static QemuOption place(QemuOption device, String qomPath, String where, DeviceFacts facts, List<PciDevice> pci) {
        String type = facts.type(qomPath);
        if (!type.equals(device.type())) {
            throw new IllegalArgumentException(where + ": expected QEMU's " + device.type() + " at " + qomPath + ", actual '" + type + "'");
        }
        int devfn = facts.devfn(qomPath);
        if (devfn < 0 || devfn > 255) throw new IllegalArgumentException(where + ": expected a devfn 0-255 at " + qomPath + ", actual " + devfn);
        String address = PciDevice.address(devfn);
        Optional<String> given = device.property("addr");
        if (given.isPresent() && devfn(given.get()) != devfn) {
            throw new IllegalArgumentException(where + ": expected QEMU's device at " + qomPath + " at addr=" + given.get() + ", actual "
                    + address);
        }
        String id = device.property("id").orElse("");
        PciDevice listed = pci.stream().filter(d -> d.devfn() == devfn).findFirst().orElseThrow(() -> new IllegalArgumentException(where
                + ": expected query-pci to list a device at " + address + " (where " + qomPath + " is), actual none"));
        if (!listed.qdevId().equals(id)) {
            throw new IllegalArgumentException(where + ": expected query-pci's device at " + address + " to have id '" + id + "', actual '"
                    + listed.qdevId() + "'");
        }
        QemuOption placed = given.isPresent() ? device : device.with("addr", address);
        if (device.isNic()) {
            String mac = facts.mac(qomPath);
            Optional<String> givenMac = device.property("mac");
            if (givenMac.isPresent() && !givenMac.get().equalsIgnoreCase(mac)) {
                throw new IllegalArgumentException(where + ": expected QEMU's NIC at " + qomPath + " to have mac " + givenMac.get() + ", actual "
                        + mac);
            }
            if (givenMac.isEmpty()) {
                try {
                    placed = placed.with("mac", mac);
                } catch (QemuOption.RefusedException e) {
                    throw new IllegalArgumentException(where + ": expected a MAC aa:bb:cc:dd:ee:ff from qom-get " + qomPath + " mac, actual '"
                            + mac + "'", e);
                }
            }
        }
        return placed;
    }

    /** The devfn of a PCI address as QEMU reads {@code addr=}: SLOT or SLOT.FUNCTION in hex. */
    private static int devfn(String address) {
        String[] parts = address.split("\\.");
        return (Integer.parseInt(parts[0], 16) << 3) | (parts.length > 1 ? Integer.parseInt(parts[1]) : 0);
    }

    /** A NIC of -nic or -net nic (or a -net user) as read, its netdev id not chosen yet. */
    private record PendingNic(String where, String backend, Map<String, String> nic) {
        /** This -net nic on {@code user}'s network. */
        PendingNic on(PendingNic user) {
            return new PendingNic(where + " with " + user.where, user.backend, nic);
        }

        Replayed.BoardNic replayed(String netdevId) {
            QemuOption netdev = QemuOption.parse(List.of("-netdev", "user,id=" + netdevId + (backend.isEmpty() ? "" : "," + backend))).getFirst();
            String model = nic.get("model");
            return new Replayed.BoardNic(netdev, Optional.ofNullable(model).map(m -> NIC_MODEL_ALIASES.getOrDefault(m, m)),
                    Optional.ofNullable(nic.getOrDefault("mac", nic.get("macaddr"))).map(m -> m.toLowerCase(java.util.Locale.ROOT)),
                    Optional.ofNullable(nic.get("addr")), where);
        }
    }

    /**
     * Reads {@code properties} of a -nic, -net nic or -net user: {@code nicKeys} are the NIC's (checked here), the rest its user
     * network's (checked by {@link QemuOption} as a -netdev user's), if it {@code hasBackend} (-net nic has no network of its own).
     */
    private static PendingNic pendingNic(int index, String where, String properties, Set<String> nicKeys, boolean hasBackend) {
        Map<String, String> nic = new LinkedHashMap<>();
        List<String> backend = new ArrayList<>();
        for (String part : properties.isEmpty() ? new String[0] : properties.split(",", -1)) {
            int eq = part.indexOf('=');
            String key = eq < 0 ? part : part.substring(0, eq);
            if (!nicKeys.contains(key)) {
                if (!hasBackend) {
                    throw refused(index, where, "expected key=value with a key among " + new TreeSet<>(nicKeys) + ", actual '" + part + "'");
                }
                backend.add(part);
                continue;
            }
            String v = part.substring(eq + 1);
            if (nic.put(key, v) != null) throw refused(index, where, "expected " + key + " at most once, actual twice");
            Pattern values = switch (key) {
                case "mac", "macaddr" -> MAC;
                case "addr" -> PCI_ADDRESS;
                case "id", "name" -> ID;
                default -> null; // model
            };
            if (values != null && !values.matcher(v).matches()) {
                throw refused(index, where, "expected " + key + " to match " + values.pattern() + ", actual '" + part + "'");
            }
            if (key.equals("model") && !QemuOption.NIC_TYPES.contains(v) && !NIC_MODEL_ALIASES.containsKey(v)) {
                throw refused(index, where, "expected model= one of " + new TreeSet<>(union(QemuOption.NIC_TYPES, NIC_MODEL_ALIASES.keySet()))
                        + " (the NICs Thaw replays), actual '" + v + "'");
            }
        }
        String network = String.join(",", backend);
        if (hasBackend) parseAllowed(index, where, "-netdev", "user,id=x" + (network.isEmpty() ? "" : "," + network));
        return new PendingNic("argument " + index + " (" + where + ")", network, Map.copyOf(nic));
    }

    /** {@code -boot}: QEMU's implied first key is order= ({@code -boot c}); a splash image is a file the image does not carry. */
    private static QemuOption parseBoot(int index, String where, String value) {
        List<String> parts = new ArrayList<>(List.of(value.split(",", -1)));
        if (!parts.getFirst().contains("=")) parts.set(0, "order=" + parts.getFirst());
        for (String part : parts) {
            if (part.startsWith("splash=")) {
                throw refused(index, where, "expected no splash= (the splash picture is a host file the image does not carry), actual '"
                        + part + "'");
            }
        }
        return parseAllowed(index, "-boot", String.join(",", parts));
    }

    private static Optional<Accel> machineAccel(int index, String where, String value) {
        Optional<Accel> accel = Optional.empty();
        String[] parts = value.split(",", -1);
        for (int p = 0; p < parts.length; p++) {
            String part = parts[p];
            if (p == 0 && !part.contains("=")) continue; // the type; QMP says what an alias resolved to
            if (part.startsWith("type=")) continue;
            if (part.equals("accel=tcg")) accel = Optional.of(Accel.TCG);
            else if (part.equals("accel=kvm")) accel = Optional.of(Accel.KVM);
            else throw refused(index, where, "expected the machine type and at most accel=tcg|kvm (machine properties are not replayed yet), actual property '" + part + "'");
        }
        return accel;
    }

    private static QemuOption parseAllowed(int index, String option, String value) {
        return parseAllowed(index, option + " " + value, option, value);
    }

    /** {@code option value} checked by {@link QemuOption}; refused as the argument {@code where} at {@code index}. */
    private static QemuOption parseAllowed(int index, String where, String option, String value) {
        try {
            return QemuOption.parse(List.of(option, value)).getFirst();
        } catch (QemuOption.RefusedException e) {
            throw refused(index, where, e.getMessage().replaceFirst("^recorded QEMU argument \\d+ \\([^)]*\\): ", ""));
        }
    }

    private static Map<String, String> checkProperties(int index, String where, String value, Map<String, Pattern> allowed,
                                                       Set<String> required, String note) {
        Map<String, String> seen = new LinkedHashMap<>();
        for (String part : value.isEmpty() ? new String[0] : value.split(",", -1)) {
            int eq = part.indexOf('=');
            String key = eq < 0 ? part : part.substring(0, eq);
            Pattern values = allowed.get(key);
            if (values == null || eq < 0) {
                throw refused(index, where, "expected key=value with a key among " + new TreeSet<>(allowed.keySet()) + note
                        + ", actual '" + part + "'");
            }
            if (!values.matcher(part.substring(eq + 1)).matches()) {
                throw refused(index, where, "expected " + key + " to match " + values.pattern() + note + ", actual '" + part + "'");
            }
            seen.put(key, part.substring(eq + 1));
        }
        for (String key : required) {
            if (!seen.containsKey(key)) throw refused(index, where, "expected " + key + "=..." + note + ", actual none");
        }
        return seen;
    }

    private static void require(int index, String where, Pattern pattern, String value, String expected) {
        if (!pattern.matcher(value).matches()) throw refused(index, where, "expected " + expected + ", actual '" + value + "'");
    }

    @SafeVarargs
    private static Set<String> union(Set<String>... sets) {
        Set<String> all = new TreeSet<>();
        for (Set<String> s : sets) all.addAll(s);
        return all;
    }

    private static QemuOption.RefusedException refused(int index, String where, String why) {
        return new QemuOption.RefusedException("the QEMU command line's argument " + index + " (" + where + ") cannot be replayed: "
                + why);
    }
}
