package dev.thaw.testing;

import dev.thaw.guest.DemoGuest;
import dev.thaw.guest.GuestImage;
import dev.thaw.host.HostDoctor;
import dev.thaw.qemu.Accel;
import dev.thaw.qemu.QemuVersion;
import dev.thaw.qemu.VmConfig;
import java.util.List;

/**
 * The host as the tests see it: the doctor runs once per test JVM (installing what is missing, as
 * the README promises) and builds the demo guest.
 */
public final class TestHost {
    private static HostDoctor.Report report;

    private TestHost() {}

    public static synchronized HostDoctor.Report report() {
        if (report == null) {
            report = HostDoctor.ensureReady(System.err);
            System.err.println("test host:\n" + report.render());
        }
        return report;
    }

    public static GuestImage guest() {
        return report().guest().orElseThrow();
    }

    private static dev.thaw.guest.PostgresDisk postgresDisk;

    /** The PostgreSQL guest's disk, built once (guest/build-postgres.sh, cached by its key). */
    public static synchronized dev.thaw.guest.PostgresDisk postgresDisk() {
        if (postgresDisk == null) postgresDisk = dev.thaw.guest.GuestBuilder.buildPostgresDisk(System.err);
        return postgresDisk;
    }

    private static dev.thaw.guest.FirmwareDisk firmwareDisk;

    /** A disk SeaBIOS boots into the demo guest (guest/build-firmware-disk.sh, cached by its key): a guest without -kernel. */
    public static synchronized dev.thaw.guest.FirmwareDisk firmwareDisk() {
        if (firmwareDisk == null) firmwareDisk = dev.thaw.guest.GuestBuilder.buildFirmwareDisk(guest(), System.err);
        return firmwareDisk;
    }

    public static QemuVersion qemu() {
        return report().qemuVersion().orElseThrow();
    }

    public static Accel accel() {
        return report().accel();
    }

    /** A small demo guest (512 MiB RAM, 128 MiB filled, 32 MiB hot): boots in a few seconds under TCG. */
    public static final DemoGuest SMALL_GUEST = new DemoGuest(512, 128, 32);

    public static VmConfig smallGuestConfig(String name) {
        return SMALL_GUEST.vmConfig(name, guest(), qemu(), accel());
    }

    /** The demo guest's kernel, started paused ({@code -S}): a QEMU that answers QMP and runs nothing. */
    public static VmConfig pausedConfig(String name) {
        VmConfig c = smallGuestConfig(name);
        return new VmConfig(c.name(), c.machineType(), c.accel(), 128, 1, c.kernel(), c.initrd(), c.kernelCommandLine(),
                false, true, List.of());
    }
}
