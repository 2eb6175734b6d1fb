package dev.thaw.save;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Where a foreign QEMU's {@code -bios} file is, found as QEMU finds it, and the bound on what an image carries. */
class ForeignGuestTest {
    @Test
    void findsTheFirmwareAsQemuDoesAndRefusesOneTooLargeToCarry(@TempDir Path cwd) throws Exception {
        Files.write(cwd.resolve("own.bin"), new byte[256 << 10]);
        assertThat(ForeignGuest.firmwareFile("-bios", Path.of("own.bin"), cwd, List.of())).as("a bare name in QEMU's working directory first")
                .isEqualTo(cwd.resolve("own.bin").toRealPath());
        assertThat(ForeignGuest.firmwareFile("-bios", cwd.resolve("own.bin"), Path.of("/"), List.of())).isEqualTo(cwd.resolve("own.bin").toRealPath());
        // Then QEMU's data directories (qemu-system-x86_64 -L help), where Debian's SeaBIOS lies.
        assertThat(ForeignGuest.firmwareFile("-bios", Path.of("bios-256k.bin"), cwd, List.of())).isEqualTo(Path.of("/usr/share/seabios/bios-256k.bin").toRealPath());
        assertThatThrownBy(() -> ForeignGuest.firmwareFile("-bios", Path.of("none.bin"), cwd, List.of())).isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith("-bios none.bin: expected a regular file at one of [" + cwd.resolve("none.bin"))
                .hasMessageEndingWith(", actual none");
        Path large = cwd.resolve("large.fd");
        try (RandomAccessFile f = new RandomAccessFile(large.toFile(), "rw")) {
            f.setLength((16L << 20) + 1); // sparse
        }
        assertThatThrownBy(() -> ForeignGuest.firmwareFile("-bios", large, cwd, List.of()))
                .hasMessage("-bios " + large + ": expected a firmware file of at most 16 MiB (the image carries a copy), actual 16777217 bytes");
    }

    /** -L DIR: QEMU looks there for a bare -bios name and for its default firmware before its own directories; its ROMs must be QEMU's. */
    @Test
    void resolvesTheFirmwareThroughMinusLAndRefusesOtherRomsThere(@TempDir Path dir) throws Exception {
        Path cwd = Files.createDirectory(dir.resolve("cwd"));
        Path fw = Files.createDirectory(dir.resolve("fw"));
        Files.write(fw.resolve("OVMF.fd"), new byte[64 << 10]);
        assertThat(ForeignGuest.firmwareFile("-bios", Path.of("OVMF.fd"), cwd, List.of(fw))).isEqualTo(fw.resolve("OVMF.fd").toRealPath());
        assertThat(ForeignGuest.defaultFirmwareFrom(cwd, List.of(fw))).as("no bios-256k.bin there: QEMU's own").isNull();
        Files.write(fw.resolve("bios-256k.bin"), new byte[256 << 10]);
        assertThat(ForeignGuest.defaultFirmwareFrom(cwd, List.of(fw))).as("the default firmware from -L, carried as -bios")
                .isEqualTo(fw.resolve("bios-256k.bin").toRealPath());
        // A file identical to QEMU's own is what the restore's QEMU loads too; the firmware itself is carried.
        Files.copy(Path.of("/usr/lib/ipxe/qemu/efi-e1000.rom"), fw.resolve("efi-e1000.rom"));
        ForeignGuest.requireQemusOwnRoms(List.of(fw), fw.resolve("bios-256k.bin").toRealPath());
        assertThatThrownBy(() -> ForeignGuest.requireQemusOwnRoms(List.of(fw), null))
                .hasMessageStartingWith("-L " + fw + ": expected only the firmware and files identical to QEMU's own (option ROMs from"
                        + " another directory are not carried in the image), actual " + fw.resolve("bios-256k.bin") + ", which differs from ");
        Files.write(fw.resolve("efi-e1000.rom"), new byte[4096]);
        assertThatThrownBy(() -> ForeignGuest.requireQemusOwnRoms(List.of(fw), fw.resolve("bios-256k.bin").toRealPath()))
                .hasMessageEndingWith("actual " + fw.resolve("efi-e1000.rom") + ", which differs from /usr/lib/ipxe/qemu/efi-e1000.rom");
        assertThatThrownBy(() -> ForeignGuest.requireQemusOwnRoms(List.of(dir.resolve("none")), null))
                .hasMessage("-L " + dir.resolve("none") + ": expected a directory, actual none");
    }
}
