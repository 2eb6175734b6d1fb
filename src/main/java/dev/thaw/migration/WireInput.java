package dev.thaw.migration;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;

/** Big-endian reads from a stream, tracking the byte offset for error messages. */
final class WireInput {
    private final InputStream in;
    private final byte[] buffer;
    private int position;
    private int limit;
    private long consumedBefore; // bytes consumed before buffer[0]

    WireInput(InputStream in, int bufferBytes) {
        this.in = in;
        this.buffer = new byte[bufferBytes];
    }

    /** Offset of the next byte to be read. */
    long offset() {
        return consumedBefore + position;
    }

    private boolean fill(int needed) {
        if (limit - position >= needed) return true;
        if (position > 0) {
            System.arraycopy(buffer, position, buffer, 0, limit - position);
            consumedBefore += position;
            limit -= position;
            position = 0;
        }
        try {
            while (limit < needed) {
                int n = in.read(buffer, limit, buffer.length - limit);
                if (n < 0) return false;
                limit += n;
            }
        } catch (IOException e) {
            throw new UncheckedIOException("reading the migration stream at offset " + offset() + ": " + e.getMessage(), e);
        }
        return true;
    }

    private void require(int bytes, String what) {
        if (!fill(bytes)) {
            throw new StreamFormatException(offset(), "truncated: expected " + bytes + " more bytes (" + what + "), actual "
                    + (limit - position) + " before the end of the stream");
        }
    }

    /** The next byte without consuming it, or -1 at the end of the stream. */
    int peek() {
        return fill(1) ? buffer[position] & 0xFF : -1;
    }

    int u8(String what) {
        require(1, what);
        return buffer[position++] & 0xFF;
    }

    int be16(String what) {
        require(2, what);
        int v = ((buffer[position] & 0xFF) << 8) | (buffer[position + 1] & 0xFF);
        position += 2;
        return v;
    }

    int be32(String what) {
        require(4, what);
        int v = ((buffer[position] & 0xFF) << 24) | ((buffer[position + 1] & 0xFF) << 16)
                | ((buffer[position + 2] & 0xFF) << 8) | (buffer[position + 3] & 0xFF);
        position += 4;
        return v;
    }

    long be64(String what) {
        long hi = be32(what) & 0xFFFFFFFFL;
        long lo = be32(what) & 0xFFFFFFFFL;
        return (hi << 32) | lo;
    }

    /** A counted string: u8 length, then that many bytes. */
    String countedString(String what) {
        int length = u8(what + " length");
        return new String(bytes(length, what), StandardCharsets.ISO_8859_1);
    }

    byte[] bytes(int length, String what) {
        byte[] out = new byte[length];
        read(out, 0, length, what);
        return out;
    }

    void read(byte[] target, int targetOffset, int length, String what) {
        int done = 0;
        while (done < length) {
            int chunk = Math.min(length - done, buffer.length);
            require(chunk, what);
            System.arraycopy(buffer, position, target, targetOffset + done, chunk);
            position += chunk;
            done += chunk;
        }
    }

    /**
     * Makes {@code length} bytes available in the internal buffer and returns their index there;
     * valid until the next read. Avoids a copy for page payloads.
     */
    int window(int length, String what) {
        require(length, what);
        int at = position;
        position += length;
        return at;
    }

    byte[] buffer() {
        return buffer;
    }

    /** Everything up to the end of the stream, at most {@code maxBytes}. */
    byte[] rest(int maxBytes, String what) {
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        long start = offset();
        while (fill(1)) {
            out.write(buffer, position, limit - position);
            position = limit;
            if (out.size() > maxBytes) {
                throw new StreamFormatException(start, what + ": expected at most " + maxBytes + " bytes, actual more");
            }
        }
        return out.toByteArray();
    }
}
