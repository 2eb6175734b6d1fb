package dev.thaw.qemu;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The spare monitor's FIFOs, made through libc: no QEMU. */
class SpareMonitorFifoTest {
    @Test
    void makesAnOwnerOnlyFifoAndNamesTheFileWhenItCannot(@TempDir Path dir) throws Exception {
        Path fifo = dir.resolve("qmp-spare.in");
        SpareMonitor.mkfifo(fifo);
        int mode = (Integer) Files.getAttribute(fifo, "unix:mode");
        assertThat(mode & 0170000).as("a FIFO (S_IFIFO)").isEqualTo(0010000);
        assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(fifo))).isEqualTo("rw-------");
        assertThatThrownBy(() -> SpareMonitor.mkfifo(fifo)).isInstanceOf(IOException.class)
                .hasMessageContaining(fifo.toString()).hasMessageContaining("errno 17"); // EEXIST
        assertThatThrownBy(() -> SpareMonitor.mkfifo(dir.resolve("no-such-dir").resolve("x"))).isInstanceOf(IOException.class)
                .hasMessageContaining("errno 2"); // ENOENT
    }
}
