package dev.thaw.measure;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;


import dev.thaw.measure.SaveRestoreBenchmark.MethodSample;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class RunLimitTest {
    @Test
    void theLimitIsQemusStartPlusTheWorkingSetAtTheReadRate() {
        // 256 MiB at 1.2 GB/s after a 0.3 s QEMU start: the 4 GiB, W=256 goal of about 0.5 s.
        RunLimit limit = new RunLimit(0.3, 1.2e9, 1L << 28, 256L << 20);
        assertThat(limit.seconds()).isCloseTo(0.3 + (256L << 20) / 1.2e9, within(1e-12));
        assertThatThrownBy(() -> new RunLimit(0.3, 0, 0, 1)).hasMessageContaining("expected > 0 B/s, actual 0.0");
    }

    @Test
    void theReadRateComesFromTheLargestFileReadFromItsStartUpToTheLimit(@TempDir Path dir) throws Exception {
        Files.write(dir.resolve("small"), new byte[1000]);
        Files.createDirectories(dir.resolve("packs"));
        Files.write(dir.resolve("packs").resolve("large"), new byte[3 << 20]);
        assertThat(RunLimit.largestFile(dir)).isEqualTo(dir.resolve("packs").resolve("large"));
        long[] read = RunLimit.readSequentially(RunLimit.largestFile(dir), 1 << 20);
        assertThat(read[0]).isEqualTo(1 << 20);
        assertThat(read[1]).isPositive();
        assertThat(RunLimit.readSequentially(dir.resolve("small"), 1 << 20)[0]).as("a file shorter than the limit").isEqualTo(1000);
    }

    @Test
    void theTableSetsEachTtrAgainstItsOwnRepetitionsLimit() {
        SaveRestoreBenchmark.Sample first = sample(new RunLimit(0.2, 1e9, 1, 200_000_000L), Optional.of(0.8), Optional.empty()); // limit 0.4 s
        SaveRestoreBenchmark.Sample second = sample(new RunLimit(0.1, 1e9, 1, 100_000_000L), Optional.of(0.6), Optional.empty()); // 0.2 s
        SaveRestoreBenchmark.Report r = new SaveRestoreBenchmark.Report("wsbench", 512, 128, 64, "tcg", "7.2", CacheState.COLD, List.of(first, second),
                "scattered", 8, 0);
        String table = SaveRestoreTables.limitMarkdown(List.of(r));
        // Lazy: TTR 0.8 / 0.4 = 2x and 0.6 / 0.2 = 3x, median 2.5x (not 0.7 s / 0.3 s = 2.33x of the medians).
        assertThat(table).contains("| Thaw lazy | 0.70 | 2.5x |");
        // Eager never reached TTR in the 8 s observed: at least 8 / 0.3 = 26.7x. The guest's row carries the medians of the limits.
        assertThat(table).contains("T=128, W=64 scattered, tcg, cold, n=2 | 0.30 | 0.15 | 1000 | QEMU eager | > 8 | > 26.7x |");
        assertThat(SaveRestoreTables.limitMarkdown(List.of(new SaveRestoreBenchmark.Report("wsbench", 512, 128, 64, "tcg", "7.2", CacheState.COLD,
                List.of(sample(null, Optional.of(0.8), Optional.empty())), null, 0, 0)))).as("a report from before limits").isEmpty();
    }

    private static SaveRestoreBenchmark.Sample sample(RunLimit limit, Optional<Double> lazyTtr, Optional<Double> eagerTtr) {
        return new SaveRestoreBenchmark.Sample(1000, null, 1, null, List.of(restore(RestoreMethod.QEMU_EAGER, eagerTtr), restore(RestoreMethod.THAW_LAZY, lazyTtr)),
                List.of(), limit, List.of(), null);
    }

    private static MethodSample restore(RestoreMethod m, Optional<Double> ttr) {
        return new MethodSample(m, 0.1, 0.1, null, 0, new AfterRestore(ttr, 0.5, 0.9, List.of(), null), null, null, List.of(), List.of(), null, null);
    }
}
