package dev.thaw.image;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.migration.StreamWriter;
import dev.thaw.restore.EagerStreams;
import dev.thaw.testing.Seeds;
import dev.thaw.testing.SyntheticGuest;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/**
 * Flip a byte in, and truncate, every file an image has: opening and verifying it, and producing
 * the restore stream from it, must fail with an {@link ImageException} naming that file, and
 * neither may change any file.
 */
class ImageCorruptionTest {
    @TempDir
    static Path dir;

    @TestFactory
    Stream<DynamicTest> everyFileIsProtected() throws IOException {
        Random random = Seeds.random("everyFileIsProtected");
        SyntheticGuest guest = SyntheticGuest.random(random, 3, 200, 0.3, 0.2);
        Path pristine = dir.resolve("pristine");
        ImageRoundTripTest.saveInto(pristine, guest, new ImageWriter.Options(Codec.ZSTD, 1, 8, null));
        List<Path> files;
        try (Stream<Path> walk = Files.walk(pristine)) {
            files = walk.filter(Files::isRegularFile).map(pristine::relativize).sorted().toList();
        }
        assertThat(files).extracting(Path::toString).contains("manifest.thaw", "pagemap.thaw", "extents.thaw", "device.thaw");
        assertThat(files).anyMatch(p -> p.toString().startsWith("store/pack-"));

        List<DynamicTest> tests = new ArrayList<>();
        int n = 0;
        for (Path file : files) {
            long size = Files.size(pristine.resolve(file));
            for (int k = 0; k < 3; k++) {
                long offset = k == 0 ? 0 : k == 1 ? size - 1 : (long) (random.nextDouble() * size);
                int bit = random.nextInt(8);
                Path copy = dir.resolve("flip-" + n++);
                tests.add(DynamicTest.dynamicTest("flip bit " + bit + " at " + offset + " of " + file, () -> {
                    copyTree(pristine, copy);
                    Path target = copy.resolve(file);
                    byte[] bytes = Files.readAllBytes(target);
                    bytes[(int) offset] ^= (byte) (1 << bit);
                    Files.write(target, bytes);
                    expectFailureNaming(copy, target);
                }));
            }
            Path cut = dir.resolve("truncate-" + n++);
            tests.add(DynamicTest.dynamicTest("truncate " + file, () -> {
                copyTree(pristine, cut);
                Path target = cut.resolve(file);
                byte[] bytes = Files.readAllBytes(target);
                Files.write(target, java.util.Arrays.copyOf(bytes, random.nextInt(bytes.length)));
                expectFailureNaming(cut, target);
            }));
        }
        return tests.stream();
    }

    private static void expectFailureNaming(Path image, Path damaged) throws IOException {
        List<byte[]> before = snapshot(image);
        assertThatThrownBy(() -> {
            try (CheckpointImage opened = CheckpointImage.open(image)) {
                opened.verify();
            }
        }).as("open + verify").isInstanceOf(ImageException.class).hasMessageContaining(damaged.getFileName().toString());
        assertThatThrownBy(() -> {
            try (CheckpointImage opened = CheckpointImage.open(image)) {
                EagerStreams.write(opened, new StreamWriter(OutputStream.nullOutputStream(), opened.ramBlocks()), p -> {});
            }
        }).as("restore stream").isInstanceOf(ImageException.class).hasMessageContaining(damaged.getFileName().toString());
        List<byte[]> after = snapshot(image);
        assertThat(after).as("the checks modify nothing").hasSameSizeAs(before);
        for (int i = 0; i < before.size(); i++) assertThat(after.get(i)).isEqualTo(before.get(i));
    }

    private static List<byte[]> snapshot(Path root) throws IOException {
        try (Stream<Path> walk = Files.walk(root)) {
            List<byte[]> out = new ArrayList<>();
            for (Path p : walk.filter(Files::isRegularFile).sorted().toList()) out.add(Files.readAllBytes(p));
            return out;
        }
    }

    private static void copyTree(Path from, Path to) throws IOException {
        try (Stream<Path> walk = Files.walk(from)) {
            for (Path p : walk.toList()) {
                Path t = to.resolve(from.relativize(p).toString());
                if (Files.isDirectory(p)) Files.createDirectories(t);
                else Files.copy(p, t);
            }
        }
    }
}
