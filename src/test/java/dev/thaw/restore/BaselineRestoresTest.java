package dev.thaw.restore;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.guest.DemoGuest;
import dev.thaw.guest.GuestAgent;
import dev.thaw.image.CheckpointImage;
import dev.thaw.measure.QemuBaselines;
import dev.thaw.qemu.ConsoleLine;
import dev.thaw.qemu.Journal;
import dev.thaw.qemu.QemuVm;
import dev.thaw.qemu.VmConfig;
import dev.thaw.save.Saver;
import dev.thaw.testing.RestoredGuest;
import dev.thaw.testing.TreeDigest;
import dev.thaw.testing.TestHost;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The baselines Thaw is compared with, on the real QEMU: kernel demand paging of a mapped RAM file
 * written from a Thaw image, and QEMU's loadvm of an internal qcow2 snapshot. Each restored guest
 * must hold the same memory as the saved one and go on running its workload.
 */
class BaselineRestoresTest {
    @TempDir
    static Path dir;
    static Path imageDir;
    static Path qcow2;
    static VmConfig sourceConfig;
    static GuestAgent.MemSum before;
    static long lastSeqBefore;

    @BeforeAll
    static void saveTheDemoGuestBothWays() throws Exception {
        imageDir = dir.resolve("image");
        qcow2 = dir.resolve("snapshot.qcow2");
        try (QemuVm vm = QemuVm.launch(TestHost.smallGuestConfig("thaw-test-baseline-src"))) {
            sourceConfig = vm.config();
            Journal<ConsoleLine>.Cursor console = vm.console().cursorFromStart();
            DemoGuest.awaitReady(vm, console, DemoGuest.BOOT_TIMEOUT);
            lastSeqBefore = DemoGuest.collectTicks(console, Duration.ofSeconds(1)).getLast().seq();
            try (GuestAgent agent = GuestAgent.connect(vm)) {
                agent.awaitReady(Duration.ofSeconds(30));
                agent.pauseWorkload();
                before = agent.memsum();
            }
            Saver.save(vm.qmp(), vm.config(), imageDir, Saver.Options.defaults().withKeepRunning(true), p -> {});
            QemuBaselines.SnapshotResult snap = QemuBaselines.saveInternalSnapshot(vm.qmp(), qcow2, "thaw", Duration.ofMinutes(2));
            assertThat(snap.fileBytes()).as("the qcow2 file holds the guest's state").isGreaterThan(1L << 20);
        }
    }

    private static void checkRestored(QemuVm vm) throws Exception {
        assertThat(vm.qmp().queryStatus().running()).isTrue();
        RestoredGuest.assertSameMemoryAndRunsOn(vm, before, lastSeqBefore);
    }

    @Test
    void mappedRamFileRestoreWithAWorkingSetInThePageCache() throws Exception {
        String digest = TreeDigest.of(imageDir);
        try (CheckpointImage image = CheckpointImage.open(imageDir)) {
            assertThat(RamFiles.existing(image)).isEmpty();
            MappedRestore.RamFile file = RamFiles.write(image);
            assertThat(RamFiles.existing(image)).contains(file.file());
            assertThat(file.byteSize()).isEqualTo(TestHost.SMALL_GUEST.memoryMiB() << 20);
            assertThat(Files.size(file.file())).isEqualTo(file.byteSize());
            assertThat(file.nonZeroPageCount()).isPositive().isLessThan(file.byteSize() / 4096);
            // A scattered "working set" of pc.ram read into the page cache while QEMU starts: it changes no byte of the guest.
            int ram = image.ramBlocks().stream().map(dev.thaw.migration.RamBlock::name).toList().indexOf(MappedRestore.RAM_BLOCK);
            java.util.List<dev.thaw.estimate.PageRef> ws = java.util.stream.IntStream.range(0, (int) (file.byteSize() / 4096) / 7)
                    .mapToObj(i -> new dev.thaw.estimate.PageRef(ram, i * 7)).toList();
            MappedRestore.Result r = MappedRestore.restore(image, file.file(), EagerRestore.Options.defaults("thaw-test-mapped"), ws);
            try (QemuVm vm = r.vm()) {
                // Only the device state and the small blocks travel: far less than the guest's non-zero pages.
                assertThat(r.streamBytes()).isLessThan(file.nonZeroPageCount() * 4096 / 4);
                checkRestored(vm);
            }
        }
        assertThat(TreeDigest.of(imageDir)).as("the image is only read").isEqualTo(digest);
    }

    @Test
    void mappedRestoreRefusesARamFileOfTheWrongSize() throws Exception {
        Path ramFile = dir.resolve("short.raw");
        Files.write(ramFile, new byte[4096]);
        try (CheckpointImage image = CheckpointImage.open(imageDir)) {
            assertThatThrownBy(() -> MappedRestore.restore(image, ramFile, EagerRestore.Options.defaults("thaw-test-mapped-bad")))
                    .isInstanceOf(RestoreException.class).hasMessageContaining("expected " + (TestHost.SMALL_GUEST.memoryMiB() << 20)
                            + " bytes").hasMessageContaining("actual 4096");
        }
    }

    @Test
    void qemuLoadvmOfAnInternalSnapshot() throws Exception {
        QemuBaselines.RestoreResult r = QemuBaselines.loadInternalSnapshot(sourceConfig, "thaw-test-loadvm", qcow2, "thaw",
                Duration.ofMinutes(2));
        try (QemuVm vm = r.vm()) {
            checkRestored(vm);
        }
    }

    @Test
    void loadvmOfAMissingSnapshotSaysSo() {
        assertThatThrownBy(() -> QemuBaselines.loadInternalSnapshot(sourceConfig, "thaw-test-loadvm-bad", qcow2, "nosuch",
                Duration.ofMinutes(1))).isInstanceOf(IllegalStateException.class).hasMessageContaining("loadvm nosuch");
    }
}
