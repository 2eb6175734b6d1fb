package dev.thaw.image;

import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.testing.Seeds;
import dev.thaw.testing.SyntheticGuest;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ClosedImageTest {
    /** A read from a closed image names the file and says it was closed, not that the image is corrupt. */
    @Test
    void aReadAfterCloseSaysTheChannelWasClosed(@TempDir Path dir) {
        SyntheticGuest guest = SyntheticGuest.random(Seeds.random("aReadAfterCloseSaysTheChannelWasClosed"), 1, 50, 50, 0, 0);
        Path imageDir = dir.resolve("img");
        ImageRoundTripTest.saveInto(imageDir, guest, ImageWriter.Options.defaults());
        CheckpointImage image = CheckpointImage.open(imageDir);
        image.close();
        assertThatThrownBy(() -> image.readPage(0, 0, new byte[4096], 0))
                .isInstanceOf(ImageException.Missing.class)
                .hasMessageContaining("pack-")
                .hasMessageContaining("its channel was closed (ClosedChannelException)");
    }
}
