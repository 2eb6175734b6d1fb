package dev.thaw.save;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Where a foreign QEMU's {@code -bios} file is, found as QEMU finds it, and the bound on what an image carries. */
class ForeignGuestTest {
    @Test
    void findsTheFirmwareAsQemuDoesAndRefusesOneTooLargeToCarry(@TempDir Path cwd) throws Exception {
        Files.write(cwd.resolve("own.bin"), new byte[256 << 10]);
        assertThat(ForeignGuest.firmwareFile("-bios", Path.of("own.bin"), cwd)).as("a bare name in QEMU's working directory first")
                .isEqualTo(cwd.resolve("own.bin").toRealPath());
        assertThat(ForeignGuest.firmwareFile("-bios", cwd.resolve("own.bin"), Path.of("/"))).isEqualTo(cwd.resolve("own.bin").toRealPath());
        // Then QEMU's data directories (qemu-system-x86_64 -L help), where Debian's SeaBIOS lies.
        assertThat(ForeignGuest.firmwareFile("-bios", Path.of("bios-256k.bin"), cwd)).isEqualTo(Path.of("/usr/share/seabios/bios-256k.bin").toRealPath());
        assertThatThrownBy(() -> ForeignGuest.firmwareFile("-bios", Path.of("none.bin"), cwd)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith("-bios none.bin: expected a regular file at one of [" + cwd.resolve("none.bin"))
                .hasMessageEndingWith(", actual none");
        Path large = cwd.resolve("large.fd");
        try (RandomAccessFile f = new RandomAccessFile(large.toFile(), "rw")) {
            f.setLength((16L << 20) + 1); // sparse
        }
        assertThatThrownBy(() -> ForeignGuest.firmwareFile("-bios", large, cwd))
                .hasMessage("-bios " + large + ": expected a firmware file of at most 16 MiB (the image carries a copy), actual 16777217 bytes");
    }
}
