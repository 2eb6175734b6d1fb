package dev.thaw.qemu;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;

/**
 * One line QEMU sent on a QMP connection, parsed as {@link QmpClient}'s reader takes it; and the checks of a greeting and of
 * an answer. Pure (no socket), so that what QEMU sends can be fuzzed directly: every line gives a message (an unusable one
 * is logged and skipped), and every answer either gives its value or a {@link QmpException} naming the command.
 */
public sealed interface QmpMessage {
    /** QEMU's greeting, {@code {"QMP": {"version": ..., "capabilities": [...]}}}. */
    record Greeting(JsonNode message) implements QmpMessage {}

    record Event(QmpEvent event) implements QmpMessage {}

    /** The answer to the call with this {@code id}: its {@code return} or {@code error}, see {@link #value}. */
    record Answer(long id, JsonNode message) implements QmpMessage {}

    /** Not JSON, or JSON that is neither a greeting, an event nor an answer: the reader logs it and goes on. */
    record Unusable(String why) implements QmpMessage {}

    /** {@code text}: one line, without its newline. */
    static QmpMessage parse(String text, long receivedNanos) {
        JsonNode message;
        try {
            message = QmpClient.JSON.readTree(text);
        } catch (JsonProcessingException e) {
            return new Unusable("not JSON (" + e.getOriginalMessage() + ")");
        }
        if (message == null || !message.isObject()) return new Unusable("expected a JSON object, actual " + (message == null ? "nothing" : message.getNodeType()));
        if (message.has("QMP")) return new Greeting(message);
        if (message.has("event")) {
            JsonNode ts = message.path("timestamp");
            long micros = ts.path("seconds").asLong() * 1_000_000 + ts.path("microseconds").asLong();
            return new Event(new QmpEvent(message.get("event").asText(), message.get("data"), receivedNanos, micros));
        }
        if (message.has("id")) return new Answer(message.get("id").asLong(), message);
        return new Unusable("no id");
    }

    /** Whether a greeting offers out-of-band execution; throws if it is not a greeting as documented. */
    static boolean offersOob(String peer, JsonNode hello) {
        JsonNode qmp = hello.get("QMP");
        if (qmp == null || !qmp.has("version")) {
            throw new QmpException.ProtocolViolation(peer, "greeting", "expected {\"QMP\": {\"version\": ...}}, actual " + hello);
        }
        for (JsonNode cap : qmp.path("capabilities")) {
            if ("oob".equals(cap.asText())) return true;
        }
        return false;
    }

    /** The {@code return} value of an answer to {@code command}; QEMU's {@code error} answer is thrown. */
    static JsonNode value(String peer, String command, JsonNode answer) {
        JsonNode error = answer.get("error");
        if (error != null) {
            throw new QmpException.CommandFailed(peer, command, error.path("class").asText("?"), error.path("desc").asText("?"));
        }
        JsonNode ret = answer.get("return");
        if (ret == null) {
            throw new QmpException.ProtocolViolation(peer, command, "expected 'return' or 'error' in the answer, actual " + answer);
        }
        return ret;
    }
}
