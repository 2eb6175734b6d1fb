package dev.thaw.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import dev.thaw.guest.DemoGuest;
import dev.thaw.image.CheckpointImage;
import dev.thaw.qemu.FreePages;
import dev.thaw.qemu.QemuVm;
import dev.thaw.qemu.VmConfig;
import dev.thaw.restore.Restorer;
import dev.thaw.restore.WorkingSetChoice;
import dev.thaw.testing.CachedDisk;
import dev.thaw.testing.RandomFiles;
import dev.thaw.testing.TestHost;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code thaw save --drop-caches} against the real QEMU: a small demo guest (512 MiB, wsbench T=32 MiB) with free-page reporting reads 64 MiB of random
 * bytes from its (read-only) disk into its page cache; saved as it is, then with the cache dropped through its agent, the second image
 * is smaller by about that much, reports the drop (save's JSON, inspect), and restores to a guest whose memory and disk are
 * intact and whose workload goes on. A save told of no agent is refused with the guest running and nothing written.
 * Saved by default, the cached pages are references to the disk's blocks (format version 3): the image is smaller by about
 * that much too, and a lazy restore of it gives the guest a page cache that still holds the file.
 */
class SaveDropCachesTest {
    private static final long READ_MIB = 64;

    @Test
    void aGuestsDroppedPageCacheLeavesTheImageAndTheRestoredGuestWorks(@TempDir Path dir) throws Exception {
        // Read-only: the guest only reads it, and a Thaw-started guest that went on on an overlay could not be saved again (its
        // vm.json names the base).
        Path disk = RandomFiles.write(dir.resolve("data.raw"), READ_MIB, 17);
        VmConfig config = new DemoGuest(512, 32, 16).vmConfig("thaw-test-drop-caches", TestHost.guest(), TestHost.qemu(),
                TestHost.accel(), FreePages.REPORTING, 0).withDisks(List.of(new VmConfig.Disk("disk0", "raw", disk, true, "05.0")));
        Path kept = dir.resolve("kept");
        Path dropped = dir.resolve("dropped");
        Path referenced = dir.resolve("referenced");
        CachedDisk cached;
        try (QemuVm vm = QemuVm.launch(config)) {
            cached = CachedDisk.read(vm, READ_MIB);
            String qmp = vm.extraQmpSocket().toString();

            // No agent where told: refused before anything is stopped.
            ImageCommandsTest.Run refused = ImageCommandsTest.run("save", "--qmp", qmp, "--out", dir.resolve("refused").toString(),
                    "--drop-caches", "--agent", dir.resolve("none.sock").toString());
            assertThat(refused.exit()).isNotZero();
            assertThat(refused.err()).contains("--drop-caches").contains("expected the guest agent's socket at " + dir.resolve("none.sock"));
            assertThat(dir.resolve("refused")).doesNotExist();
            assertThat(vm.qmp().queryStatus().running()).as("the guest runs on").isTrue();

            ImageCommandsTest.Run refs = ImageCommandsTest.run("save", "--qmp", qmp, "--out", referenced.toString(), "--keep-running", "--json");
            assertThat(refs.exit()).as(refs.err()).isZero();
            ImageCommandsTest.Run keep = ImageCommandsTest.run("save", "--qmp", qmp, "--out", kept.toString(), "--keep-running",
                    "--no-disk-refs", "--json");
            assertThat(keep.exit()).as(keep.err()).isZero();
            ImageCommandsTest.Run drop = ImageCommandsTest.run("save", "--qmp", qmp, "--out", dropped.toString(), "--keep-running",
                    "--drop-caches", "--json");
            assertThat(drop.exit()).as(drop.err()).isZero();
            JsonNode keptReport = Json.MAPPER.readTree(keep.out());
            JsonNode dropReport = Json.MAPPER.readTree(drop.out());
            assertThat(keptReport.path("pageCacheDrop").isNull() || keptReport.path("pageCacheDrop").isMissingNode()).as("not dropped: " + keep.out()).isTrue();
            JsonNode d = dropReport.path("pageCacheDrop");
            assertThat(d.path("dropCachesValue").asInt()).isEqualTo(1);
            assertThat(d.path("freePagesReported").asBoolean()).isTrue();
            assertThat(d.path("pageCacheBytesBefore").asLong()).as("the guest's cache held what it read").isGreaterThanOrEqualTo(READ_MIB << 20);
            assertThat(d.path("pageCacheBytesAfter").asLong()).isLessThan(d.path("pageCacheBytesBefore").asLong() - ((READ_MIB - 8) << 20));
            long keptBytes = keptReport.path("stats").path("imageFileBytes").asLong();
            long droppedBytes = dropReport.path("stats").path("imageFileBytes").asLong();
            System.err.printf("drop caches: image %d MiB kept, %d MiB dropped; page cache %d -> %d MiB%n", keptBytes >> 20,
                    droppedBytes >> 20, d.path("pageCacheBytesBefore").asLong() >> 20, d.path("pageCacheBytesAfter").asLong() >> 20);
            assertThat(droppedBytes).as("the random bytes the cache held are not in the image").isLessThan(keptBytes - ((READ_MIB - 16) << 20));
            JsonNode refsReport = Json.MAPPER.readTree(refs.out());
            long refsBytes = refsReport.path("stats").path("imageFileBytes").asLong();
            System.err.printf("disk references: image %d MiB with, %d MiB without; %d pages taken from the disk; save %.2f s (downtime %.2f s,"
                            + " the disk's index built) with, %.2f s (downtime %.2f s) without%n", refsBytes >> 20, keptBytes >> 20,
                    refsReport.path("diskReferencePageCount").asLong(), refsReport.path("seconds").asDouble(),
                    refsReport.path("downtimeSeconds").asDouble(), keptReport.path("seconds").asDouble(), keptReport.path("downtimeSeconds").asDouble());
            // Up to 1 MiB over: copies of disk blocks outside the page cache (the agent's read buffer; 36 pages in one CI run)
            // are equal to the disk's blocks too, and rightly references.
            assertThat(refsReport.path("diskReferenceBytes").asLong()).as("the cached file's pages are references")
                    .isGreaterThanOrEqualTo((READ_MIB - 8) << 20).isLessThanOrEqualTo((READ_MIB + 1) << 20);
            assertThat(refsBytes).as("and not in the image").isLessThan(keptBytes - ((READ_MIB - 16) << 20));
            assertThat(keptReport.path("diskReferencePageCount").asLong()).as("--no-disk-refs").isZero();
        }
        ImageCommandsTest.Run inspectRefs = ImageCommandsTest.run("inspect", "--verify", referenced.toString());
        assertThat(inspectRefs.exit()).as(inspectRefs.err()).isZero();
        assertThat(inspectRefs.out()).contains("(format 3,").containsPattern("disk references: [0-9]{5,} pages")
                .containsPattern("[0-9]{5,} disk blocks: all checksums match");

        ImageCommandsTest.Run inspectDropped = ImageCommandsTest.run("inspect", dropped.toString());
        assertThat(inspectDropped.exit()).as(inspectDropped.err()).isZero();
        assertThat(inspectDropped.out()).contains("page cache: dropped before the save (sync, drop_caches=1)")
                .contains("freed pages reported by the balloon");
        assertThat(ImageCommandsTest.run("inspect", kept.toString()).out()).contains("page cache: saved as the guest held it");

        restoreAndCheck(dropped, Restorer.Mode.EAGER, "thaw-test-drop-caches-restored", "the file read again, from the disk", cached);
        restoreAndCheck(referenced, Restorer.Mode.LAZY, "thaw-test-disk-refs-restored", "the file read again, from the restored page cache",
                cached);
    }

    /** Restores the image, reads the disk's file through the guest's page cache and checks the guest's memory and workload. */
    private static void restoreAndCheck(Path imageDir, Restorer.Mode mode, String name, String readWhat, CachedDisk cached) throws Exception {
        try (CheckpointImage image = CheckpointImage.open(imageDir);
             QemuVm restored = Restorer.restore(image, mode, name, WorkingSetChoice.defaults(), o -> o, s -> {}).vm()) {
            cached.assertRestored(restored, readWhat);
        }
    }
}
