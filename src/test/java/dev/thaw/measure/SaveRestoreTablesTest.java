package dev.thaw.measure;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import org.junit.jupiter.api.Test;

class SaveRestoreTablesTest {
    private static SaveRestoreBenchmark.Report report(double... before) {
        List<SaveRestoreBenchmark.Sample> samples = java.util.Arrays.stream(before)
                .mapToObj(b -> new SaveRestoreBenchmark.Sample(b, null, 1, null, List.of(), List.of(), null)).toList();
        return new SaveRestoreBenchmark.Report("wsbench", 1024, 640, 64, "tcg", "7.2.22", CacheState.COLD, samples, "contiguous", 5);
    }

    @Test
    void aReferenceThatMovedBetweenRepetitionsIsNamedAndOneThatHeldIsNot() {
        String moved = SaveRestoreTables.referenceMoved(List.of(report(2.67e6, 3.32e6, 18.9e6, 15.4e6, 13.0e6)));
        assertThat(moved).contains("The reference moved", "[2.7, 3.3, 18.9, 15.4, 13.0]", "7.1x apart");
        assertThat(SaveRestoreTables.referenceMoved(List.of(report(12.8e6, 9.0e6, 9.0e6, 10.0e6, 10.6e6)))).as("1.4x: within").isEmpty();
        assertThat(SaveRestoreTables.referenceMoved(List.of(report(3e6)))).as("one repetition").isEmpty();
    }
}
