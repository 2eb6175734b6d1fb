package dev.thaw.cluster.net;

import dev.thaw.cluster.Traffic;
import java.time.Instant;

/**
 * What the switch forwarded (or held) from member {@code from} to member {@code to} since it
 * opened: frames, their bytes, and when the last one was read. A flooded frame counts once for
 * every member it was offered to; frames the switch dropped count too (the sender sent them).
 */
public record PairRecord(String from, String to, long frames, long bytes, Instant last) {
    public Traffic traffic() {
        return new Traffic(from, to, frames, bytes);
    }
}
