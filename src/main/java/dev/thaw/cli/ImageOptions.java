package dev.thaw.cli;

import dev.thaw.image.Codec;
import dev.thaw.image.ImageWriter;
import java.nio.file.Path;
import picocli.CommandLine.Option;

/** How an image is written: codec, level, group size, store. */
final class ImageOptions {
    @Option(names = "--codec", defaultValue = "zstd", description = "Page compression: zstd, lz4 or none (default ${DEFAULT-VALUE}).")
    String codec;

    @Option(names = "--zstd-level", defaultValue = "1", description = "zstd level 1-19 (default ${DEFAULT-VALUE}).")
    int zstdLevel;

    @Option(names = "--group-pages", defaultValue = "16",
            description = "Pages compressed together, 1-256 (default ${DEFAULT-VALUE}): larger compresses better, smaller reads less per fault.")
    int groupPages;

    @Option(names = "--store", description = "A content store directory shared with other images (identical pages stored once); default: inside the image.")
    Path store;

    ImageWriter.Options toOptions() {
        return new ImageWriter.Options(Codec.parse(codec), zstdLevel, groupPages, store);
    }
}
