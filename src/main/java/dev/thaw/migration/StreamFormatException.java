package dev.thaw.migration;

/** The stream is not what QEMU's format allows, or uses a feature Thaw does not carry; names the byte offset. */
public final class StreamFormatException extends RuntimeException {
    private final long offset;

    public StreamFormatException(long offset, String message) {
        super("migration stream offset " + offset + ": " + message);
        this.offset = offset;
    }

    public StreamFormatException(long offset, String message, Throwable cause) {
        super("migration stream offset " + offset + ": " + message, cause);
        this.offset = offset;
    }

    public long offset() {
        return offset;
    }
}
