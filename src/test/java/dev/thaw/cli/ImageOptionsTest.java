package dev.thaw.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.image.Codec;
import dev.thaw.image.ImageWriter;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;

class ImageOptionsTest {
    @Command(name = "probe")
    static final class Probe {
        @Mixin
        ImageOptions image;
    }

    private static ImageWriter.Options parse(String... args) {
        Probe probe = new Probe();
        new CommandLine(probe).parseArgs(args);
        return probe.image.toOptions();
    }

    @Test
    void lz4IsTheDefaultAsInTheLibrary() {
        assertThat(parse().codec()).isEqualTo(Codec.LZ4).isEqualTo(ImageWriter.Options.defaults().codec());
        assertThat(parse("--codec", "zstd").zstdLevel()).isEqualTo(1);
        assertThat(parse("--codec", "zstd", "--zstd-level", "19").zstdLevel()).isEqualTo(19);
    }

    @Test
    void aZstdLevelWithAnotherCodecIsRefusedNotIgnored() {
        assertThatThrownBy(() -> parse("--zstd-level", "19")).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("--zstd-level: expected --codec zstd, actual --codec lz4");
        assertThatThrownBy(() -> parse("--codec", "none", "--zstd-level", "3")).hasMessageContaining("actual --codec none");
    }
}
