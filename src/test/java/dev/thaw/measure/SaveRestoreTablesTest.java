package dev.thaw.measure;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import org.junit.jupiter.api.Test;

class SaveRestoreTablesTest {
    private static SaveRestoreBenchmark.Report report(double... before) {
        List<SaveRestoreBenchmark.Sample> samples = java.util.Arrays.stream(before)
                .mapToObj(b -> new SaveRestoreBenchmark.Sample(b, null, 1, null, List.of(), List.of(), null, List.of(), null)).toList();
        return new SaveRestoreBenchmark.Report("wsbench", 1024, 640, 64, "tcg", "7.2.22", CacheState.COLD, samples, "contiguous", 5, 0);
    }

    @Test
    void aReferenceThatMovedBetweenRepetitionsIsNamedAndOneThatHeldIsNot() {
        String moved = SaveRestoreTables.referenceMoved(List.of(report(2.67e6, 3.32e6, 18.9e6, 15.4e6, 13.0e6)));
        assertThat(moved).contains("The reference moved", "[2.7, 3.3, 18.9, 15.4, 13.0]", "7.1x apart");
        assertThat(SaveRestoreTables.referenceMoved(List.of(report(12.8e6, 9.0e6, 9.0e6, 10.0e6, 10.6e6)))).as("1.4x: within").isEmpty();
        assertThat(SaveRestoreTables.referenceMoved(List.of(report(3e6)))).as("one repetition").isEmpty();
    }

    private static SaveRestoreBenchmark.MethodSample restore(RestoreMethod m, Double stallTtr, String memsum) {
        AfterRestore after = new AfterRestore(java.util.Optional.of(1.0), 0.5, 0.9, List.of(), null, java.util.Optional.ofNullable(stallTtr), 0.5);
        return new SaveRestoreBenchmark.MethodSample(m, 0.1, 0.2, null, 0, after, null, null, List.of(), List.of(), null, memsum);
    }

    private static SaveRestoreBenchmark.Report checked(String memsumBefore, List<SaveRestoreBenchmark.MethodSample> restores,
                                                        List<SaveRestoreBenchmark.MethodSample> repeats) {
        return new SaveRestoreBenchmark.Report("wsbench", 512, 192, 64, "tcg", "7.2.22", CacheState.EVICTED, List.of(
                new SaveRestoreBenchmark.Sample(1e6, null, 1, null, restores, List.of(), null, repeats, memsumBefore)), "contiguous", 5, 0);
    }

    @Test
    void memoryIsIntactOnlyWhenEveryCheckedRestoreMatchedTheSourceRepeatsIncluded() {
        var intact = checked("aa", List.of(restore(RestoreMethod.THAW_EAGER, 0.5, "aa"), restore(RestoreMethod.WS_TRACE, 0.2, "aa")),
                List.of(restore(RestoreMethod.WS_TRACE, 0.3, "aa")));
        assertThat(SaveRestoreTables.memoryIntact(List.of(intact))).isTrue();
        assertThat(SaveRestoreTables.memoryMarkdown(List.of(intact))).contains("Thaw eager identical in 1", "Thaw ws (trace) identical in 2");
        var lostInARepeat = checked("aa", List.of(restore(RestoreMethod.WS_TRACE, 0.2, "aa")), List.of(restore(RestoreMethod.WS_TRACE, 0.3, "bb")));
        assertThat(SaveRestoreTables.memoryIntact(List.of(intact, lostInARepeat))).isFalse();
        assertThat(SaveRestoreTables.memoryMarkdown(List.of(lostInARepeat))).contains("Thaw ws (trace) DIFFERENT in 1 of 2");
        var unchecked = checked(null, List.of(restore(RestoreMethod.WS_TRACE, 0.2, null)), List.of());
        assertThat(SaveRestoreTables.memoryIntact(List.of(unchecked))).as("nothing checked").isTrue();
        assertThat(SaveRestoreTables.memoryMarkdown(List.of(unchecked))).isEmpty();
    }

    @Test
    void closeRunsListEachRepeatedMethodsStallTtrsAndTheVerdict() {
        var r = checked("aa", List.of(restore(RestoreMethod.MAPPED_FILE, 0.25, "aa"), restore(RestoreMethod.THAW_EAGER, 0.9, "aa"),
                        restore(RestoreMethod.WS_TRACE, 0.2, "aa")),
                List.of(restore(RestoreMethod.MAPPED_FILE, 0.18, "aa"), restore(RestoreMethod.WS_TRACE, 0.22, "aa"),
                        restore(RestoreMethod.WS_TRACE, 0.14, "aa"), restore(RestoreMethod.MAPPED_FILE, 0.24, "aa")));
        String close = SaveRestoreTables.closeRunsMarkdown(List.of(r));
        assertThat(close).contains("mapped-file [0.25, 0.18, 0.24] s", "ws [0.20, 0.22, 0.14] s").doesNotContain("eager [");
        // medians: ws 0.20, mapped file 0.24; ws sooner in the first and third pairs
        assertThat(close).contains("verdict: Thaw ws responsive after 0.20 s (median of 3), sooner than every baseline", "sooner in 2 of 3");
        assertThat(SaveRestoreTables.closeRunsMarkdown(List.of(checked("aa", List.of(restore(RestoreMethod.WS_TRACE, 0.2, "aa")), List.of()))))
                .as("no close runs").isEmpty();
    }
}
