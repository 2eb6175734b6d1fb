package dev.thaw.util;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Duration;
import java.time.Instant;
import org.junit.jupiter.api.Test;

class ProcessStartTest {
    private static final Instant NOW = Instant.ofEpochSecond(1_796_100_000L, 500_000_000);

    @Test
    void theStartIsNowMinusTheUptimeSinceTheStartTick() {
        // Field 22 (starttime) = 12345 ticks = 123.45 s after boot; uptime 200.00 s: the process is 76.55 s old.
        String stat = "4242 (java) S 1 4242 4242 0 -1 4194560 100 0 0 0 5 6 0 0 20 0 30 0 12345 1000 200 18446744073709551615";
        assertThat(ProcessStart.startOf(stat, "200.00 390.12\n", NOW)).isEqualTo(NOW.minus(Duration.ofMillis(76_550)));
    }

    @Test
    void aNameWithSpacesAndParenthesesDoesNotShiftTheFields() {
        String stat = "7 (my (odd) name) R 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 100 1000 200";
        assertThat(ProcessStart.startOf(stat, "1.50 0.1", NOW)).isEqualTo(NOW.minus(Duration.ofMillis(500)));
    }

    @Test
    void aMalformedStatSaysWhatItExpected() {
        assertThatThrownBy(() -> ProcessStart.startOf("4242 java S 1", "1.0 1.0", NOW)).hasMessageContaining("expected '(comm)'");
        assertThatThrownBy(() -> ProcessStart.startOf("4242 (java) S 1 2 3", "1.0 1.0", NOW))
                .hasMessageContaining("expected at least 22 fields, actual 6");
        String late = "7 (x) R 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 500 1000 200";
        assertThatThrownBy(() -> ProcessStart.startOf(late, "1.00 0.1", NOW)).hasMessageContaining("expected a start (500 ticks) before the uptime");
    }

    /**
     * A child started between two readings of the clock started between them, to the tick: what the JDK's start instant misses by
     * the boot time's fraction of a second.
     */
    @Test
    void aChildStartedNowStartedNow() throws Exception {
        Instant before = Instant.now();
        Process child = new ProcessBuilder("sleep", "5").start();
        Instant after = Instant.now();
        try {
            Instant start = ProcessStart.of(child.pid()).orElseThrow();
            // One tick (10 ms) of resolution each way, and the uptime's own 10 ms.
            assertThat(start).isBetween(before.minusMillis(25), after.plusMillis(25));
        } finally {
            child.destroyForcibly().waitFor();
        }
        assertThat(ProcessStart.self()).isPresent();
        assertThat(ProcessStart.of(Long.MAX_VALUE)).isEmpty();
    }
}
