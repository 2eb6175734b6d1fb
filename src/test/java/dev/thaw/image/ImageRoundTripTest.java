package dev.thaw.image;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.migration.SaveStreamHandler;
import dev.thaw.migration.SaveStreamParser;
import dev.thaw.migration.StreamWriter;
import dev.thaw.restore.EagerStreams;
import dev.thaw.testing.Seeds;
import dev.thaw.testing.SyntheticGuest;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.RepeatedTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** stream -> image -> stream carries identical RAM content, for random guests (seeded; the seed is printed). */
public class ImageRoundTripTest {
    public static Manifest saveInto(Path dir, SyntheticGuest guest, ImageWriter.Options options) {
        try (ImageWriter writer = ImageWriter.create(dir, options);
             // As a save writes: pages hashed on the parsing thread, applied on the writer's (PageHandoff).
             dev.thaw.save.ImageSink sink = new dev.thaw.save.ImageSink(writer, new java.util.concurrent.atomic.AtomicLong(), false,
                     java.time.Duration.ofSeconds(30), "test")) {
            SaveStreamParser.parse(new ByteArrayInputStream(guest.toStream(1 + guest.pages[0].length / 3)), sink);
            sink.finish();
            return writer.commit(new Manifest.Source("7.2.22", null, List.of(), null), "test");
        }
    }

    static SaveStreamHandler sink(ImageWriter writer) {
        return new dev.thaw.save.ImageSink(writer);
    }

    public static SyntheticGuest restoreStream(CheckpointImage image) throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        EagerStreams.write(image, new StreamWriter(out, image.ramBlocks()), p -> {});
        SyntheticGuest back = new SyntheticGuest();
        SaveStreamParser.parse(new ByteArrayInputStream(out.toByteArray()), back);
        return back;
    }

    @RepeatedTest(6)
    void randomGuestsSurviveStreamImageStream(@TempDir Path dir) throws Exception {
        Random random = Seeds.random("randomGuestsSurviveStreamImageStream");
        SyntheticGuest guest = SyntheticGuest.random(random, 1 + random.nextInt(4), 600, random.nextDouble() * 0.6,
                random.nextDouble() * 0.3);
        Codec codec = Codec.values()[1 + random.nextInt(3)];
        ImageWriter.Options options = new ImageWriter.Options(codec, 1 + random.nextInt(5), 1 + random.nextInt(256), null);
        Manifest manifest = saveInto(dir.resolve("img"), guest, options);

        long zero = 0, nonZero = 0;
        for (byte[][] block : guest.pages) for (byte[] p : block) if (p == null) zero++; else nonZero++;
        assertThat(manifest.stats().zeroPageCount()).isEqualTo(zero);
        assertThat(manifest.stats().storedPageCount() + manifest.stats().duplicatePageCount()).isEqualTo(nonZero);
        assertThat(manifest.pageOrder()).isEqualTo("address");

        try (CheckpointImage image = CheckpointImage.open(dir.resolve("img"))) {
            assertThat(image.verify().pageCount()).isEqualTo(manifest.stats().storedPageCount());
            SyntheticGuest back = restoreStream(image);
            assertThat(SyntheticGuest.sameMemory(guest, back)).as("RAM content after stream -> image -> stream").isTrue();
            assertThat(back.deviceState).isEqualTo(guest.deviceState);
            assertThat(back.headerAndConfiguration).isEqualTo(guest.headerAndConfiguration);
            assertThat(back.ramSectionId).isEqualTo(guest.ramSectionId);
            assertThat(back.vmDescription).isEqualTo(guest.vmDescription);
        }
    }

    @Test
    void identicalPagesAreStoredOnceAcrossImagesSharingAStore(@TempDir Path dir) throws Exception {
        Random random = Seeds.random("identicalPagesAreStoredOnceAcrossImagesSharingAStore");
        SyntheticGuest guest = SyntheticGuest.random(random, 2, 300, 0.2, 0.2);
        Path store = dir.resolve("store");
        ImageWriter.Options options = new ImageWriter.Options(Codec.ZSTD, 1, 16, store);
        Manifest first = saveInto(dir.resolve("a"), guest, options);
        // The same VM saved again after one page changed.
        guest.pages[0][0] = new byte[4096];
        guest.pages[0][0][7] = 42;
        Manifest second = saveInto(dir.resolve("b"), guest, options);

        assertThat(first.stats().sharedPageCount()).isZero();
        assertThat(second.stats().sharedPageCount()).isGreaterThanOrEqualTo(second.stats().storedPageCount() - 1);
        assertThat(second.stats().writtenPayloadBytes()).isLessThan(first.stats().writtenPayloadBytes() / 10 + 8192);
        try (CheckpointImage a = CheckpointImage.open(dir.resolve("a"));
             CheckpointImage b = CheckpointImage.open(dir.resolve("b"))) {
            a.verify();
            b.verify();
            assertThat(SyntheticGuest.sameMemory(guest, restoreStream(b))).isTrue();
            assertThat(restoreStream(a).pages[0][0]).isNotEqualTo(guest.pages[0][0]);
        }
        try (var files = Files.list(store)) {
            assertThat(files.filter(f -> f.toString().endsWith(".thaw")).count()).isEqualTo(2);
        }
    }

    @Test
    void failedSaveLeavesNoTrace(@TempDir Path dir) throws Exception {
        Random random = Seeds.random("failedSaveLeavesNoTrace");
        SyntheticGuest guest = SyntheticGuest.random(random, 1, 200, 0.1, 0.1);
        byte[] stream = guest.toStream(50);
        byte[] truncated = java.util.Arrays.copyOf(stream, stream.length / 2);
        Path store = dir.resolve("shared");
        try (ImageWriter writer = ImageWriter.create(dir.resolve("img"), new ImageWriter.Options(Codec.ZSTD, 1, 4, store))) {
            org.assertj.core.api.Assertions.assertThatThrownBy(
                    () -> SaveStreamParser.parse(new ByteArrayInputStream(truncated), sink(writer)))
                    .hasMessageContaining("truncated");
        }
        try (var files = Files.list(dir)) {
            assertThat(files.map(p -> p.getFileName().toString())).containsExactly("shared");
        }
        try (var files = Files.list(store)) {
            assertThat(files.map(p -> p.getFileName().toString())).as("no pack left in the shared store")
                    .containsExactlyInAnyOrder("images", "store.lock");
        }
        try (var files = Files.list(store.resolve("images"))) {
            assertThat(files.toList()).as("the failed save is not listed in the store").isEmpty();
        }
    }
}
