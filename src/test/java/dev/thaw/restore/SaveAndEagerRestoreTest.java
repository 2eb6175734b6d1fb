package dev.thaw.restore;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.guest.DemoGuest;
import dev.thaw.guest.GuestAgent;
import dev.thaw.guest.WsbenchTick;
import dev.thaw.image.CheckpointImage;
import dev.thaw.image.Manifest;
import dev.thaw.qemu.ConsoleLine;
import dev.thaw.qemu.Journal;
import dev.thaw.qemu.QemuVm;
import dev.thaw.save.Saver;
import dev.thaw.testing.TestHost;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The demo guest saved by Thaw and restored eagerly: memory identical byte for byte, workload continues. */
class SaveAndEagerRestoreTest {
    @Test
    void savedGuestRestoresEagerlyWithIdenticalMemory(@TempDir Path dir) throws Exception {
        Path imageDir = dir.resolve("image");
        GuestAgent.MemSum before;
        long lastSeqBefore;
        Saver.Result saved;
        try (QemuVm vm = QemuVm.launch(TestHost.smallGuestConfig("thaw-test-save"))) {
            Journal<ConsoleLine>.Cursor console = vm.console().cursorFromStart();
            DemoGuest.awaitReady(vm, console, DemoGuest.BOOT_TIMEOUT);
            List<WsbenchTick> ticks = DemoGuest.collectTicks(console, Duration.ofSeconds(1));
            assertThat(ticks).isNotEmpty();
            try (GuestAgent agent = GuestAgent.connect(vm)) {
                agent.awaitReady(Duration.ofSeconds(30));
                agent.pauseWorkload();
                before = agent.memsum();
            }
            lastSeqBefore = ticks.getLast().seq();
            saved = Saver.save(vm.qmp(), vm.config(), imageDir, Saver.Options.defaults(), p -> {});
            assertThat(vm.qmp().queryStatus().running()).as("default save leaves the guest stopped").isFalse();
        }
        Manifest.Stats stats = saved.manifest().stats();
        System.err.printf("saved %d pages (%d zero, %d stored) from a %d-byte stream in %.2f s into %d bytes%n", stats.pageCount(),
                stats.zeroPageCount(), stats.storedPageCount(), saved.streamBytes(), saved.durationNanos() / 1e9, stats.imageFileBytes());
        assertThat(stats.pageCount()).isGreaterThanOrEqualTo(TestHost.SMALL_GUEST.memoryMiB() * 256);
        assertThat(stats.zeroPageCount()).isPositive();
        assertThat(stats.storedPageCount()).isGreaterThanOrEqualTo(TestHost.SMALL_GUEST.totalMiB() * 256);

        String imageBefore = dev.thaw.testing.TreeDigest.of(imageDir);
        try (CheckpointImage image = CheckpointImage.open(imageDir)) {
            assertThat(image.verify().pageCount()).isEqualTo(stats.storedPageCount() - stats.sharedPageCount());
            EagerRestore.Result restored = EagerRestore.restore(image, EagerRestore.Options.defaults("thaw-test-eager"), p -> {});
            try (QemuVm vm = restored.vm()) {
                System.err.printf("eager restore: QEMU ready %.2f s, stream sent %.2f s, running %.2f s%n", restored.qemuReadyNanos() / 1e9,
                        restored.streamSentNanos() / 1e9, restored.runningNanos() / 1e9);
                assertThat(vm.qmp().queryStatus().running()).isTrue();
                assertThat(vm.qmp().queryMigrate().completed()).isTrue();
                Journal<ConsoleLine>.Cursor console = vm.console().cursorFromStart();
                try (GuestAgent agent = GuestAgent.connect(vm)) {
                    agent.awaitReady(Duration.ofSeconds(30));
                    assertThat(agent.memsum()).as("memsum after the restore").isEqualTo(before);
                    agent.resumeWorkload();
                }
                List<WsbenchTick> after = DemoGuest.collectTicks(console, Duration.ofSeconds(2));
                assertThat(after).as("wsbench ticks after the restore").isNotEmpty();
                assertThat(after.getFirst().seq()).as("the guest continued rather than rebooted").isGreaterThan(lastSeqBefore);
            }
        }
        assertThat(dev.thaw.testing.TreeDigest.of(imageDir)).as("a restore never modifies the image").isEqualTo(imageBefore);
    }
}
