package dev.thaw.guest;

import dev.thaw.qemu.Accel;
import dev.thaw.qemu.QemuVersion;
import dev.thaw.qemu.VmConfig;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.regex.Pattern;

/**
 * The demo guest as a member of a virtual cluster ({@code thaw.net=} on its kernel command line,
 * guest/init): its NIC is a virtio-net on Thaw's cluster switch with address {@code 10.0.3.INDEX/24}
 * and MAC {@code 52:54:00:00:03:INDEX}, and it runs tcpstream (guest/src/tcpstream.c) as a server on
 * port {@link #STREAM_PORT}, as a client streaming {@code streamBytes} checked bytes to a server
 * member (0: forever), or nothing; beside it, with {@code memholdMiB} > 0, memhold (guest/src/memhold.c) keeps that many MiB written
 * twice a second: a working set of that size (HotRestore's premise: a member with a bigger one takes longer to load).
 *
 * @param name        the member's name on the switch and QEMU's {@code -name}
 * @param index       1-254: the last byte of its address and MAC
 * @param streamTo    for a {@link Role#CLIENT}, the server member's index; 0 otherwise
 * @param streamBytes for a {@link Role#CLIENT}, a multiple of 8; 0 streams forever
 * @param memholdMiB  MiB memhold keeps written (0: none); at most {@code memoryMiB - MIN_MEMORY_MIB}
 */
public record ClusterMember(String name, int index, long memoryMiB, Role role, int streamTo, long streamBytes, long memholdMiB) {
    public static final int STREAM_PORT = 7000;
    public static final String SUBNET = "10.0.3.";
    /** Room for the kernel, the initramfs (Redis included) and tcpstream's buffers. */
    public static final long MIN_MEMORY_MIB = 192;
    private static final Pattern NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9_-]{0,62}");

    /** What the member runs. */
    public enum Role {
        SERVER, CLIENT, IDLE;

        public String key() {
            return name().toLowerCase(Locale.ROOT);
        }
    }

    public ClusterMember {
        if (name == null || !NAME.matcher(name).matches()) {
            throw new IllegalArgumentException("member name: expected " + NAME + ", actual '" + name + "'");
        }
        if (index < 1 || index > 254) throw new IllegalArgumentException("member index: expected 1 to 254, actual " + index);
        if (memoryMiB < MIN_MEMORY_MIB) {
            throw new IllegalArgumentException("member memory: expected at least " + MIN_MEMORY_MIB + " MiB, actual " + memoryMiB + " MiB");
        }
        java.util.Objects.requireNonNull(role, "role");
        if (role == Role.CLIENT ? streamTo < 1 || streamTo > 254 || streamTo == index : streamTo != 0) {
            throw new IllegalArgumentException("member " + name + " (" + role.key() + "): expected a server index 1-254 other than its own"
                    + " for a client and 0 otherwise, actual " + streamTo);
        }
        if (streamBytes < 0 || streamBytes % 8 != 0 || role != Role.CLIENT && streamBytes != 0) {
            throw new IllegalArgumentException("member " + name + ": expected stream bytes a multiple of 8 >= 0, for a client only, actual "
                    + streamBytes);
        }
        if (memholdMiB < 0 || memholdMiB > memoryMiB - MIN_MEMORY_MIB) {
            throw new IllegalArgumentException("member " + name + ": expected a working set (memhold) of 0 to " + (memoryMiB - MIN_MEMORY_MIB)
                    + " MiB (its memory less " + MIN_MEMORY_MIB + "), actual " + memholdMiB + " MiB");
        }
    }

    /** A member without memhold. */
    public ClusterMember(String name, int index, long memoryMiB, Role role, int streamTo, long streamBytes) {
        this(name, index, memoryMiB, role, streamTo, streamBytes, 0);
    }

    /** This member with memhold keeping {@code mib} MiB written, its memory grown by as much. */
    public ClusterMember withMemhold(long mib) {
        return new ClusterMember(name, index, memoryMiB - memholdMiB + mib, role, streamTo, streamBytes, mib);
    }

    /**
     * The usual cluster: member 1 ({@code m1}) serves, every other member streams {@code streamBytes} to it.
     *
     * @param count 1 to 254 members
     */
    public static List<ClusterMember> starOf(int count, long memoryMiB, long streamBytes) {
        if (count < 1 || count > 254) throw new IllegalArgumentException("members: expected 1 to 254, actual " + count);
        return java.util.stream.IntStream.rangeClosed(1, count)
                .mapToObj(i -> i == 1 ? new ClusterMember("m1", 1, memoryMiB, count == 1 ? Role.IDLE : Role.SERVER, 0, 0)
                        : new ClusterMember("m" + i, i, memoryMiB, Role.CLIENT, 1, streamBytes))
                .toList();
    }

    public String address() {
        return SUBNET + index;
    }

    public String mac() {
        return String.format(Locale.ROOT, "52:54:00:00:03:%02x", index);
    }

    public String kernelCommandLine() {
        String stream = switch (role) {
            case SERVER -> " thaw.stream=server";
            case CLIENT -> " thaw.stream=client:" + SUBNET + streamTo + " thaw.stream.bytes=" + streamBytes;
            case IDLE -> "";
        };
        return "console=ttyS0 quiet loglevel=3 panic=-1 mitigations=off rdinit=/init thaw.net=" + address() + "/24" + stream
                + (memholdMiB > 0 ? " thaw.memhold_mib=" + memholdMiB : "");
    }

    /** The member's QEMU: the demo guest with a virtio-net whose stream netdev connects to {@code switchSocket}. */
    public VmConfig vmConfig(GuestImage image, QemuVersion qemu, Accel accel, Path switchSocket) {
        return new VmConfig(name, qemu.i440fxMachineType(), accel, memoryMiB, 1, image.kernel(), image.initrd(), kernelCommandLine(),
                false, false, List.of("-netdev", "stream,id=net0,server=off,addr.type=unix,addr.path=" + switchSocket.toAbsolutePath(),
                "-device", "virtio-net-pci,netdev=net0,mac=" + mac(), "-device", "vmgenid"));
    }
}
