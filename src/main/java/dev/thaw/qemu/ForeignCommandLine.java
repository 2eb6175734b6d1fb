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
 * host resource (a tap's script, vfio, vhost-user) a restore must not recreate from an image.
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
 * @param replayedArgs   the {@code -device}, {@code -netdev} and {@code -object iothread} options a restore repeats (checked by
 *                       {@link QemuOption})
 * @param serialPorts    how many {@code -serial} ports (a restore gives the guest two: its console and Thaw's agent port)
 * @param qemuDefaults   no {@code -nodefaults}: QEMU's default devices (VGA, IDE CD-ROM and floppy drives, parallel port, a NIC
 *                       where no network is given), which the restore's QEMU then keeps too
 */
public record ForeignCommandLine(Accel accel, Path kernel, Path initrd, String kernelCommandLine, List<String> replayedArgs,
                                 int serialPorts, Path firmware, List<VmConfig.Flash> flash, boolean qemuDefaults) {
    /** Options without a value that leave nothing in the guest's migrated state. */
    private static final Set<String> HARMLESS_FLAGS = Set.of("nodefaults", "no-user-config", "nographic", "no-reboot", "no-shutdown",
            "S", "enable-kvm");
    /** Options whose value is host-side only (monitors, chardev backends, names, files QEMU writes): accepted, not replayed. */
    private static final Set<String> HOST_SIDE = Set.of("name", "pidfile", "chardev", "mon", "qmp", "qmp-pretty", "monitor", "incoming");
    /** Options Thaw understands and handles one by one below. */
    private static final Set<String> HANDLED = Set.of("machine", "M", "accel", "cpu", "smp", "m", "kernel", "initrd", "append", "serial",
            "display", "vga", "drive", "blockdev", "device", "netdev", "object", "bios");
    /** Refused with a reason more useful than "unknown". */
    private static final Map<String, String> REFUSED = Map.of(
            "daemonize", "a daemonized QEMU has left its parent and its pipes; start it in the foreground (or under a supervisor)",
            "global", "-global changes device defaults the restore would not repeat",
            "L", "another firmware directory would have to be copied into the image; not replayed yet");
    private static final Pattern MEMORY = Pattern.compile("(?:size=)?\\d+[MG]?");
    private static final Pattern SMP = Pattern.compile("(?:cpus=)?\\d+");
    private static final Map<String, Pattern> DRIVE = Map.of("file", Pattern.compile("[^,]+"), "if", Pattern.compile("virtio|none"),
            "format", Pattern.compile("raw|qcow2"), "id", Pattern.compile("[A-Za-z][A-Za-z0-9_.-]{0,31}"),
            "readonly", Pattern.compile("on|off"), "cache", Pattern.compile("writeback|none|writethrough|directsync|unsafe"),
            "aio", Pattern.compile("threads|native|io_uring"), "discard", Pattern.compile("ignore|off|unmap|on"),
            "media", Pattern.compile("disk"), "node-name", Pattern.compile("[A-Za-z][A-Za-z0-9_.-]{0,31}"));
    /** A firmware's flash: raw files, read whole into the RAM blocks the stream carries. */
    private static final Map<String, Pattern> PFLASH = Map.of("file", Pattern.compile("[^,]+"), "if", Pattern.compile("pflash"),
            "format", Pattern.compile("raw"), "unit", Pattern.compile("[01]"), "readonly", Pattern.compile("on|off"));
    private static final Map<String, Pattern> BLOCKDEV = Map.ofEntries(Map.entry("driver", Pattern.compile("file|raw|qcow2")),
            Map.entry("node-name", Pattern.compile("[A-Za-z][A-Za-z0-9_.-]{0,31}")), Map.entry("file", Pattern.compile("[^,]+")),
            Map.entry("file.driver", Pattern.compile("file")), Map.entry("file.filename", Pattern.compile("[^,]+")),
            Map.entry("filename", Pattern.compile("[^,]+")), Map.entry("read-only", Pattern.compile("on|off")),
            Map.entry("auto-read-only", Pattern.compile("on|off")), Map.entry("cache.direct", Pattern.compile("on|off")),
            Map.entry("cache.no-flush", Pattern.compile("on|off")), Map.entry("discard", Pattern.compile("ignore|off|unmap|on")),
            Map.entry("aio", Pattern.compile("threads|native|io_uring")));
    private static final Map<String, Pattern> VIRTIO_BLK = Map.of("drive", Pattern.compile("[A-Za-z][A-Za-z0-9_.-]{0,31}"),
            "id", Pattern.compile("[A-Za-z][A-Za-z0-9_.-]{0,31}"), "addr", Pattern.compile("[0-9a-fA-F]{1,2}(?:\\.[0-7])?"),
            "bootindex", Pattern.compile("\\d{1,3}"));

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
        boolean nodefaults = false;
        boolean vgaNone = false;
        int serials = 0;
        List<String> replayed = new ArrayList<>();
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
                    if (value.startsWith("virtio-blk-pci")) {
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
                        // A -device without an address takes the next free slot in the order QEMU creates devices, which a
                        // restore's command line (disks placed explicitly) does not repeat.
                        if (!device.isDevice("vmgenid") && device.property("addr").isEmpty()) {
                            throw refused(at, where, "expected addr=SLOT on a replayed -device (Thaw repeats each PCI device at"
                                    + " the address it had; without one QEMU picks it by creation order), actual none");
                        }
                        replayed.addAll(device.arguments());
                    }
                }
                case "netdev" -> replayed.addAll(parseAllowed(at, arg, value).arguments());
                case "object" -> {
                    // An iothread (a balloon's free-page hinting runs in one) is replayed; any other object may be guest state.
                    if (!value.startsWith("iothread,") && !value.equals("iothread")) {
                        throw refused(at, where, "expected iothread,id=ID (other objects: memory backends, secrets, rng sources,"
                                + " are not replayed yet), actual '" + value.split(",", 2)[0] + "'");
                    }
                    replayed.addAll(parseAllowed(at, arg, value).arguments());
                }
                default -> { } // host-side: not replayed
            }
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
                List.copyOf(flash), !nodefaults);
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
        try {
            return QemuOption.parse(List.of(option, value)).getFirst();
        } catch (QemuOption.RefusedException e) {
            throw refused(index, option + " " + value, e.getMessage().replaceFirst("^recorded QEMU argument \\d+ \\([^)]*\\): ", ""));
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
