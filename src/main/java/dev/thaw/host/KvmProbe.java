package dev.thaw.host;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.thaw.guest.GuestImage;
import dev.thaw.qemu.Accel;
import dev.thaw.qemu.QemuVersion;
import dev.thaw.util.ExternalCommand;
import dev.thaw.util.FileTrees;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;

/**
 * Decides, by running guests, whether KVM is usable. Opening {@code /dev/kvm} proves nothing: on
 * some hosts it is a paravirtual variant on which a stock guest hangs in the BIOS, or on which the
 * BIOS runs but a Linux kernel stalls (seen on these machines). Two guests must pass under KVM:
 * <ol>
 *   <li>a 512-byte boot sector that the BIOS loads, which writes "OK" to the serial port and exits
 *       QEMU through the isa-debug-exit device with status 33 (it must pass under TCG too, so a
 *       broken probe cannot pass for a broken KVM);</li>
 *   <li>the demo guest's own kernel and initramfs with {@code thaw.probe=1}, which print
 *       "thaw-probe ok" and power off.</li>
 * </ol>
 * Anything else within the deadline means KVM is not usable. The verdict is cached per QEMU
 * version, host kernel release and guest build.
 */
public final class KvmProbe {
    /** How long the probe guest may take under KVM; a working KVM needs well under a second. */
    static final Duration KVM_DEADLINE = Duration.ofSeconds(10);
    /** The TCG control run: SeaBIOS under TCG takes about a second here. */
    static final Duration TCG_DEADLINE = Duration.ofSeconds(30);
    static final int DEBUG_EXIT_STATUS = (0x10 << 1) | 1;

    /** The probe's answer. {@code fromCache} says that no guest ran this time. */
    public record Verdict(boolean usable, String reason, String cacheKey, Instant probedAt, boolean fromCache) {
        public Accel accel() {
            return usable ? Accel.KVM : Accel.TCG;
        }
    }

    private static final ObjectMapper JSON = new ObjectMapper().findAndRegisterModules();

    private KvmProbe() {}

    /** The boot sector: real-mode code at 0x7c00, then the 0x55AA signature. */
    static byte[] bootSector() {
        byte[] code = {
            (byte) 0xBA, (byte) 0xF8, 0x03, // mov dx, 0x3f8 (COM1)
            (byte) 0xB0, 'O', (byte) 0xEE,  // mov al, 'O'; out dx, al
            (byte) 0xB0, 'K', (byte) 0xEE,  // mov al, 'K'; out dx, al
            (byte) 0xB0, 0x10,              // mov al, 0x10
            (byte) 0xE6, (byte) 0xF4,       // out 0xf4, al  -> QEMU exits with (0x10 << 1) | 1
            (byte) 0xFA, (byte) 0xF4,       // cli; hlt
            (byte) 0xEB, (byte) 0xFD        // jmp back to hlt
        };
        byte[] sector = new byte[512];
        System.arraycopy(code, 0, sector, 0, code.length);
        sector[510] = 0x55;
        sector[511] = (byte) 0xAA;
        return sector;
    }

    public static Verdict probe(String qemuBinary, QemuVersion qemuVersion, GuestImage guest, Path cacheDir) {
        Path kvm = Path.of("/dev/kvm");
        String cacheKey = qemuVersion.text() + " | " + hostKernelRelease() + " | kvm=" + Files.exists(kvm) + " | guest " + guest.key();
        // One file per guest build: two checkouts with different guests (worktrees, branches) would otherwise overwrite each
        // other's verdict, and every command of the other would probe again, starting a QEMU nobody expected.
        Path cacheFile = cacheDir.resolve("host/kvm-probe-" + guest.key() + ".json");
        Verdict cached = readCache(cacheFile, cacheKey);
        if (cached != null) {
            return cached;
        }
        Verdict verdict = runProbe(qemuBinary, qemuVersion, guest, kvm, cacheKey);
        writeCache(cacheFile, verdict);
        return verdict;
    }

