package dev.thaw.migration;

import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.BitSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Parses the return path ({@code be16 type, be16 length, payload}) that the destination QEMU
 * writes on the migration connection. One reader thread owns it.
 */
public final class ReturnPathReader {
    /** QEMU's own source rejects longer messages. */
    static final int MAX_LENGTH = 512;
    private final InputStream in;
    private final byte[] buffer = new byte[MAX_LENGTH];
    private final Map<String, RamBlock> blocks = new LinkedHashMap<>();
    private String lastBlock;
    private long offset;

    /** A reader that knows no RAM block: a received bitmap (postcopy recovery only) is then a protocol error. */
    public ReturnPathReader(InputStream in) {
        this(in, List.of());
    }

    /** @param blocks the destination's RAM blocks: a received bitmap must name one and have its size */
    public ReturnPathReader(InputStream in, List<RamBlock> blocks) {
        this.in = in;
        for (RamBlock b : blocks) this.blocks.put(b.name(), b);
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
            case Wire.RP_RECV_BITMAP -> receivedBitmap(at, length);
            case Wire.RP_RESUME_ACK -> {
                fixed(at, "RESUME_ACK", length, 4);
                if (be32(0) != Wire.RESUME_ACK_VALUE) {
                    throw new StreamFormatException(at, "return path RESUME_ACK: expected value " + Wire.RESUME_ACK_VALUE + ", actual " + be32(0));
                }
                yield new ReturnPathMessage.ResumeAck(be32(0));
            }
            default -> new ReturnPathMessage.Other(type, length);
        };
    }

    /**
     * RECV_BITMAP: a counted block name as the message, then outside it be64 size, the bitmap (little-endian 64-bit words,
     * size rounded up to 8 bytes) and be64 {@link Wire#RECV_BITMAP_ENDING} (QEMU's ramblock_recv_bitmap_send).
     */
    private ReturnPathMessage.ReceivedBitmap receivedBitmap(long at, int length) throws IOException {
        if (length < 2 || (buffer[0] & 0xFF) != length - 1) {
            throw new StreamFormatException(at, "return path RECV_BITMAP of " + length + " bytes: expected 1 + the block name's length");
        }
        String name = new String(buffer, 1, length - 1, StandardCharsets.ISO_8859_1);
        RamBlock block = blocks.get(name);
        if (block == null) {
            throw new StreamFormatException(at, "return path RECV_BITMAP for unknown RAM block '" + name + "': expected one of "
                    + blocks.keySet());
        }
        int pages = block.pageCount();
        long expectedBytes = ((pages + 63L) / 64) * 8;
        readFully(8);
        long size = be64(0);
        offset += 8;
        if (size != expectedBytes) {
            throw new StreamFormatException(at, "return path RECV_BITMAP of " + name + " (" + pages + " pages): expected a bitmap of "
                    + expectedBytes + " bytes, actual " + Long.toUnsignedString(size));
        }
        byte[] bitmap = new byte[(int) expectedBytes];
        readFully(bitmap, bitmap.length);
        offset += bitmap.length;
        readFully(8);
        long ending = be64(0);
        offset += 8;
        if (ending != Wire.RECV_BITMAP_ENDING) {
            throw new StreamFormatException(at, String.format("return path RECV_BITMAP of %s: expected the ending 0x%016x, actual 0x%016x",
                    name, Wire.RECV_BITMAP_ENDING, ending));
        }
        // Little-endian words are bit i at byte i/8, bit i%8: BitSet's own byte order. Bits past the block's end carry
        // nothing (QEMU never sets them): dropped rather than trusted.
        BitSet received = BitSet.valueOf(bitmap);
        if (received.length() > pages) received.clear(pages, received.length());
        return new ReturnPathMessage.ReceivedBitmap(name, pages, received);
    }

    private boolean fixed(long at, String name, int length, int expected) {
        if (length != expected) {
            throw new StreamFormatException(at, "return path " + name + ": expected " + expected + " bytes, actual " + length);
        }
        return true;
    }

    private void readFully(int n) throws IOException {
        readFully(buffer, n);
    }

    private void readFully(byte[] into, int n) throws IOException {
        int done = 0;
        while (done < n) {
            int r = in.read(into, done, n - done);
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
