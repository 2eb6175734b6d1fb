package dev.thaw.guest;

import dev.thaw.qemu.Accel;
import dev.thaw.qemu.ConsoleLine;
import dev.thaw.qemu.Journal;
import dev.thaw.qemu.QemuVersion;
import dev.thaw.qemu.QemuVm;
import dev.thaw.qemu.VmConfig;
import dev.thaw.util.ExternalCommand;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

/**
 * The disk-booted application guest: PostgreSQL 15 from Debian's packages on a root file system of its own
 * ({@link PostgresDisk}, guest/build-postgres.sh), reached from the host over QEMU user networking. It boots the demo guest's
 * kernel and initramfs, whose init mounts the disk ({@code /dev/vda}, ext4) and starts the server in it directly (no
 * systemd). Each boot runs on a fresh qcow2 overlay of the built disk, so the build is never written. The host port is
 * chosen by the host for each QEMU ({@code hostfwd} port 0), as for {@link RedisGuest}.
 */
public record PostgresGuest(long memoryMiB) {
    public static final int GUEST_PORT = 5432;
    /** The disk's PCI slot and the NIC's: explicit, so that a restore (which places disks explicitly) repeats both. */
    static final String DISK_PCI_ADDRESS = "06.0";
    static final String NIC_PCI_SLOT = "05";
    /** The guest's own memory: the kernel, PostgreSQL's 32 MiB of shared buffers, its backends and the page cache. */
    static final long MIN_MEMORY_MIB = 384;
    public static final Duration BOOT_TIMEOUT = Duration.ofMinutes(5);
    /** The host's pg_amcheck, from postgresql-client-15 (the major version of the guest's server). */
    public static final Path PG_AMCHECK = Path.of("/usr/lib/postgresql/15/bin/pg_amcheck");

    public PostgresGuest {
        if (memoryMiB < MIN_MEMORY_MIB) {
            throw new IllegalArgumentException("PostgreSQL guest RAM: expected at least " + MIN_MEMORY_MIB + " MiB, actual " + memoryMiB);
        }
    }

    public String kernelCommandLine() {
        return "console=ttyS0 quiet loglevel=3 panic=-1 mitigations=off rdinit=/init thaw.app=postgres";
    }

    /** A fresh qcow2 overlay of the built disk in {@code directory}, for one boot. */
    public static Path bootDisk(PostgresDisk disk, Path directory, String vmName) {
        Path overlay = directory.resolve(vmName + ".qcow2");
        try {
            Files.createDirectories(directory);
        } catch (java.io.IOException e) {
            throw new IllegalStateException("cannot create " + directory + " for the PostgreSQL guest's disk overlay: " + e, e);
        }
        ExternalCommand.Result made = ExternalCommand.run(List.of("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                disk.qcow2().toString(), overlay.toString()), Duration.ofSeconds(60));
        if (!made.succeeded()) {
            throw new IllegalStateException("cannot create the overlay " + overlay + " on " + disk.qcow2() + ": " + made.describe());
        }
        return overlay;
    }

    /** Boots on {@code disk} (an overlay of {@link #bootDisk}), the demo guest's kernel and initramfs from {@code image}. */
    public VmConfig vmConfig(String name, GuestImage image, Path disk, QemuVersion qemu, Accel accel) {
        return new VmConfig(name, qemu.i440fxMachineType(), accel, memoryMiB, 1, image.kernel(), image.initrd(), kernelCommandLine(),
                false, false, List.of("-netdev", "user,id=net0,hostfwd=tcp:127.0.0.1:0-:" + GUEST_PORT,
                "-device", "virtio-net-pci,netdev=net0,mac=52:54:00:12:34:57,addr=" + NIC_PCI_SLOT, "-device", "vmgenid"),
                List.of(new VmConfig.Disk("root", "qcow2", disk, false, DISK_PCI_ADDRESS)));
    }

    /** Waits until PostgreSQL accepts connections ("thaw-app postgres ready"); fails if QEMU, the server or the guest dies first. */
    public static ConsoleLine awaitReady(QemuVm vm, Journal<ConsoleLine>.Cursor cursor, Duration timeout) {
        return DemoGuest.awaitAppReady(vm, cursor, "postgres", "thaw-init postgres exited", timeout);
    }

    /** The host port QEMU forwards to the guest's PostgreSQL: the one TCP port that QEMU listens on. */
    public static int hostPort(QemuVm vm) {
        return DemoGuest.forwardedPort(vm, "PostgreSQL");
    }

    /** The JDBC URL of the guest's database {@code postgres} behind host port {@code port} (user postgres, trusted from QEMU's gateway). */
    public static String jdbcUrl(int port) {
        return "jdbc:postgresql://127.0.0.1:" + port + "/postgres?user=postgres&connectTimeout=5&loginTimeout=10&socketTimeout=30"
                + "&sslmode=disable&ApplicationName=thaw";
    }

    /** What the host's pg_amcheck said about a guest's database. */
    public record Amcheck(int exitStatus, String output) {
        public boolean passed() {
            return exitStatus == 0;
        }
    }

    /**
     * Checks the guest's database {@code postgres} behind host port {@code port} with the host's pg_amcheck: every table's heap
     * and every B-tree index, with each index checked against its table's tuples ({@code --heapallindexed}); the amcheck
     * extension is installed in the database first when missing.
     */
    public static Amcheck amcheck(int port, Duration timeout) {
        if (!Files.isExecutable(PG_AMCHECK)) {
            throw new IllegalStateException("expected the host's pg_amcheck at " + PG_AMCHECK + ", actual none: install postgresql-client-15"
                    + " (apt-get install postgresql-client-15)");
        }
        ExternalCommand.Result r = ExternalCommand.run(List.of(PG_AMCHECK.toString(), "--host=127.0.0.1", "--port=" + port,
                "--username=postgres", "--no-password", "--install-missing", "--heapallindexed", "--verbose", "postgres"), timeout);
        return new Amcheck(r.exitCode(), (r.stdout() + r.stderr()).strip());
    }
}
