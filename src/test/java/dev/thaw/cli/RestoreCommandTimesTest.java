package dev.thaw.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import dev.thaw.qemu.QmpEvent;
import java.time.Instant;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;

class RestoreCommandTimesTest {
    private static final Instant START = Instant.ofEpochSecond(1_796_000_000L, 250_000_000);
    private static final long START_MICROS = 1_796_000_000_250_000L;

    private static QmpEvent event(String name, long qemuMicros) {
        return new QmpEvent(name, JsonNodeFactory.instance.objectNode(), 0, qemuMicros);
    }

    @Test
    void theFirstResumeCountsFromTheProcessStart() {
        List<QmpEvent> events = List.of(event("MIGRATION", START_MICROS + 100_000), event("RESUME", START_MICROS + 1_014_000),
                event("STOP", START_MICROS + 5_000_000), event("RESUME", START_MICROS + 6_000_000));
        assertThat(RestoreCommand.sinceCommandStart(events, Optional.of(START))).hasValueSatisfying(s -> assertThat(s).isCloseTo(1.014,
                org.assertj.core.data.Offset.offset(1e-9)));
    }

    @Test
    void noResumeNoStartOrAResumeBeforeTheStartGiveNothing() {
        assertThat(RestoreCommand.sinceCommandStart(List.of(event("MIGRATION", START_MICROS + 1)), Optional.of(START))).isEmpty();
        assertThat(RestoreCommand.sinceCommandStart(List.of(event("RESUME", START_MICROS + 1)), Optional.empty())).isEmpty();
        assertThat(RestoreCommand.sinceCommandStart(List.of(event("RESUME", START_MICROS - 1)), Optional.of(START))).isEmpty();
    }
}
