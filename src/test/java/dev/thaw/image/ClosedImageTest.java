package dev.thaw.image;

import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.testing.Seeds;
import dev.thaw.testing.SyntheticGuest;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ClosedImageTest {
    /** A read from a closed image names the file and says it was closed, not that the image is corrupt. */
    @Test
    void aReadAfterCloseSaysTheChannelWasClosed(@TempDir Path dir) {
        SyntheticGuest guest = SyntheticGuest.random(Seeds.random("aReadAfterCloseSaysTheChannelWasClosed"), 1, 50, 50, 0, 0);
        Path imageDir = dir.resolve("img");
        try (ImageWriter writer = ImageWriter.create(imageDir, ImageWriter.Options.defaults())) {
            dev.thaw.migration.SaveStreamParser.parse(new java.io.ByteArrayInputStream(guest.toStream(50)), new dev.thaw.save.ImageSink(writer));
            writer.commit(new Manifest.Source("7.2.22", null, List.of(), null), "test");
        }
        CheckpointImage image = CheckpointImage.open(imageDir);
        image.close();
        assertThatThrownBy(() -> image.readPage(0, 0, new byte[4096], 0))
                .isInstanceOf(ImageException.Missing.class)
                .hasMessageContaining("pack-")
                .hasMessageContaining("its channel was closed (ClosedChannelException)");
    }
}
