package dev.thaw.cluster;

/**
 * What member {@code from} sent member {@code to}: a number of Ethernet frames and their bytes.
 * The same record carries the frames in flight at a cluster's cut and the traffic the switch
 * recorded before it; several records of one pair add up.
 */
public record Traffic(String from, String to, long frames, long bytes) {
    public Traffic {
        requireName("traffic sender", from);
        requireName("traffic receiver", to);
        if (from.equals(to)) {
            throw new IllegalArgumentException("traffic: expected two different members, actual " + from + " -> " + to);
        }
        if (frames < 0 || bytes < 0) {
            throw new IllegalArgumentException("traffic " + from + " -> " + to + ": expected frames and bytes >= 0, actual "
                    + frames + " frames, " + bytes + " bytes");
        }
        // A frame has at least one byte and bytes come in frames: one without the other is a broken log.
        if ((frames == 0) != (bytes == 0) || bytes < frames) {
            throw new IllegalArgumentException("traffic " + from + " -> " + to + ": expected bytes >= frames, both zero or neither, actual "
                    + frames + " frames, " + bytes + " bytes");
        }
    }

    static void requireName(String what, String name) {
        if (name == null || name.isBlank()) {
            throw new IllegalArgumentException(what + ": expected a member name, actual " + (name == null ? "null" : "'" + name + "'"));
        }
    }

    /** This pair's traffic and {@code other}'s (of the same pair) together. */
    public Traffic plus(Traffic other) {
        if (!from.equals(other.from) || !to.equals(other.to)) {
            throw new IllegalArgumentException("traffic: expected " + from + " -> " + to + ", actual " + other.from + " -> " + other.to);
        }
        return new Traffic(from, to, Math.addExact(frames, other.frames), Math.addExact(bytes, other.bytes));
    }
}
