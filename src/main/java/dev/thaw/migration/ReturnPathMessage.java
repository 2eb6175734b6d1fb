package dev.thaw.migration;

/** A message the destination QEMU sends back on the return path. */
public sealed interface ReturnPathMessage {
    /** The destination is done (status 0) or failed (non-zero); its last message. */
    record Shut(int status) implements ReturnPathMessage {}

    /** The answer to PING(value). */
    record Pong(int value) implements ReturnPathMessage {}

    /**
     * A request for the host page at {@code offset} of {@code blockName}, {@code length} bytes
     * (one host page). REQ_PAGES without a name reuses the block of the latest REQ_PAGES_ID;
     * the reader fills it in.
     */
    record PageRequest(String blockName, long offset, int length, long receivedNanos) implements ReturnPathMessage {}

    /**
     * Postcopy recovery: the pages of {@code blockName} that the destination has placed (bit {@code i}: target page {@code i}),
     * the answer to RECV_BITMAP. The receiver owns {@code received}.
     */
    record ReceivedBitmap(String blockName, int pageCount, java.util.BitSet received) implements ReturnPathMessage {}

    /** Postcopy recovery: the destination took POSTCOPY_RESUME and is active again. */
    record ResumeAck(int value) implements ReturnPathMessage {}

    /** A type this Thaw does not use (SWITCHOVER_ACK, ...): logged and ignored. */
    record Other(int type, int length) implements ReturnPathMessage {}
}
