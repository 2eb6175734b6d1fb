package dev.thaw.restore;

import dev.thaw.qemu.QemuOption;
import dev.thaw.qemu.VmConfig;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Optional;
import java.util.UUID;
import java.util.regex.Pattern;

/**
 * Who one restored guest is beyond what its image holds, and the saved command line rewritten for it (pure). Every restore
 * gives the VM generation ID device, if the saved guest has one, a GUID of its own: QEMU's {@code vmgenid} keeps the GUID
 * out of the migration stream (only the guest address of its buffer travels, hw/acpi/vmgenid.c:183) and writes the
 * destination's into guest memory on load, notifying the guest (vmgenid_post_load, hw/acpi/vmgenid.c:170). One of several
 * clones ({@code cloneCount > 1}) also gets:
 * <ul>
 *   <li>host port 0 for every user-networking forward ({@code hostfwd=tcp:127.0.0.1:PORT-...}): the kernel chooses a free
 *   port per clone, so clones of a guest forwarding a fixed port do not collide ({@link dev.thaw.qemu.HostForward} reads
 *   back which);</li>
 *   <li>a locally administered MAC per NIC (virtio-net, e1000, e1000e) derived from the image, the clone and the NIC ({@link #mac}) on the
 *   command line. The running guest does not see it: QEMU 7.2 migrates the NIC's MAC (vmstate_virtio_net_device's first
 *   field, hw/net/virtio-net.c:3240; e1000's EEPROM and receive address registers), so the clone answers with the saved
 *   one. A virtio-net or e1000e NIC takes the command line's MAC when the guest resets it (a driver unbound and bound
 *   again); an e1000 keeps the saved MAC, read from its migrated EEPROM ({@link CommandLineNic#resetTakesCommandLineMac}).
 *   Each clone's user network is its own, so the shared MAC collides nowhere there.</li>
 * </ul>
 *
 * @param vmGenerationId the GUID the restore gives a vmgenid device
 * @param cloneIndex     which clone, 1-based
 * @param cloneCount     how many clones of the image start together (1: a plain restore, whose NICs and ports stay as saved)
 * @param imageId        the image's id, from which clones' MACs derive
 * @param clusterDirectory for a member of a virtual cluster restored onto its new switch: the switch's directory, where its stream
 *                       netdev's socket is moved to (same socket name, {@code MEMBER.sock}); the only directory its socket may lie in
 * @param diskDirectory  where this restore's disk overlays go ({@code restore --disk-dir}: a directory of its own is made in it);
 *                       empty: beside the image, {@code IMAGE.disks/}
 */
