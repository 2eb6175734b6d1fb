package dev.thaw.qemu;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Pattern;

/**
 * One option of a guest's recorded configuration ({@link VmConfig#extraArgs()}), in the typed form
 * Thaw replays. A configuration comes from an image's manifest or a {@code vm.json}: data that
 * whoever can write those files controls, while QEMU usually runs as root. So only the options,
 * types and properties listed in {@link #ALLOWED} are accepted, each value checked; everything else
 * ({@code -D FILE}, {@code -drive}, {@code -chardev}, a tap netdev's {@code script=}, a user
 * netdev's {@code guestfwd=} or {@code smb=}, a device's {@code romfile=}) is refused by name.
 * A cluster member's stream netdev (QEMU 7.2's {@code -netdev stream}, a client of Thaw's cluster
 * switch) is admitted in one form only, {@code stream,id=ID,server=off,addr.type=unix,addr.path=DIR/MEMBER.sock}:
 * the guest's frames reach whatever listens on that socket, so where it may lie is checked against
 * the cluster's directory by {@link VmConfig#requireClusterSocketsIn} before QEMU starts.
 *
 * @param option     {@code -device}, {@code -netdev}, {@code -object}, {@code -nic} (only {@code none}) or {@code -boot}
 * @param type       the device driver, netdev type or object type; empty for {@code -boot}, which has none
 * @param properties {@code key=value} pairs in their order
 */
public record QemuOption(String option, String type, List<Property> properties) {
    public record Property(String key, String value) {}

    /** A recorded QEMU argument that Thaw will not pass to QEMU. */
    public static final class RefusedException extends IllegalArgumentException {
        RefusedException(String message) {
            super(message);
        }
    }

    /** An id (QEMU's id_wellformed, bounded); a MAC; a PCI address as {@code addr=} takes it, SLOT[.FUNCTION] in hex. */
    static final Pattern ID = Pattern.compile("[A-Za-z][A-Za-z0-9_.-]{0,31}");
    static final Pattern MAC = Pattern.compile("(?:[0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}");
    static final Pattern PCI_ADDRESS = Pattern.compile("[0-9a-fA-F]{1,2}(?:\\.[0-7])?");
    // The host side on the loopback only: an empty host address listens on every interface.
    // An absolute path whose last part is a switch port's socket (ClusterSwitch's member names), no "." or ".." part,
    // at most 107 bytes (sun_path). ASCII only, so characters are bytes.
    private static final Pattern CLUSTER_SOCKET = Pattern.compile(
            "(?=.{1,107}$)/(?:(?!\\.\\.?/)[A-Za-z0-9._-]+/)+[A-Za-z0-9][A-Za-z0-9_-]{0,62}\\.sock");
    private static final Pattern LOOPBACK_FORWARD = Pattern.compile("(?:tcp|udp):127\\.0\\.0\\.1:\\d{1,5}-(?:10\\.0\\.2\\.\\d{1,3})?:\\d{1,5}");
    private static final Pattern ON_OFF = Pattern.compile("on|off");
    // "auto" is QEMU's default: a random GUID each time QEMU starts.
    static final Pattern BOOT_INDEX = Pattern.compile("\\d{1,3}");
    // Floppy a-b, disk c, CD-ROM d, network n-p (QEMU's -boot letters), each at most once.
    private static final Pattern BOOT_DRIVES = Pattern.compile("(?!.*(.).*\\1)[a-dn-p]{1,7}");
    private static final Pattern GUID = Pattern.compile("auto|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}");

    /**
     * The VM generation ID device (QEMU's {@code vmgenid}): a GUID in guest memory that a restore replaces with its own, and an
     * ACPI notification, so that a guest with a driver for it (Linux 5.18+ {@code CONFIG_VMGENID}) reseeds its random number
     * generator. Thaw boots its own guests with it; a restore may only keep it if the saved guest had it, since the
     * destination's devices must match the migration stream's.
     */
    public static final List<String> VM_GENERATION_ID = List.of("-device", "vmgenid");

