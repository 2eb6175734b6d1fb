package dev.thaw.measure;

import static org.assertj.core.api.Assertions.assertThat;

import java.awt.image.BufferedImage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class PlotsTest {
    @Test
    void writesAPngWithOneLinePerMethod(@TempDir Path dir) throws Exception {
        Map<String, List<Double>> series = new LinkedHashMap<>();
        series.put("eager", List.of(0.0, 0.0, 0.0, 0.9, 1.0, 1.0));
        series.put("lazy", List.of(0.2, 0.5, 0.8, 0.9, 1.0, 1.0));
        series.put("nothing observed", List.of());
        Path png = Plots.overTime(dir.resolve("plots/u.png"), "test", "work vs before", series, 250);
        assertThat(png).exists();
        BufferedImage image = ImageIO.read(png.toFile());
        assertThat(image).as("a PNG that decodes").isNotNull();
        assertThat(image.getWidth()).isEqualTo(900);
        assertThat(image.getHeight()).isEqualTo(500);
        // Not a blank canvas: the two series are drawn in colours other than the background's.
        int background = image.getRGB(2, 2);
        long other = 0;
        for (int x = 0; x < image.getWidth(); x += 3) {
            for (int y = 0; y < image.getHeight(); y += 3) if (image.getRGB(x, y) != background) other++;
        }
        assertThat(other).isGreaterThan(500);
        assertThat(Files.size(png)).isPositive();
    }
}
