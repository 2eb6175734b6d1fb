package dev.thaw.measure;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.guest.DemoGuest;
import dev.thaw.objectstore.ImageCache;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The remote study's tables and configuration checks: pure, no QEMU, no server. */
class RemoteRestoreBenchmarkTest {
    private static RemoteRestoreBenchmark.Sample sample(Integer rtt, int rep, double open, double running, Double stallTtr, long gets) {
        ImageCache.Phases phases = rtt == null ? null : new ImageCache.Phases(0.001, 0.01 * rep, 0.02, 0.03);
        return new RemoteRestoreBenchmark.Sample(rtt, rep, open, rtt == null ? 0 : 0.002, phases, running, running + 10, null, stallTtr, 0.7,
                3, 200, 500, gets, rtt == null ? 0 : 2, rtt == null ? 0 : 100L << 20, rtt == null ? 0 : 1L << 19, true, null);
    }

    @Test
    void theTablesGiveMinAndMedianPerSourceAndWhereTheOpensWent() {
        var failed = new RemoteRestoreBenchmark.Sample(10, 2, 0, 0, null, 0, 0, null, null, 0, 0, 0, 0, 0, 0, 0, 0, false,
                "cannot reach the object store");
        var r = new RemoteRestoreBenchmark.Report("wsbench", 1024, 640, 64, "tcg", "7.2.22", 2, 5, 1e6, 700L << 20, "ws", 6.5,
                List.of(sample(null, 0, 0.03, 0.15, 0.16, 0), sample(10, 0, 0.2, 0.4, 2.0, 100), sample(null, 1, 0.05, 0.19, 0.2, 0),
                        sample(10, 1, 0.3, 0.5, null, 110), failed));
        String table = RemoteRestoreBenchmark.markdown(r);
        assertThat(table).contains("| local | 2 | 0.03 / 0.04 | 0.15 / 0.17 | 10.17 | 0.18 | > 5 | 0.70x | 3 | 200 / 500 | 0 (0) | 0.0 (0.00) |");
        // s3:// +10 ms: one of three failed; a stall TTR never reached counts as infinite in the median of two
        assertThat(table).contains("| s3:// +10 ms | 3 (1 failed) | 0.20 / 0.25 | 0.40 / 0.45 | 10.45 | > 5 | > 5 | 0.70x | 3 | 200 / 500 | 105 (2) | 100.0 (0.50) |");
        // the opens: client, lock, manifest (0.00 and 0.01), files, indexes; the rest of the open: 0.147 and 0.237, median 0.192
        assertThat(table).contains("| s3:// +10 ms | 0.002 | 0.001 | 0.005 | 0.020 | 0.030 | 0.192 | 2 of 2 |");
        assertThat(table).contains("- s3:// +10 ms, repetition 3 failed: cannot reach the object store");
    }

    @Test
    void roundTripTimesAndRepetitionsAreChecked() {
        var guest = new Workload.Wsbench(new DemoGuest(1024, 640, 64));
        assertThatThrownBy(() -> new RemoteRestoreBenchmark.Config(guest, List.of(0, -1), 5, Duration.ofSeconds(5), Duration.ofSeconds(5),
                Duration.ofSeconds(10), Path.of("w"))).hasMessageContaining("expected 0 to 1000 ms, actual -1");
        assertThatThrownBy(() -> new RemoteRestoreBenchmark.Config(guest, List.of(10), 0, Duration.ofSeconds(5), Duration.ofSeconds(5),
                Duration.ofSeconds(10), Path.of("w"))).hasMessageContaining("repetitions: expected at least 1, actual 0");
    }
}
