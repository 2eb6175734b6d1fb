package dev.thaw.qemu;

import com.fasterxml.jackson.databind.JsonNode;

/**
 * An asynchronous QMP event (STOP, RESUME, MIGRATION, SHUTDOWN, ...).
 *
 * @param receivedNanos host {@link System#nanoTime()} when Thaw read it
 * @param qemuMicros    QEMU's own wall-clock timestamp, in microseconds since the epoch
 */
public record QmpEvent(String name, JsonNode data, long receivedNanos, long qemuMicros) {
    public boolean is(String eventName) {
        return name.equals(eventName);
    }

    /** A string field of {@code data}, or "" when absent. */
    public String dataText(String field) {
        JsonNode value = data == null ? null : data.get(field);
        return value == null ? "" : value.asText();
    }
}
