package dev.thaw.save;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.guest.DemoGuest;
import dev.thaw.qemu.QemuVm;
import dev.thaw.testing.Signals;
import dev.thaw.testing.TestHost;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A save whose QEMU dies mid-stream fails with a clear error, leaves no partial image and no process. */
class SaveFailureTest {
    @Test
    void qemuKilledMidSave(@TempDir Path dir) throws Exception {
        Path image = dir.resolve("image");
        try (QemuVm vm = QemuVm.launch(TestHost.smallGuestConfig("thaw-test-killed-save"))) {
            DemoGuest.awaitReady(vm, vm.console().cursorFromStart(), DemoGuest.BOOT_TIMEOUT);
            AtomicBoolean killed = new AtomicBoolean();
            assertThatThrownBy(() -> Saver.save(vm.qmp(), vm.config(), image, Saver.Options.defaults(), p -> {
                if (p.streamBytes() > (16 << 20) && killed.compareAndSet(false, true)) Signals.send("KILL", vm.pid());
            })).isInstanceOf(SaveException.class).hasMessageContaining("save of thaw-test-killed-save failed")
                    .hasMessageContaining("the source QEMU is gone");
            assertThat(killed).isTrue();
            assertThat(vm.awaitExit(Duration.ofSeconds(10))).isTrue();
        }
        assertThat(image).doesNotExist();
        try (var left = Files.list(dir)) {
            assertThat(left.toList()).as("no partial image directory").isEmpty();
        }
    }

    @Test
    void refusesToOverwriteAnImage(@TempDir Path dir) throws Exception {
        Path image = Files.createDirectories(dir.resolve("exists"));
        try (QemuVm vm = QemuVm.launch(TestHost.pausedConfig("thaw-test-overwrite"))) {
            assertThatThrownBy(() -> Saver.save(vm.qmp(), vm.config(), image, Saver.Options.defaults(), p -> {}))
                    .hasMessageContaining("already exists");
            assertThat(vm.qmp().queryMigrate().status()).as("no migration was started").isIn("", "none");
        }
    }
}