    /** option, then type, then property and the values it may have. */
    static final Map<String, Map<String, Map<String, Pattern>>> ALLOWED = Map.of(
            "-device", Map.of(
                    // vectors: MSI-X vectors (0: none, as a -nic's virtio NIC has them).
                    "virtio-net-pci", Map.of("id", ID, "netdev", ID, "mac", MAC, "addr", PCI_ADDRESS, "bootindex", BOOT_INDEX,
                            "vectors", Pattern.compile("\\d{1,4}")),
                    // QEMU's default NIC models (pc: e1000, q35: e1000e), which a -nic or -net nic without model= creates.
                    "e1000", Map.of("id", ID, "netdev", ID, "mac", MAC, "addr", PCI_ADDRESS, "bootindex", BOOT_INDEX),
                    "e1000e", Map.of("id", ID, "netdev", ID, "mac", MAC, "addr", PCI_ADDRESS, "bootindex", BOOT_INDEX),
                    // With free-page reporting and hinting (FreePages); hinting runs in an -object iothread.
                    "virtio-balloon-pci", Map.of("id", ID, "addr", PCI_ADDRESS, "free-page-reporting", ON_OFF,
                            "free-page-hint", ON_OFF, "iothread", ID),
                    // Not a PCI device: no address.
                    "vmgenid", Map.of("id", ID, "guid", GUID)),
            // An iothread, for the balloon's free-page hinting: a host thread, nothing in the guest's state.
            "-object", Map.of("iothread", Map.of("id", ID)),
            "-netdev", Map.of("user", Map.of("id", ID, "hostfwd", LOOPBACK_FORWARD),
                    "stream", Map.of("id", ID, "server", Pattern.compile("off"), "addr.type", Pattern.compile("unix"),
                            "addr.path", CLUSTER_SOCKET)),
            // No network at all: QEMU then adds no default NIC (a command line without -nodefaults had none either).
            "-nic", Map.of("none", Map.of()),
            // The firmware's boot order, menu and timeouts (the order is in the RTC's CMOS, which the stream carries; the rest is
            // fw_cfg, which each QEMU builds from its command line): no type, only properties.
            "-boot", Map.of("", Map.of("order", BOOT_DRIVES, "once", BOOT_DRIVES, "menu", ON_OFF, "strict", ON_OFF,
                    "splash-time", Pattern.compile("\\d{1,5}"), "reboot-timeout", Pattern.compile("-1|\\d{1,5}"))));
    /** Options without a type: their value is properties only. */
    private static final Set<String> UNTYPED = Set.of("-boot");
    /** The NIC device types, whose MAC a clone changes ({@code RestoreIdentity}). */
    public static final Set<String> NIC_TYPES = Set.of("virtio-net-pci", "e1000", "e1000e");
    private static final Set<String> REPEATABLE = Set.of("hostfwd");
    // Without server=off QEMU would listen (creating a socket file at the path); without the path it would not connect at all.
    private static final Map<String, Set<String>> REQUIRED = Map.of("stream", Set.of("id", "server", "addr.type", "addr.path"),
            "iothread", Set.of("id"));

    /** The socket a stream netdev connects to, if this is one. */
    public java.util.Optional<java.nio.file.Path> clusterSocket() {
        if (!option.equals("-netdev") || !type.equals("stream")) return java.util.Optional.empty();
        return properties.stream().filter(p -> p.key().equals("addr.path")).map(p -> java.nio.file.Path.of(p.value())).findFirst();
    }

    /** The value of {@code key}, if this option has it (the first, for a repeatable key). */
    public java.util.Optional<String> property(String key) {
        return properties.stream().filter(p -> p.key().equals(key)).map(Property::value).findFirst();
    }

    /** This option with every {@code key} property's value replaced by {@code value}, or {@code key=value} added if it had none. */
    public QemuOption with(String key, String value) {
        List<Property> changed = new ArrayList<>();
        boolean found = false;
        for (Property p : properties) {
            if (p.key().equals(key)) {
                changed.add(new Property(key, value));
                found = true;
            } else {
                changed.add(p);
            }
        }
        if (!found) changed.add(new Property(key, value));
        return parse(new QemuOption(option, type, changed).arguments()).getFirst(); // the new value checked as any other
    }

