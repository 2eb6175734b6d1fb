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
}
