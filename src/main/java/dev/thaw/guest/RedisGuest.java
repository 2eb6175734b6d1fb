package dev.thaw.guest;

import dev.thaw.qemu.Accel;
import dev.thaw.qemu.ConsoleLine;
import dev.thaw.qemu.Journal;
import dev.thaw.qemu.QemuVersion;
import dev.thaw.qemu.QemuVm;
import dev.thaw.qemu.VmConfig;
import java.time.Duration;
import java.util.List;

/**
 * The application guest: Redis from Debian's packages (built into the guest by guest/build.sh),
 * filled with {@code keyCount} keys {@code key:0 .. key:N-1} of {@code valueBytes} each, reached
 * from the host over QEMU user networking. The host port is chosen by the host for each QEMU
 * ({@code hostfwd} port 0), so the saved guest and its restores, which share one configuration,
 * never compete for a port; {@link #hostPort} finds the one it got.
 *
 * @param hotKeyCount the keys a client keeps reading: its working set
 */
public record RedisGuest(long memoryMiB, long keyCount, int valueBytes, long hotKeyCount) {
    public static final int GUEST_PORT = 6379;
    /** Redis's own memory per key beside the value (dict entry, key string, object headers, jemalloc classes), measured. */
    static final long OVERHEAD_BYTES_PER_KEY = 200;

    public RedisGuest {
        if (keyCount < 1 || hotKeyCount < 1 || hotKeyCount > keyCount) {
            throw new IllegalArgumentException("redis keys: expected 1 <= hot keys <= keys, actual " + hotKeyCount + " of " + keyCount);
        }
        if (valueBytes < 1 || valueBytes > 1 << 20) {
            throw new IllegalArgumentException("redis value size: expected 1 B to 1 MiB, actual " + valueBytes);
        }
        long needMiB = (keyCount * (valueBytes + OVERHEAD_BYTES_PER_KEY) >> 20) + DemoGuest.KERNEL_RESERVE_MIB;
        if (needMiB > memoryMiB) {
            throw new IllegalArgumentException("redis dataset: expected it to fit the guest, about " + needMiB + " MiB with the kernel, actual"
                    + " RAM " + memoryMiB + " MiB");
        }
    }

    /** A guest of {@code memoryMiB} holding {@code datasetMiB} of 512-byte values, reading {@code hotMiB} of them. */
    public static RedisGuest of(long memoryMiB, long datasetMiB, long hotMiB) {
        int value = 512;
        return new RedisGuest(memoryMiB, (datasetMiB << 20) / value, value, Math.max(1, (hotMiB << 20) / value));
    }

    public long datasetMiB() {
        return keyCount * valueBytes >> 20;
    }

    public long hotMiB() {
        return hotKeyCount * valueBytes >> 20;
    }

    public String kernelCommandLine() {
        return "console=ttyS0 quiet loglevel=3 panic=-1 mitigations=off rdinit=/init thaw.app=redis redis.keys=" + keyCount
                + " redis.value_bytes=" + valueBytes;
    }

    public VmConfig vmConfig(String name, GuestImage image, QemuVersion qemu, Accel accel) {
        return new VmConfig(name, qemu.i440fxMachineType(), accel, memoryMiB, 1, image.kernel(), image.initrd(), kernelCommandLine(),
                false, false, List.of("-netdev", "user,id=net0,hostfwd=tcp:127.0.0.1:0-:" + GUEST_PORT,
                "-device", "virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56", "-device", "vmgenid"));
    }

    /** Waits until Redis is filled ("thaw-app redis ready"); fails if QEMU or the guest dies first. */
    public static ConsoleLine awaitReady(QemuVm vm, Journal<ConsoleLine>.Cursor cursor, Duration timeout) {
        return DemoGuest.awaitAppReady(vm, cursor, "redis", "redis-server exited", timeout);
    }

    /** The host port QEMU forwards to the guest's Redis: the one TCP port that QEMU listens on. */
    public static int hostPort(QemuVm vm) {
        return DemoGuest.forwardedPort(vm, "Redis");
    }
}
