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
    void findsTheFirmwareAsQemuDoesAndRefusesOneTooLargeToCarry(@TempDir Path dir) throws Exception {
        Path cwd = Files.createDirectory(dir.resolve("cwd"));
        // QEMU's data directories (qemu-system-x86_64 -L help), here two of the test's own.
        List<Path> qemus = List.of(Files.createDirectory(dir.resolve("share")), Files.createDirectory(dir.resolve("seabios")));
        Files.write(cwd.resolve("own.bin"), new byte[256 << 10]);
        Files.write(qemus.get(0).resolve("own.bin"), new byte[1]);
        assertThat(ForeignGuest.firmwareFile("-bios", Path.of("own.bin"), cwd, List.of(), qemus)).as("a bare name in QEMU's working directory first")
                .isEqualTo(cwd.resolve("own.bin").toRealPath());
        assertThat(ForeignGuest.firmwareFile("-bios", cwd.resolve("own.bin"), Path.of("/"), List.of(), qemus)).isEqualTo(cwd.resolve("own.bin").toRealPath());
        // Then QEMU's data directories, in their order.
        Files.write(qemus.get(1).resolve("bios-256k.bin"), new byte[256 << 10]);
        assertThat(ForeignGuest.firmwareFile("-bios", Path.of("bios-256k.bin"), cwd, List.of(), qemus))
                .isEqualTo(qemus.get(1).resolve("bios-256k.bin").toRealPath());
        assertThatThrownBy(() -> ForeignGuest.firmwareFile("-bios", Path.of("none.bin"), cwd, List.of(), qemus)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith("-bios none.bin: expected a regular file at one of [" + cwd.resolve("none.bin"))
                .hasMessageEndingWith(", actual none");
        Path large = cwd.resolve("large.fd");
        try (RandomAccessFile f = new RandomAccessFile(large.toFile(), "rw")) {
            f.setLength((16L << 20) + 1); // sparse
        }
        assertThatThrownBy(() -> ForeignGuest.firmwareFile("-bios", large, cwd, List.of(), qemus))
                .hasMessage("-bios " + large + ": expected a firmware file of at most 16 MiB (the image carries a copy), actual 16777217 bytes");
    }

    /** -L DIR: QEMU looks there for a bare -bios name and for its default firmware before its own directories; its ROMs must be QEMU's. */
    @Test
    void resolvesTheFirmwareThroughMinusLAndRefusesOtherRomsThere(@TempDir Path dir) throws Exception {
        Path cwd = Files.createDirectory(dir.resolve("cwd"));
        Path fw = Files.createDirectory(dir.resolve("fw"));
        // QEMU's own directories (qemu-system-x86_64 -L help), here the test's: the first copy of a name is the one QEMU loads.
        List<Path> qemus = List.of(Files.createDirectory(dir.resolve("share")), Files.createDirectory(dir.resolve("ipxe")));
        Files.write(qemus.get(1).resolve("bios-256k.bin"), new byte[] {1});
        Files.write(qemus.get(0).resolve("efi-e1000.rom"), new byte[] {2});
        Files.write(qemus.get(1).resolve("efi-e1000.rom"), new byte[] {3});
        Files.write(fw.resolve("OVMF.fd"), new byte[64 << 10]);
        assertThat(ForeignGuest.firmwareFile("-bios", Path.of("OVMF.fd"), cwd, List.of(fw), qemus)).isEqualTo(fw.resolve("OVMF.fd").toRealPath());
        assertThat(ForeignGuest.defaultFirmwareFrom(cwd, List.of(fw))).as("no bios-256k.bin there: QEMU's own").isNull();
        Files.write(fw.resolve("bios-256k.bin"), new byte[256 << 10]);
        assertThat(ForeignGuest.defaultFirmwareFrom(cwd, List.of(fw))).as("the default firmware from -L, carried as -bios")
                .isEqualTo(fw.resolve("bios-256k.bin").toRealPath());
        // A file identical to the copy QEMU would pick is what the restore's QEMU loads too; the firmware itself is carried.
        Files.write(fw.resolve("efi-e1000.rom"), new byte[] {2});
        List<Path> before = List.of(cwd, fw);
        ForeignGuest.requireQemusOwnRoms(before, fw.resolve("bios-256k.bin").toRealPath(), qemus);
        assertThatThrownBy(() -> ForeignGuest.requireQemusOwnRoms(before, null, qemus))
                .hasMessage("-L " + fw + ": expected only the firmware and files identical to QEMU's own (option ROMs found before"
                        + " QEMU's own are not carried in the image), actual " + fw.resolve("bios-256k.bin") + ", which differs from "
                        + qemus.get(1).resolve("bios-256k.bin"));
        // Identical to a later copy of QEMU's only: QEMU would have loaded the first, not this.
        Files.write(fw.resolve("efi-e1000.rom"), new byte[] {3});
        assertThatThrownBy(() -> ForeignGuest.requireQemusOwnRoms(before, fw.resolve("bios-256k.bin").toRealPath(), qemus))
                .hasMessageEndingWith("actual " + fw.resolve("efi-e1000.rom") + ", which differs from " + qemus.get(0).resolve("efi-e1000.rom"));
        Files.write(fw.resolve("efi-e1000.rom"), new byte[] {2});
        // QEMU's working directory comes first (qemu_find_file tries a bare name there), with or without -L.
        Files.write(cwd.resolve("efi-e1000.rom"), new byte[] {9});
        assertThatThrownBy(() -> ForeignGuest.requireQemusOwnRoms(List.of(cwd), null, qemus))
                .hasMessage("QEMU's working directory " + cwd + ": expected only the firmware and files identical to QEMU's own (option"
                        + " ROMs found before QEMU's own are not carried in the image), actual " + cwd.resolve("efi-e1000.rom")
                        + ", which differs from " + qemus.get(0).resolve("efi-e1000.rom"));
        assertThatThrownBy(() -> ForeignGuest.requireQemusOwnRoms(List.of(cwd, dir.resolve("none")), null, List.of()))
                .hasMessage("-L " + dir.resolve("none") + ": expected a directory, actual none");
    }

    @Test
    void readsADisksBootIndexCheckedAndMinusOneAsNone() {
        var json = com.fasterxml.jackson.databind.node.JsonNodeFactory.instance;
        assertThat(ForeignGuest.bootIndex("/machine/peripheral/d0", json.numberNode(-1))).isNull();
        assertThat(ForeignGuest.bootIndex("/machine/peripheral/d0", json.numberNode(2))).isEqualTo(2);
        for (var bad : List.of(json.textNode("2"), json.nullNode(), json.numberNode(-2), json.numberNode(1.5))) {
            assertThatThrownBy(() -> ForeignGuest.bootIndex("/machine/peripheral/d0", bad))
                    .hasMessage("qom-get /machine/peripheral/d0 bootindex: expected an integer, -1 for none, actual " + bad);
        }
    }
}
