package dev.thaw.util;

import static org.assertj.core.api.Assertions.assertThatCode;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A vm.json is trusted no more than whoever can write it. */
class OwnerOnlyTest {
    @Test
    void configurationWritableByOthersIsRefused(@TempDir Path dir) throws IOException {
        Path socketDir = Files.createDirectory(dir.resolve("run"));
        Path vmJson = Files.writeString(socketDir.resolve("vm.json"), "{}");
        assertThatCode(() -> OwnerOnly.requireTrustedWriters(vmJson, "vm.json")).doesNotThrowAnyException();

        Files.setPosixFilePermissions(vmJson, PosixFilePermissions.fromString("rw-rw-rw-"));
        assertThatThrownBy(() -> OwnerOnly.requireTrustedWriters(vmJson, "vm.json")).hasMessageContaining("vm.json " + vmJson.toRealPath())
                .hasMessageContaining("writable by its owner only, actual uid").hasMessageContaining("mode 666");
        Files.setPosixFilePermissions(vmJson, PosixFilePermissions.fromString("rw-r--r--"));

        // Anyone could replace the file in a directory anyone may write to, unless it is sticky like /tmp.
        Files.setPosixFilePermissions(socketDir, PosixFilePermissions.fromString("rwxrwxrwx"));
        assertThatThrownBy(() -> OwnerOnly.requireTrustedWriters(vmJson, "vm.json")).hasMessageContaining("mode 777");
        Files.setAttribute(socketDir, "unix:mode", 01777);
        assertThatCode(() -> OwnerOnly.requireTrustedWriters(vmJson, "vm.json")).doesNotThrowAnyException();
    }

    @Test
    void configurationOfAnotherUserIsRefused(@TempDir Path dir) throws IOException {
        assumeTrue((int) Files.getAttribute(Path.of("/proc/self"), "unix:uid") == 0, "only root can give a file away");
        Path vmJson = Files.writeString(dir.resolve("vm.json"), "{}");
        Files.setAttribute(vmJson, "unix:uid", 4242);
        assertThatThrownBy(() -> OwnerOnly.requireTrustedWriters(vmJson, "vm.json")).hasMessageContaining("actual uid 4242");
    }
}
