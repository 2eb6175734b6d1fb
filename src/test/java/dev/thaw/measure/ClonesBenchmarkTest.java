package dev.thaw.measure;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.guest.DemoGuest;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The clones study's table and configuration checks: pure, no QEMU. */
class ClonesBenchmarkTest {
    private static ClonesBenchmark.CloneSample clone(String name, double running, Double stallTtr, long residentMiB) {
        return new ClonesBenchmark.CloneSample(name, running, running + 1, stallTtr == null ? null : stallTtr + 0.1, stallTtr, 0.9, residentMiB << 20, residentMiB << 19);
    }

    @Test
    void theTableGivesMediansOverClonesAndRunsAndNamesFailures() {
        var one = new ClonesBenchmark.Sample(RestoreMethod.WS_TRACE, 1, 0, List.of(clone("c-1", 0.3, 0.4, 300)), null);
        var oneAgain = new ClonesBenchmark.Sample(RestoreMethod.WS_TRACE, 1, 1, List.of(clone("c-1", 0.5, 0.6, 310)), null);
        var two = new ClonesBenchmark.Sample(RestoreMethod.WS_TRACE, 2, 0, List.of(clone("c-1", 0.4, 0.7, 280), clone("c-2", 0.9, null, 290)), null);
        var failed = new ClonesBenchmark.Sample(RestoreMethod.WS_TRACE, 2, 1, List.of(), "clone c-2 (2 of 2) failed: QEMU exited");
        var r = new ClonesBenchmark.Report("wsbench", 1024, 640, 64, "contiguous", "tcg", "7.2.22", CacheState.EVICTED, 2, 1, 5, 1e6, 500L << 20,
                List.of(one, two, oneAgain, failed));
        String table = ClonesBenchmark.markdown(r);
        // x1: all running 0.30 / 0.40; stall TTR median 0.50, max 0.60; resident median (300 + 310) / 2
        assertThat(table).contains("| Thaw ws (trace) | 1 | 2 | 0.30 / 0.40 | 1.40 | 0.50 / 0.60 | 0.60 | 0.90x | 1.00 | 0.90x | 305 | 305 | 153 |");
        // x2: one run failed; the last clone ran at 0.90; a clone never responsive: the max is "> 5"
        assertThat(table).contains("| Thaw ws (trace) | 2 | 2 (1 failed) | 0.90 / 0.90 | 1.90 | ", " / > 5 |", "| 0.90x | 1.00 | 0.90x | 570 | 285 | 285 |");
        assertThat(r.fairShare(4)).as("4 one-vCPU clones on 2 CPUs").isEqualTo(0.5);
        assertThat(table).contains("- Thaw ws (trace) x2, repetition 2 failed: clone c-2 (2 of 2) failed: QEMU exited");
    }

    @Test
    void onlyThawsMethodsAndValidCountsAreAccepted() {
        var guest = new Workload.Wsbench(new DemoGuest(1024, 640, 64));
        assertThatThrownBy(() -> new ClonesBenchmark.Config(guest, List.of(1, 2), List.of(RestoreMethod.MAPPED_FILE), 1, CacheState.WARM,
                Duration.ofSeconds(5), Duration.ofSeconds(3), Duration.ofSeconds(10), Path.of("w")))
                .hasMessageContaining("expected a Thaw restore method, actual mapped-file");
        assertThatThrownBy(() -> new ClonesBenchmark.Config(guest, List.of(0), List.of(RestoreMethod.THAW_LAZY), 1, CacheState.WARM,
                Duration.ofSeconds(5), Duration.ofSeconds(3), Duration.ofSeconds(10), Path.of("w"))).hasMessageContaining("expected");
        assertThatThrownBy(() -> new ClonesBenchmark.Config(guest, List.of(1), List.of(RestoreMethod.THAW_LAZY), 0, CacheState.WARM,
                Duration.ofSeconds(5), Duration.ofSeconds(3), Duration.ofSeconds(10), Path.of("w"))).hasMessageContaining("repetitions: expected at least 1");
    }
}
