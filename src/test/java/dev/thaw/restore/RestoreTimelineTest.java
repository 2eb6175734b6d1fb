package dev.thaw.restore;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.restore.RestoreEventLog.Type;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class RestoreTimelineTest {
    @Test
    void summarizesAnEventLogAndSurvivesTheRoundTripToDisk(@TempDir Path dir) throws Exception {
        RestoreEventLog log = new RestoreEventLog();
        long ms = 1_000_000;
        log.add(Type.QEMU_READY, 0, 0, 50 * ms);
        log.add(Type.PREFETCH_SENT, 0, 256, 60 * ms);
        log.add(Type.PACKAGE_SENT, 0, 0, 70 * ms);
        log.add(Type.REQUEST, 0, 10, 100 * ms);
        log.add(Type.REQUEST, 1, 11, 100 * ms + 20_000);
        log.add(Type.DEMAND_SENT, 0, 2, 100 * ms + 50_000);
        log.add(Type.BACKGROUND_SENT, 0, 16, 120 * ms);
        log.add(Type.DUPLICATE_REQUEST, 0, 10, 130 * ms);
        log.add(Type.REQUEST, 0, 4_000_000_000L, 290 * ms);
        log.add(Type.DEMAND_SENT, 0, 4, 290 * ms + 100_000);
        log.add(Type.BACKGROUND_SENT, 0, 16, 1120 * ms);
        log.add(Type.RUNNING, 0, 0, 80 * ms);
        log.add(Type.EOF_SENT, 0, 0, 1200 * ms);
        log.add(Type.COMPLETED, 0, 0, 1300 * ms);
        Path file = dir.resolve("x.events");
        log.write(file);
        RestoreEventLog back = RestoreEventLog.read(file);
        assertThat(back.size()).isEqualTo(log.size());
        assertThat(back.get(8).value()).as("page numbers above 2^31").isEqualTo(4_000_000_000L);

        RestoreTimeline t = RestoreTimeline.of(back);
        assertThat(t.runningSeconds()).isEqualTo(0.08);
        assertThat(t.completedSeconds()).isEqualTo(1.3);
        assertThat(t.prefetchedPages()).isEqualTo(256);
        assertThat(t.demandFaults()).isEqualTo(3);
        assertThat(t.duplicateRequests()).isEqualTo(1);
        assertThat(t.demandPagesSent()).isEqualTo(6);
        assertThat(t.backgroundPages()).isEqualTo(32);
        assertThat(t.backgroundPagesPerSecond()).isEqualTo(32.0);
        assertThat(t.serviceMaxMicros()).isEqualTo(100.0);
        assertThat(t.serviceMedianMicros()).isEqualTo(50.0);
        assertThat(t.faultsPer100Ms()).containsExactly(2, 0, 1);

        Files.write(file, new byte[] {'T', 'H', 'A', 'W', 'E', 'V', 'T', '1', 99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> RestoreEventLog.read(file)).hasMessageContaining("actual 99");
    }

    /**
     * Found by fuzzing (restore-event-log): a fault logged 2^62 ns after the start made the histogram's length wrap to a
     * negative int (NegativeArraySizeException in {@code thaw timeline}); a negative time is refused as the log is read.
     */
    @Test
    void aFaultCenturiesLaterKeepsTheHistogramBoundedAndNegativeTimesAreRefused(@TempDir Path dir) throws Exception {
        RestoreEventLog log = new RestoreEventLog();
        log.add(Type.RUNNING, 0, 0, 1_000_000);
        log.add(Type.REQUEST, 0, 3, 1L << 62);
        log.add(Type.REQUEST, 0, 4, 2_000_000);
        RestoreTimeline t = RestoreTimeline.of(log);
        assertThat(t.demandFaults()).isEqualTo(2);
        assertThat(t.faultsPer100Ms()).hasSize(10_000).startsWith(1);

        RestoreEventLog negative = new RestoreEventLog();
        negative.add(Type.REQUEST, 0, 3, -5);
        Path file = dir.resolve("negative.events");
        negative.write(file);
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> RestoreEventLog.read(file)).isInstanceOf(java.io.IOException.class)
                .hasMessageContaining("negative.events at offset 16").hasMessageContaining("actual -5");
    }
}