public record RestoreIdentity(UUID vmGenerationId, int cloneIndex, int cloneCount, String imageId, Optional<Path> clusterDirectory,
                              Optional<Path> diskDirectory) {
    private static final Pattern FORWARD_HOST_PORT = Pattern.compile("^((?:tcp|udp):127\\.0\\.0\\.1:)\\d{1,5}-");

    public RestoreIdentity {
        java.util.Objects.requireNonNull(vmGenerationId, "vmGenerationId");
        java.util.Objects.requireNonNull(imageId, "imageId");
        java.util.Objects.requireNonNull(clusterDirectory, "clusterDirectory");
        java.util.Objects.requireNonNull(diskDirectory, "diskDirectory");
        if (cloneCount < 1 || cloneIndex < 1 || cloneIndex > cloneCount) {
            throw new IllegalArgumentException("clone: expected 1 <= clone <= count, actual clone " + cloneIndex + " of " + cloneCount);
        }
    }

    public RestoreIdentity(UUID vmGenerationId, int cloneIndex, int cloneCount, String imageId) {
        this(vmGenerationId, cloneIndex, cloneCount, imageId, Optional.empty(), Optional.empty());
    }

    /** The same, as a member of the cluster whose switch listens in {@code directory}. */
    public RestoreIdentity withClusterDirectory(Path directory) {
        return new RestoreIdentity(vmGenerationId, cloneIndex, cloneCount, imageId, Optional.of(directory.toAbsolutePath().normalize()),
                diskDirectory);
    }

    /** The same, its disk overlays in a directory of its own under {@code directory} instead of beside the image. */
    public RestoreIdentity withDiskDirectory(Optional<Path> directory) {
        return new RestoreIdentity(vmGenerationId, cloneIndex, cloneCount, imageId, clusterDirectory,
                directory.map(d -> d.toAbsolutePath().normalize()));
    }

    /** The directories a restored guest's stream netdev socket may lie in: its cluster's, or none. */
    public List<Path> clusterDirectories() {
        return clusterDirectory.stream().toList();
    }

    /** A plain restore: a fresh random VM generation ID, everything else as saved. */
    public static RestoreIdentity single() {
        return new RestoreIdentity(UUID.randomUUID(), 1, 1, "");
    }

    /** Clone {@code clone} of {@code cloneCount} of the image {@code imageId}, with a fresh random VM generation ID. */
    public static RestoreIdentity clone(String imageId, int clone, int cloneCount) {
        return new RestoreIdentity(UUID.randomUUID(), clone, cloneCount, imageId);
    }

    /** The saved configuration as this restore starts it: its extra arguments rewritten as above, checked again. */
    public VmConfig applyTo(VmConfig saved) {
        List<QemuOption> options = new ArrayList<>();
        int nic = 0;
        for (QemuOption o : QemuOption.parse(saved.extraArgs())) {
            QemuOption changed = o;
            if (o.isDevice("vmgenid")) changed = o.with("guid", vmGenerationId.toString());
            if (cloneCount > 1 && o.isNic()) changed = o.with("mac", mac(imageId, cloneIndex, nic++));
            if (cloneCount > 1 && o.option().equals("-netdev") && o.type().equals("user")) {
                changed = o.mapping("hostfwd", f -> FORWARD_HOST_PORT.matcher(f).replaceFirst("$10-"));
            }
            if (clusterDirectory.isPresent() && o.clusterSocket().isPresent()) {
                changed = o.with("addr.path", clusterDirectory.get().resolve(o.clusterSocket().get().getFileName()).toString());
            }
            options.add(changed);
        }
        return saved.withExtraArgs(QemuOption.arguments(options));
    }

    /** The GUID of the configuration's vmgenid device; empty without one, or if it is QEMU's {@code auto}. */
    public static Optional<UUID> vmGenerationIdOf(VmConfig config) {
        return QemuOption.parse(config.extraArgs()).stream().filter(o -> o.isDevice("vmgenid")).findFirst()
                .flatMap(o -> o.property("guid")).filter(g -> !g.equals("auto")).map(UUID::fromString);
    }

    /** Whether the configuration has a vmgenid device (a guest saved without one keeps its generation ID when restored). */
    public static boolean hasVmGenerationId(VmConfig config) {
        return QemuOption.parse(config.extraArgs()).stream().anyMatch(o -> o.isDevice("vmgenid"));
    }

    /**
     * A NIC on a configuration's command line.
     *
     * @param name QEMU's name for it (query-rx-filter's and {@code info network}'s): its {@code id=}, or else TYPE.N, N counting the
     *             NICs of that type before it (net/net.c's assign_name; every NIC Thaw replays is a {@code -device})
     * @param type its device type
     * @param mac  its {@code mac=}, or {@code default} where QEMU picks it
     */
    public record CommandLineNic(String name, String type, String mac) {
        /**
         * Whether a restored guest that resets this NIC takes the command line's MAC. virtio-net's reset copies it
         * (virtio_net_reset, hw/net/virtio-net.c:624); an e1000e's software reset (CTRL.RST, e1000e_set_ctrl) loads it into its
         * receive address, which Linux's e1000e reads back. An e1000 keeps the saved MAC: its driver reads the MAC from the
         * EEPROM, which QEMU migrates (vmstate_e1000's eeprom_data), and its CTRL.RST resets nothing (set_ctrl, hw/net/e1000.c).
         */
        public boolean resetTakesCommandLineMac() {
            return !type.equals("e1000");
        }
    }

    /** The configuration's NICs, in order. */
    public static List<CommandLineNic> nics(VmConfig config) {
        List<CommandLineNic> nics = new ArrayList<>();
        java.util.Map<String, Integer> perType = new java.util.HashMap<>();
        for (QemuOption o : QemuOption.parse(config.extraArgs())) {
            if (!o.isNic()) continue;
            int n = perType.merge(o.type(), 1, Integer::sum) - 1;
            nics.add(new CommandLineNic(o.property("id").orElse(o.type() + "." + n), o.type(), o.property("mac").orElse("default")));
        }
        return List.copyOf(nics);
    }

    /**
     * NIC {@code nic} (0-based) of clone {@code clone} of image {@code imageId}: the first 6 bytes of SHA-256 over the three,
     * made unicast and locally administered (the first byte's low bits 10), so it never claims a vendor's address and the same
     * clone of the same image always gets the same one.
     */
    static String mac(String imageId, int clone, int nic) {
        byte[] h;
        try {
            h = MessageDigest.getInstance("SHA-256").digest((imageId + "/clone-" + clone + "/nic-" + nic).getBytes(StandardCharsets.UTF_8));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is missing from this JDK", e);
        }
        h[0] = (byte) ((h[0] & 0xfc) | 0x02);
        return HexFormat.ofDelimiter(":").formatHex(h, 0, 6);
    }
}
