package dev.thaw.restore;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.image.CheckpointImage;
import dev.thaw.image.ImageWriter;
import dev.thaw.schedule.PageRange;
import dev.thaw.testing.Seeds;
import dev.thaw.testing.SyntheticGuest;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class PageReadAheadTest {
    /**
     * A restore that fails while its read-ahead reads (QEMU did not start, a clone among several failed) closes it; the image
     * stays open for the others. An interrupt landing in or before a FileChannel read closes that channel, the image's own.
     */
    @Test
    void closingAReaderMidReadLeavesTheImageReadable(@TempDir Path dir) throws Exception {
        SyntheticGuest guest = SyntheticGuest.random(Seeds.random("closingAReaderMidReadLeavesTheImageReadable"), 1, 2000, 2000, 0.05, 0);
        Path imageDir = dir.resolve("img");
        dev.thaw.image.ImageRoundTripTest.saveInto(imageDir, guest, ImageWriter.Options.defaults());
        int pageCount = guest.pages[0].length;
        List<PageRange> units = new ArrayList<>();
        for (int round = 0; round < 200; round++) { // long enough to be reading when closed
            for (int p = 0; p < pageCount; p += 16) units.add(new PageRange(0, p, Math.min(16, pageCount - p)));
        }
        try (CheckpointImage image = CheckpointImage.open(imageDir)) {
            for (int attempt = 0; attempt < 20; attempt++) {
                PageReadAhead ahead = new PageReadAhead(image, units, 1L << 40, "read-ahead-test");
                assertThat(ahead.next(Duration.ofSeconds(10))).as("a first batch").isNotNull();
                Thread.sleep(attempt % 3); // the reader mid-extent, between reads, or in its queue
                ahead.close();
                byte[] out = new byte[4096];
                for (int p = 0; p < pageCount; p++) { // more extents than the image's cache holds: reads from the pack
                    boolean stored = image.readPage(0, p, out, 0);
                    assertThat(stored).as("page %d stored", p).isEqualTo(guest.pages[0][p] != null);
                    if (stored) assertThat(Arrays.equals(out, guest.pages[0][p])).as("attempt %d: page %d as saved", attempt, p).isTrue();
                }
            }
        }
    }
}
