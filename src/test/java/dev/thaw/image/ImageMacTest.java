package dev.thaw.image;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.estimate.Estimator;
import dev.thaw.estimate.PageRef;
import dev.thaw.estimate.WorkingSet;
import dev.thaw.testing.Seeds;
import dev.thaw.testing.SyntheticGuest;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** With a key configured, images carry an HMAC-SHA256 that every open checks; a change without the key is refused. */
class ImageMacTest {
    @TempDir
    Path dir;

    @AfterEach
    void noKey() {
        System.clearProperty(ImageMac.KEY_PROPERTY);
    }

    private Path key(String name, String mode, int bytes) throws Exception {
        Path file = dir.resolve(name);
        byte[] key = new byte[bytes];
        new Random(name.hashCode()).nextBytes(key);
        Files.write(file, key);
        Files.setPosixFilePermissions(file, PosixFilePermissions.fromString(mode));
        return file;
    }

    private static void use(Path key) {
        if (key == null) System.clearProperty(ImageMac.KEY_PROPERTY);
        else System.setProperty(ImageMac.KEY_PROPERTY, key.toString());
    }

    private Path save(String name, Random random) throws Exception {
        Path img = dir.resolve(name);
        ImageRoundTripTest.saveInto(img, SyntheticGuest.random(random, 1, 64, 0.2, 0.1), new ImageWriter.Options(Codec.LZ4, 1, 4, null));
        return img;
    }

    private static WorkingSet firstPages(int n) {
        return new WorkingSet(Estimator.TRACE, java.util.stream.IntStream.range(0, n).mapToObj(p -> new WorkingSet.Entry(new PageRef(0, p), -1))
                .toList(), n, "first " + n);
    }

    @Test
    void aKeyedImageOpensAndStaysValidThroughAWorkingSetAttach() throws Exception {
        Random random = Seeds.random("aKeyedImageOpensAndStaysValidThroughAWorkingSetAttach");
        use(key("key", "rw-------", 32));
        Path img = save("img", random);
        assertThat(ImageMac.read(img)).singleElement().asString().hasSize(64);
        try (CheckpointImage image = CheckpointImage.open(img)) {
            image.verify();
        }
        WorkingSetWriter.attach(img, firstPages(1));
        assertThat(ImageMac.read(img)).as("the old manifest's MAC is dropped after the switch").hasSize(1);
        try (CheckpointImage image = CheckpointImage.open(img)) {
            assertThat(image.workingSet()).isPresent();
        }
        use(null);
        try (CheckpointImage image = CheckpointImage.open(img)) {
            assertThat(image.workingSet()).as("without a key the MAC is not checked").isPresent();
        }
    }

    @Test
    void changesWithoutTheKeyAndImagesWithoutAMacAreRefused() throws Exception {
        Random random = Seeds.random("changesWithoutTheKeyAndImagesWithoutAMacAreRefused");
        Path key = key("key", "rw-------", 48);
        use(key);
        Path img = save("img", random);
        use(null);
        WorkingSetWriter.attach(img, firstPages(1)); // a well-formed change by someone without the key
        use(key);
        assertThatThrownBy(() -> CheckpointImage.open(img)).isInstanceOf(ImageException.Corrupt.class)
                .hasMessageContaining("HMAC-SHA256 with the key in " + key + ": expected one of [").hasMessageContaining("actual ");
        assertThatThrownBy(() -> WorkingSetWriter.attach(img, firstPages(1))).as("nor is a forged image blessed by an attach")
                .isInstanceOf(ImageException.Corrupt.class);

        use(null);
        Path unkeyed = save("unkeyed", random);
        use(key);
        assertThatThrownBy(() -> CheckpointImage.open(unkeyed)).isInstanceOf(ImageException.Missing.class)
                .hasMessageContaining("expected the image's MAC").hasMessageContaining("saved without a key");

        use(key("other", "rw-------", 32));
        Path other = save("other-img", random);
        use(key);
        assertThatThrownBy(() -> CheckpointImage.open(other)).hasMessageContaining("made with another key");
    }

    /**
     * Found by the image-mac fuzz target: a non-ASCII byte in image.mac was "image.mac cannot be read:
     * MalformedInputException: Input length = 1" (an ImageException.Missing, as if there were no file), and an empty file
     * "the image was saved without a key". Both are a corrupt image.mac now, naming the file, the line and what it holds.
     */
    @Test
    void aMacFileOfOtherThanHexLinesOrOfNoLineIsCorruptNamingTheLine() throws Exception {
        use(key("key", "rw-------", 32));
        Path img = save("img", Seeds.random("aMacFileOfOtherThanHexLinesOrOfNoLineIsCorruptNamingTheLine"));
        Path file = img.resolve(ImageMac.FILE);
        String mac = Files.readString(file).strip();
        Files.write(file, (mac + "\n\u00e9t\u00e9\n").getBytes(java.nio.charset.StandardCharsets.ISO_8859_1));
        assertThatThrownBy(() -> CheckpointImage.open(img)).isInstanceOf(ImageException.Corrupt.class)
                .hasMessageContaining(file.toString()).hasMessageContaining("line 2: expected the hex digits of an HMAC-SHA256")
                .hasMessageContaining("actual '\\xe9t\\xe9'");
        Files.writeString(file, "\n \n");
        assertThatThrownBy(() -> CheckpointImage.open(img)).isInstanceOf(ImageException.Corrupt.class)
                .hasMessageContaining("expected at least one MAC, actual none (3 bytes)");
        Files.writeString(file, mac + "\n");
        CheckpointImage.open(img).close();
    }

    @Test
    void aKeyOthersCanReadOrAShortKeyIsRefused() throws Exception {
        use(key("shared", "rw-r--r--", 32));
        assertThatThrownBy(ImageMac::configured).hasMessageContaining("readable by its owner only, actual uid")
                .hasMessageContaining("mode 644");
        use(key("short", "rw-------", 16));
        assertThatThrownBy(ImageMac::configured).hasMessageContaining("expected at least 32 bytes of key, actual 16");
        use(dir.resolve("absent"));
        assertThatThrownBy(ImageMac::configured).hasMessageContaining("expected a readable key file");
    }
}
