package dev.thaw.save;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.image.CheckpointImage;
import dev.thaw.image.ImageRoundTripTest;
import dev.thaw.image.ImageWriter;
import dev.thaw.image.Manifest;
import dev.thaw.migration.SaveStreamHandler;
import dev.thaw.testing.Seeds;
import dev.thaw.testing.SyntheticGuest;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.RepeatedTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** The writer fed from a second thread ({@link PageHandoff}) makes the image the writer makes on the parser's thread. */
@Timeout(60)
class PageHandoffTest {
    private static final Manifest.Source SOURCE = new Manifest.Source("7.2.22", null, List.of(), null);

    /**
     * A live save's order: the guest's pages, then rounds that send pages again (now zero, now data, now a copy of another
     * page), over more batches than the hand-off holds. Both ways give the same stats, page order and memory.
     */
    @RepeatedTest(3)
    void theSameCallsMakeTheSameImageOnEitherThread(@TempDir Path dir) throws Exception {
        Random random = Seeds.random("pageHandoff");
        SyntheticGuest guest = SyntheticGuest.random(random, 2, 600, 1500, 0.3, 0.2);
        int[][] resent = new int[3000][];
        for (int i = 0; i < resent.length; i++) {
            int b = random.nextInt(2);
            resent[i] = new int[] {b, random.nextInt(guest.pages[b].length), random.nextInt(3)};
        }
        Manifest direct = save(dir.resolve("direct"), guest, resent, false);
        Manifest handedOff = save(dir.resolve("handoff"), guest, resent, true);

        assertThat(handedOff.stats()).isEqualTo(direct.stats());
        assertThat(handedOff.pageOrder()).isEqualTo(direct.pageOrder()).isEqualTo("arrival");
        try (CheckpointImage a = CheckpointImage.open(dir.resolve("direct")); CheckpointImage b = CheckpointImage.open(dir.resolve("handoff"))) {
            assertThat(b.verify().pageCount()).isEqualTo(a.verify().pageCount());
            SyntheticGuest fromDirect = ImageRoundTripTest.restoreStream(a);
            SyntheticGuest fromHandoff = ImageRoundTripTest.restoreStream(b);
            assertThat(SyntheticGuest.sameMemory(fromDirect, fromHandoff)).isTrue();
            assertThat(SyntheticGuest.sameMemory(fromDirect, guest)).as("the rounds changed the memory").isFalse();
        }
    }

    private static Manifest save(Path target, SyntheticGuest guest, int[][] resent, boolean handoff) {
        try (ImageWriter writer = ImageWriter.create(target, ImageWriter.Options.defaults());
             ImageSink sink = handoff ? new ImageSink(writer, new AtomicLong(), false, Duration.ofSeconds(30), "test") : new ImageSink(writer)) {
            SaveStreamHandler h = sink;
            h.configuration(guest.headerAndConfiguration, SyntheticGuest.MACHINE, List.of());
            h.ramBlocks(guest.ramSectionId, 4, guest.blocks);
            for (int b = 0; b < guest.blocks.size(); b++) {
                for (int p = 0; p < guest.pages[b].length; p++) {
                    if (guest.pages[b][p] == null) h.zeroPage(b, p);
                    else h.page(b, p, guest.pages[b][p], 0);
                }
            }
            byte[] scratch = new byte[3 * 4096];
            for (int[] r : resent) {
                switch (r[2]) {
                    case 0 -> h.zeroPage(r[0], r[1]);
                    case 1 -> { // new content, at an offset in a reused array (as the parser's window is)
                        java.util.Arrays.fill(scratch, 4096, 8192, (byte) (r[1] * 31 + r[0]));
                        scratch[4096] = (byte) r[0];
                        scratch[4097] = (byte) (r[1] >> 8);
                        scratch[4098] = (byte) r[1];
                        h.page(r[0], r[1], scratch, 4096);
                    }
                    default -> { // a copy of page 0 of block 0 (a duplicate)
                        byte[] first = guest.pages[0][0] == null ? new byte[4096] : guest.pages[0][0];
                        h.page(r[0], r[1], first, 0);
                    }
                }
            }
            h.deviceState(guest.deviceState, guest.vmDescription);
            sink.finish();
            return writer.commit(SOURCE, "test");
        }
    }

    /** What fails on the writer's thread fails the save on the parser's, as itself, and the writer's thread ends. */
    @Test
    void aFailureOnTheWritersThreadEndsTheSaveWithItsOwnError(@TempDir Path dir) throws Exception {
        SyntheticGuest guest = SyntheticGuest.random(Seeds.random("pageHandoffFailure"), 1, 100, 200, 0.1, 0.1);
        try (ImageWriter writer = ImageWriter.create(dir.resolve("img"), ImageWriter.Options.defaults());
             ImageSink sink = new ImageSink(writer, new AtomicLong(), false, Duration.ofSeconds(30), "failing")) {
            sink.configuration(guest.headerAndConfiguration, SyntheticGuest.MACHINE, List.of());
            sink.ramBlocks(guest.ramSectionId, 4, guest.blocks);
            int beyond = guest.pages[0].length + 5; // the writer's page map has no such page
            assertThatThrownBy(() -> {
                for (int i = 0; i < 100_000; i++) sink.page(0, i == 10 ? beyond : i % guest.pages[0].length, new byte[4096], 0);
                sink.finish();
            }).isInstanceOf(ArrayIndexOutOfBoundsException.class);
        }
        assertThat(Thread.getAllStackTraces().keySet()).noneMatch(t -> t.getName().equals("image-writer-failing") && t.isAlive());
        assertThat(dir.resolve("img")).doesNotExist();
    }
}
