package dev.thaw.migration;

import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;

/**
 * Parses the return path ({@code be16 type, be16 length, payload}) that the destination QEMU
 * writes on the migration connection. One reader thread owns it.
 */
public final class ReturnPathReader {
    /** QEMU's own source rejects longer messages. */
    static final int MAX_LENGTH = 512;
    private final InputStream in;
    private final byte[] buffer = new byte[MAX_LENGTH];
    private String lastBlock;
    private long offset;

    public ReturnPathReader(InputStream in) {
        this.in = in;
    }

    /** The next message; throws {@link EOFException} at a clean end of the connection. */
    public ReturnPathMessage next() throws IOException {
        int first = in.read();
        if (first < 0) throw new EOFException("the destination closed its return path");
        long at = offset;
        readFully(3);
        int type = (first << 8) | (buffer[0] & 0xFF);
        int length = ((buffer[1] & 0xFF) << 8) | (buffer[2] & 0xFF);
        offset += 4;
        if (length > MAX_LENGTH) {
            throw new StreamFormatException(at, "return path: expected a message of at most " + MAX_LENGTH + " bytes, actual " + length);
        }
        readFully(length);
        offset += length;
        return switch (type) {
            case Wire.RP_SHUT -> new ReturnPathMessage.Shut(fixed(at, "SHUT", length, 4) ? be32(0) : 0);
            case Wire.RP_PONG -> new ReturnPathMessage.Pong(fixed(at, "PONG", length, 4) ? be32(0) : 0);
            case Wire.RP_REQ_PAGES -> {
                fixed(at, "REQ_PAGES", length, 12);
                if (lastBlock == null) {
                    throw new StreamFormatException(at, "return path: REQ_PAGES before any REQ_PAGES_ID named a block");
                }
                yield new ReturnPathMessage.PageRequest(lastBlock, be64(0), be32(8), System.nanoTime());
            }
            case Wire.RP_REQ_PAGES_ID -> {
                if (length < 13 || (buffer[12] & 0xFF) != length - 13) {
                    throw new StreamFormatException(at, "return path: REQ_PAGES_ID of " + length + " bytes: expected 13 + the block name's length");
                }
                lastBlock = new String(buffer, 13, length - 13, StandardCharsets.ISO_8859_1);
                yield new ReturnPathMessage.PageRequest(lastBlock, be64(0), be32(8), System.nanoTime());
            }
            default -> new ReturnPathMessage.Other(type, length);
        };
    }

    private boolean fixed(long at, String name, int length, int expected) {
        if (length != expected) {
            throw new StreamFormatException(at, "return path " + name + ": expected " + expected + " bytes, actual " + length);
        }
        return true;
    }

    private void readFully(int n) throws IOException {
        int done = 0;
        while (done < n) {
            int r = in.read(buffer, done, n - done);
            if (r < 0) throw new EOFException("the return path ended inside a message");
            done += r;
        }
    }

    private int be32(int at) {
        return ((buffer[at] & 0xFF) << 24) | ((buffer[at + 1] & 0xFF) << 16) | ((buffer[at + 2] & 0xFF) << 8) | (buffer[at + 3] & 0xFF);
    }

    private long be64(int at) {
        return ((long) be32(at) << 32) | (be32(at + 4) & 0xFFFFFFFFL);
    }
}