    private static Verdict runProbe(String qemuBinary, QemuVersion qemuVersion, GuestImage guest, Path kvm, String cacheKey) {
        Instant now = Instant.now();
        if (!Files.exists(kvm)) {
            return new Verdict(false, "/dev/kvm does not exist", cacheKey, now, false);
        }
        if (!Files.isReadable(kvm) || !Files.isWritable(kvm)) {
            return new Verdict(false, "/dev/kvm is not readable and writable by this user", cacheKey, now, false);
        }
        Path dir = null;
        try {
            dir = Files.createTempDirectory("thaw-kvm-probe-");
            Path image = dir.resolve("boot.img");
            Files.write(image, bootSector());
            ExternalCommand.Result tcg = ExternalCommand.run(command(qemuBinary, qemuVersion, Accel.TCG, image), TCG_DEADLINE);
            if (!passed(tcg)) {
                return new Verdict(false, "the probe guest did not pass under TCG either, so the probe is broken: "
                        + tcg.describe(), cacheKey, now, false);
            }
            ExternalCommand.Result bios = ExternalCommand.run(command(qemuBinary, qemuVersion, Accel.KVM, image), KVM_DEADLINE);
            if (!passed(bios)) {
                return new Verdict(false, failure("a boot sector", bios), cacheKey, now, false);
            }
            ExternalCommand.Result linux = ExternalCommand.run(linuxCommand(qemuBinary, qemuVersion, guest), KVM_DEADLINE);
            if (linux.timedOut() || linux.exitCode() != 0 || !linux.stdout().contains("thaw-probe ok")) {
                return new Verdict(false, failure("the guest kernel", linux), cacheKey, now, false);
            }
            return new Verdict(true, "a boot sector and the guest kernel ran under KVM", cacheKey, now, false);
        } catch (IOException e) {
            return new Verdict(false, "probe could not run: " + e.getMessage(), cacheKey, now, false);
        } finally {
            FileTrees.deleteQuietly(dir);
        }
    }

    private static String failure(String what, ExternalCommand.Result result) {
        return result.timedOut()
                ? "/dev/kvm opens, but " + what + " did not finish under KVM within " + KVM_DEADLINE.toSeconds()
                        + " s (a KVM variant that stock guests cannot use)"
                : what + " failed under KVM: " + result.describe();
    }

    private static List<String> linuxCommand(String qemuBinary, QemuVersion version, GuestImage guest) {
        return List.of(qemuBinary, "-machine", version.i440fxMachineType(), "-accel", "kvm", "-cpu", "qemu64", "-m", "256",
                "-display", "none", "-nodefaults", "-no-reboot", "-serial", "stdio",
                "-kernel", guest.kernel().toString(), "-initrd", guest.initrd().toString(),
                "-append", "console=ttyS0 quiet panic=-1 rdinit=/init thaw.probe=1");
    }

    private static boolean passed(ExternalCommand.Result result) {
        return !result.timedOut() && result.exitCode() == DEBUG_EXIT_STATUS && result.stdout().contains("OK");
    }

    private static List<String> command(String qemuBinary, QemuVersion version, Accel accel, Path image) {
        List<String> cmd = new ArrayList<>(List.of(qemuBinary,
                "-machine", version.i440fxMachineType(), "-accel", accel.qemuName(), "-m", "16",
                "-display", "none", "-nodefaults", "-no-reboot", "-serial", "stdio",
                "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
                "-drive", "file=" + image + ",format=raw,if=ide,index=0", "-boot", "c"));
        return cmd;
    }

    static String hostKernelRelease() {
        try {
            return Files.readString(Path.of("/proc/sys/kernel/osrelease")).strip();
        } catch (IOException e) {
            return "unknown";
        }
    }

    private record CacheEntry(boolean usable, String reason, String cacheKey, Instant probedAt) {}

    private static Verdict readCache(Path file, String cacheKey) {
        try {
            if (!Files.isRegularFile(file)) {
                return null;
            }
            CacheEntry entry = JSON.readValue(file.toFile(), CacheEntry.class);
            if (!cacheKey.equals(entry.cacheKey())) {
                return null;
            }
            return new Verdict(entry.usable(), entry.reason(), entry.cacheKey(), entry.probedAt(), true);
        } catch (IOException | RuntimeException e) {
            return null; // an unreadable cache is probed again
        }
    }

    private static void writeCache(Path file, Verdict verdict) {
        try {
            Files.createDirectories(file.getParent());
            Path tmp = Files.createTempFile(file.getParent(), "kvm-probe", ".tmp");
            JSON.writeValue(tmp.toFile(), new CacheEntry(verdict.usable(), verdict.reason(), verdict.cacheKey(), verdict.probedAt()));
            Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException e) {
            // Not cached: the next run probes again.
        }
    }

}
