package dev.thaw.cli;

import dev.thaw.image.Codec;
import dev.thaw.image.ImageWriter;
import java.nio.file.Path;
import picocli.CommandLine.Option;

/** How an image is written: codec, level, group size, store. */
final class ImageOptions {
    @Option(names = "--codec", defaultValue = "lz4", description = "Page compression: lz4, zstd or none (default ${DEFAULT-VALUE}: restores"
            + " decompress it about 3x faster than zstd, which stores about 5%% less).")
    String codec;

    @Option(names = "--zstd-level", description = "--codec zstd: level 1-19 (default 1).")
    Integer zstdLevel;

    @Option(names = "--group-pages", defaultValue = "16",
            description = "Pages compressed together, 1-256 (default ${DEFAULT-VALUE}): larger compresses better, smaller reads less per fault.")
    int groupPages;

    @Option(names = "--store", description = "A content store directory shared with other images (identical pages stored once); default: inside the image.")
    Path store;

    ImageWriter.Options toOptions() {
        Codec parsed = Codec.parse(codec);
        if (zstdLevel != null && parsed != Codec.ZSTD) {
            throw new IllegalArgumentException("--zstd-level: expected --codec zstd, actual --codec " + codec);
        }
        return new ImageWriter.Options(parsed, zstdLevel == null ? 1 : zstdLevel, groupPages, store);
    }
}
