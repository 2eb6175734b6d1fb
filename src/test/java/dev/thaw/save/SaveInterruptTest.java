package dev.thaw.save;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.guest.DemoGuest;
import dev.thaw.qemu.QemuVm;
import dev.thaw.testing.TestHost;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code thaw save} stopped by SIGTERM mid-save (Ctrl-C is SIGINT, handled alike) cancels the
 * migration, resumes the guest and leaves no partial image; a save that died before left one,
 * which the next save into that directory removes.
 */
class SaveInterruptTest {
    @Test
    void sigtermMidSaveResumesTheGuestAndLeavesNoPartialImage(@TempDir Path dir) throws Exception {
        Path out = Files.createDirectory(dir.resolve("images"));
        Process exited = new ProcessBuilder("true").start();
        exited.waitFor();
        Path leftover = Files.createDirectories(out.resolve(".old.partial-" + exited.pid() + "-1/store"));
        Path log = dir.resolve("save.log");
        try (QemuVm vm = QemuVm.launch(TestHost.smallGuestConfig("thaw-test-interrupted-save"))) {
            DemoGuest.awaitReady(vm, vm.console().cursorFromStart(), DemoGuest.BOOT_TIMEOUT);
            // zstd -19 makes Thaw the bottleneck, so the save is still going when the signal comes.
            Process save = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                    "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"),
                    "-Dthaw.home=" + System.getProperty("thaw.home"), "dev.thaw.cli.ThawCli", "save",
                    "--qmp", vm.extraQmpSocket().toString(), "--out", out.resolve("img").toString(), "--codec", "zstd", "--zstd-level", "19")
                    .redirectErrorStream(true).redirectOutput(log.toFile()).start();
            try {
                long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
                while (transferredBytes(vm) < (8 << 20)) {
                    assertThat(save.isAlive()).as("the save ended before it was interrupted: %s", Files.readString(log)).isTrue();
                    assertThat(System.nanoTime()).as("no migration of 8 MiB within 60 s: %s", Files.readString(log)).isLessThan(deadline);
                    Thread.sleep(20);
                }
                assertThat(vm.qmp().queryStatus().running()).as("the guest is stopped while it is saved").isFalse();
                save.destroy(); // SIGTERM
                assertThat(save.waitFor(60, TimeUnit.SECONDS)).as("the save exits after SIGTERM").isTrue();
            } finally {
                save.destroyForcibly().waitFor();
            }
            String output = Files.readString(log);
            assertThat(save.exitValue()).as(output).isEqualTo(128 + 15);
            assertThat(vm.qmp().queryStatus().running()).as("the guest runs again: %s", output).isTrue();
            assertThat(vm.qmp().queryMigrate().status()).isEqualTo("cancelled");
            assertThat(DemoGuest.collectTicks(vm.console().cursor(), Duration.ofSeconds(3))).as("wsbench ticks again").isNotEmpty();
        }
        try (var left = Files.list(out)) {
            assertThat(left.toList()).as("no image, no partial image, not even the dead save's %s", leftover.getParent()).isEmpty();
        }
    }

    private static long transferredBytes(QemuVm vm) {
        var info = vm.qmp().queryMigrate();
        return List.of("active", "completed").contains(info.status()) ? info.raw().path("ram").path("transferred").asLong() : 0;
    }
}
