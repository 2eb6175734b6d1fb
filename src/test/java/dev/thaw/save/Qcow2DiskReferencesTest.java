package dev.thaw.save;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.guest.DemoGuest;
import dev.thaw.image.CheckpointImage;
import dev.thaw.image.Manifest;
import dev.thaw.qemu.QemuVm;
import dev.thaw.qemu.VmConfig;
import dev.thaw.restore.Restorer;
import dev.thaw.restore.WorkingSetChoice;
import dev.thaw.testing.CachedDisk;
import dev.thaw.testing.TestHost;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Disk references into a qcow2 chain against the real QEMU: a small demo guest (512 MiB, wsbench T=32 MiB) reads its
 * read-only qcow2 disk (24 MiB: a qcow2 overlay holding 8 MiB the guest sees over a qcow2 backing file, both written by
 * qemu-img, their clusters not at their guest offsets) into its page cache; the save takes those pages as references into
 * both files (format version 4), and lazy and eager restores give back a guest whose memory is the saved one, whose page
 * cache still holds the disk, and whose workload goes on.
 */
class Qcow2DiskReferencesTest {
    private static final long DISK_MIB = 24;

    @Test
    void pagesTheQcow2ChainHoldsAreReferencesAndRestoreIdentically(@TempDir Path dir) throws Exception {
        Path disk = CachedDisk.qcow2Chain(dir, DISK_MIB);

        VmConfig config = new DemoGuest(512, 32, 16).vmConfig("thaw-test-qcow2-refs", TestHost.guest(), TestHost.qemu(), TestHost.accel())
                .withDisks(List.of(new VmConfig.Disk("disk0", "qcow2", disk, true, "05.0")));
        Path image = dir.resolve("image");
        CachedDisk cached;
        try (QemuVm vm = QemuVm.launch(config)) {
            cached = CachedDisk.read(vm, DISK_MIB);
            Saver.Result saved = Saver.save(vm.qmp(), config, image, Saver.Options.defaults().withKeepRunning(true), p -> {});
            Manifest.Stats stats = saved.manifest().stats();
            System.err.printf("qcow2 disk references: image %d MiB, %d pages taken from the chain%n", stats.imageFileBytes() >> 20,
                    stats.diskReferencePageCount());
            assertThat(saved.manifest().formatVersion()).as("references into the backing file").isEqualTo(Manifest.VERSION_WITH_BACKING_REFS);
            assertThat(stats.diskReferenceBytes()).as("the disk the guest read is referenced, not stored")
                    .isGreaterThanOrEqualTo((DISK_MIB - 4) << 20);
        }
        try (CheckpointImage opened = CheckpointImage.open(image)) {
            assertThat(opened.verifyDiskReferences()).as("every block read back and checked").isGreaterThan((DISK_MIB - 4) * 256);
            // Pages, not blocks, are counted above: a guest page equal to a block it also caches references that block again (a
            // CI run saw 6,204 referencing pages of a 6,144-block disk). Distinct blocks cannot exceed the disk's.
            assertThat(opened.diskReferences().blockCount()).as("distinct blocks referenced").isLessThanOrEqualTo((int) (DISK_MIB * 256));
        }
        for (Restorer.Mode mode : List.of(Restorer.Mode.LAZY, Restorer.Mode.EAGER)) {
            try (CheckpointImage opened = CheckpointImage.open(image);
                 QemuVm restored = Restorer.restore(opened, mode, "thaw-test-qcow2-refs-" + mode.name().toLowerCase(java.util.Locale.ROOT),
                         WorkingSetChoice.defaults(), o -> o, s -> {}).vm()) {
                cached.assertRestored(restored, mode + ": the disk read again, through the restored page cache");
            }
        }
    }
}
