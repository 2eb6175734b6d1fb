package dev.thaw.restore;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.image.CheckpointImage;
import dev.thaw.image.ImageRoundTripTest;
import dev.thaw.image.ImageWriter;
import dev.thaw.testing.Seeds;
import dev.thaw.testing.SyntheticGuest;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Arrays;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The mapped-RAM baseline's file, without QEMU: the guest's main RAM, for its owner only. */
class MappedRamFileTest {
    @Test
    void theRamFileHoldsTheGuestsRamAndIsForItsOwnerOnly(@TempDir Path dir) throws Exception {
        SyntheticGuest guest = SyntheticGuest.random(Seeds.random("theRamFileHoldsTheGuestsRamAndIsForItsOwnerOnly"), 2, 200, 0.3, 0.1);
        Path image = dir.resolve("img");
        ImageRoundTripTest.saveInto(image, guest, ImageWriter.Options.defaults());
        Path ramFile = dir.resolve("ram.raw");
        try (CheckpointImage img = CheckpointImage.open(image)) {
            MappedRestore.writeRamFile(img, ramFile);
        }
        assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(ramFile))).isEqualTo("rw-------");
        byte[] bytes = Files.readAllBytes(ramFile);
        assertThat(bytes.length).isEqualTo(guest.pages[0].length * 4096);
        for (int p = 0; p < guest.pages[0].length; p++) {
            byte[] expected = guest.pages[0][p] == null ? new byte[4096] : guest.pages[0][p];
            assertThat(Arrays.copyOfRange(bytes, p * 4096, (p + 1) * 4096)).as("page " + p).isEqualTo(expected);
        }
        try (Stream<Path> files = Files.list(dir)) {
            assertThat(files.map(f -> f.getFileName().toString())).as("no temporary file left").containsExactlyInAnyOrder("img", "ram.raw");
        }
    }

    @Test
    void theImagesRamFileIsNamedByItsIdReplacesAnotherImagesAndGoesWithIt(@TempDir Path dir) throws Exception {
        SyntheticGuest guest = SyntheticGuest.random(Seeds.random("theImagesRamFileIsNamedByItsId"), 2, 16, 200, 0.3, 0.1);
        Path image = dir.resolve("img");
        ImageRoundTripTest.saveInto(image, guest, ImageWriter.Options.defaults());
        Path ramDir = RamFiles.directoryFor(image);
        // Left by an earlier image of this path: never mapped into this one, and removed when this one's is written.
        Files.createDirectories(ramDir);
        Path stale = ramDir.resolve("00000000-0000-0000-0000-000000000000.pc.ram");
        Files.write(stale, new byte[4096]);
        Path file;
        try (CheckpointImage img = CheckpointImage.open(image)) {
            assertThat(RamFiles.existing(img)).isEmpty();
            file = RamFiles.fileFor(img);
            assertThat(file.getFileName().toString()).isEqualTo(img.manifest().imageId() + ".pc.ram");
            // One of the wrong size (a write cut short by a crash cannot leave one, but a copy could) is not used either.
            Files.write(file, new byte[4096]);
            assertThat(RamFiles.existing(img)).isEmpty();
            assertThat(RamFiles.ensure(img, m -> {})).isEqualTo(file);
            assertThat(RamFiles.existing(img)).contains(file);
            assertThat(Files.size(file)).isEqualTo(guest.pages[0].length * 4096L);
        }
        assertThat(stale).doesNotExist();
        assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(file))).isEqualTo("rw-------");
        assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(ramDir))).isEqualTo("rwx------");
        assertThat(RamFiles.deleteFor(image)).isTrue();
        assertThat(ramDir).doesNotExist();
        assertThat(RamFiles.deleteFor(image)).isFalse();
    }

    /**
     * A second writer of an image's RAM file while the first is halfway (two first mapped restores of one image, a second
     * apart): both get the file, and no temporary file is left. Before the writers' lock, the first to finish deleted the
     * other's temporary file as the file of another image, and the other's rename failed.
     */
    @Test
    void aSecondWriterOfOneRamFileWhileTheFirstWritesGetsItToo(@TempDir Path dir) throws Exception {
        SyntheticGuest guest = SyntheticGuest.random(Seeds.random("aSecondWriterOfOneRamFileWhileTheFirstWritesGetsItToo"), 1, 8192, 8192,
                0.2, 0.1);
        Path image = dir.resolve("img");
        ImageRoundTripTest.saveInto(image, guest, ImageWriter.Options.defaults());
        Path ramDir = RamFiles.directoryFor(image);
        try (CheckpointImage img = CheckpointImage.open(image);
             java.util.concurrent.ExecutorService pool = java.util.concurrent.Executors.newFixedThreadPool(2)) {
            java.util.concurrent.Future<Path> first = pool.submit(() -> RamFiles.ensure(img, m -> {}));
            long deadline = System.nanoTime() + 30_000_000_000L;
            while (!first.isDone() && System.nanoTime() < deadline && largestTemporaryFile(ramDir) < (8L << 20)) Thread.sleep(1);
            assertThat(first.isDone()).as("the first writer was caught halfway").isFalse();
            java.util.concurrent.Future<Path> second = pool.submit(() -> RamFiles.ensure(img, m -> {}));
            assertThat(first.get()).isEqualTo(RamFiles.fileFor(img));
            assertThat(second.get()).isEqualTo(RamFiles.fileFor(img));
            assertThat(RamFiles.existing(img)).contains(RamFiles.fileFor(img));
            try (Stream<Path> files = Files.list(ramDir)) {
                assertThat(files.map(f -> f.getFileName().toString())).as("no temporary file left").containsExactlyInAnyOrder(
                        RamFiles.fileFor(img).getFileName().toString(), RamFiles.LOCK_FILE);
            }
        }
    }

    /** The size of the largest temporary file in {@code dir} (0 if none, or no directory yet). */
    private static long largestTemporaryFile(Path dir) throws java.io.IOException {
        if (!Files.isDirectory(dir)) return 0;
        try (Stream<Path> files = Files.list(dir)) {
            return files.filter(f -> f.getFileName().toString().endsWith(".tmp")).mapToLong(f -> f.toFile().length()).max().orElse(0);
        }
    }
}
