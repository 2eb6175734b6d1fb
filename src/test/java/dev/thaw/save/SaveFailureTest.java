package dev.thaw.save;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.guest.DemoGuest;
import dev.thaw.qemu.QemuVm;
import dev.thaw.testing.Signals;
import dev.thaw.testing.TestHost;
import dev.thaw.util.ExternalCommand;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A save whose QEMU dies mid-stream, or whose disk fills, fails with a clear error, leaves no partial image and no process. */
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

    /** ENOSPC mid-save (a full disk): the save fails naming it, deletes what it wrote, and the guest runs on. Needs root (mount). */
    @Test
    void aFullDiskFailsTheSaveNamesItDeletesThePartialImageAndResumesTheGuest(@TempDir Path dir) throws Exception {
        Path small = Files.createDirectories(dir.resolve("small"));
        ExternalCommand.Result mount = ExternalCommand.run(List.of("mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs",
                small.toString()), Duration.ofSeconds(10));
        assertThat(mount.succeeded()).as("an 8 MiB tmpfs for the test (root only): %s", mount.stderr()).isTrue();
        try {
            Path image = small.resolve("image");
            try (QemuVm vm = QemuVm.launch(TestHost.smallGuestConfig("thaw-test-enospc"))) {
                DemoGuest.awaitReady(vm, vm.console().cursorFromStart(), DemoGuest.BOOT_TIMEOUT);
                assertThat(vm.qmp().queryStatus().running()).isTrue();
                // 128 MiB of random data cannot fit 8 MiB, whatever the codec
                assertThatThrownBy(() -> Saver.save(vm.qmp(), vm.config(), image, Saver.Options.defaults(), p -> {}))
                        .isInstanceOf(SaveException.class).hasMessageContaining("save of thaw-test-enospc failed")
                        .hasMessageContaining("No space left on device");
                assertThat(vm.qmp().queryStatus().running()).as("the guest that was running runs again").isTrue();
                assertThat(vm.qmp().queryMigrate().status()).as("the migration was cancelled").isIn("cancelled", "failed");
            }
            try (var left = Files.list(small)) {
                assertThat(left.toList()).as("no partial image on the full disk").isEmpty();
            }
        } finally {
            ExternalCommand.run(List.of("umount", small.toString()), Duration.ofSeconds(10));
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