    /** This option with each {@code key} property's value mapped by {@code change}. */
    public QemuOption mapping(String key, java.util.function.UnaryOperator<String> change) {
        List<Property> changed = properties.stream().map(p -> p.key().equals(key) ? new Property(key, change.apply(p.value())) : p).toList();
        return parse(new QemuOption(option, type, changed).arguments()).getFirst();
    }

    /** Whether this is a NIC ({@code -device} of one of {@link #NIC_TYPES}). */
    public boolean isNic() {
        return option.equals("-device") && NIC_TYPES.contains(type);
    }

    /** Whether this is {@code -device TYPE}. */
    public boolean isDevice(String deviceType) {
        return option.equals("-device") && type.equals(deviceType);
    }

    /** The two QEMU arguments of this option, as checked. */
    public List<String> arguments() {
        StringBuilder value = new StringBuilder(type);
        for (Property p : properties) value.append(value.isEmpty() ? "" : ",").append(p.key()).append('=').append(p.value());
        return List.of(option, value.toString());
    }

    /** Parses and checks recorded arguments; throws {@link RefusedException} naming the first that is not allowed. */
    public static List<QemuOption> parse(List<String> args) {
        List<QemuOption> options = new ArrayList<>();
        for (int i = 0; i < args.size(); i += 2) {
            String option = args.get(i);
            Map<String, Map<String, Pattern>> types = ALLOWED.get(option);
            if (types == null) {
                throw refused(i, option, "expected one of " + new TreeSet<>(ALLOWED.keySet()) + " (the options Thaw replays)", option);
            }
            if (i + 1 == args.size()) throw refused(i, option, "expected a value after it", "the end of the arguments");
            QemuOption parsed = parseValue(i + 1, option, args.get(i + 1), types);
            // QEMU refuses a second vmgenid ("at most one vmgenid device is permitted"): say so before it is launched.
            if (parsed.isDevice("vmgenid") && options.stream().anyMatch(o -> o.isDevice("vmgenid"))) {
                throw refused(i + 1, option, "expected at most one vmgenid device", args.get(i + 1));
            }
            options.add(parsed);
        }
        return List.copyOf(options);
    }

    /** The arguments of checked options, in order. */
    public static List<String> arguments(List<QemuOption> options) {
        return options.stream().flatMap(o -> o.arguments().stream()).toList();
    }

    private static QemuOption parseValue(int index, String option, String value, Map<String, Map<String, Pattern>> types) {
        // QEMU reads ",," as a comma inside a value; no allowed value has one, so every empty part is refused.
        String[] parts = value.split(",", -1);
        boolean untyped = UNTYPED.contains(option);
        String type = untyped ? "" : parts[0];
        Map<String, Pattern> allowed = types.get(type);
        if (allowed == null) {
            throw refused(index, option, "expected one of " + new TreeSet<>(types.keySet()) + " as its type", type);
        }
        Map<String, String> seen = new LinkedHashMap<>();
        List<Property> properties = new ArrayList<>();
        for (int p = untyped ? 0 : 1; p < parts.length; p++) {
            int eq = parts[p].indexOf('=');
            String key = eq < 0 ? parts[p] : parts[p].substring(0, eq);
            Pattern values = allowed.get(key);
            if (values == null || eq < 0) {
                throw refused(index, (option + " " + type).strip(), "expected key=value with a key among " + new TreeSet<>(allowed.keySet()), parts[p]);
            }
            String v = parts[p].substring(eq + 1);
            if (!values.matcher(v).matches()) {
                throw refused(index, (option + " " + type).strip(), "expected " + key + " to match " + values.pattern(), v);
            }
            if (seen.put(key, v) != null && !REPEATABLE.contains(key)) {
                throw refused(index, (option + " " + type).strip(), "expected " + key + " at most once", key + " twice");
            }
            properties.add(new Property(key, v));
        }
        Set<String> missing = new TreeSet<>(REQUIRED.getOrDefault(type, Set.of()));
        missing.removeAll(seen.keySet());
        if (!missing.isEmpty()) throw refused(index, option + " " + type, "expected the properties " + missing, "none of them");
        return new QemuOption(option, type, List.copyOf(properties));
    }

    private static RefusedException refused(int index, String where, String expected, String actual) {
        return new RefusedException("recorded QEMU argument " + (index + 1) + " (" + where + "): " + expected + ", actual '" + actual + "'");
    }
}
