package dev.thaw.migration;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * Writes a migration stream toward a destination QEMU: the saved header and configuration, commands,
 * the RAM section and its page records, the saved device state, EOF and the trailer. It tracks the
 * last block named so that page records of the same block carry the CONTINUE flag, as QEMU's own
 * writer does. Not thread-safe: one writer thread owns it.
 */
public final class StreamWriter {
    private final OutputStream out;
    private final byte[] scratch = new byte[16];
    private final List<RamBlock> blocks;
    private int lastBlock = -1;
    private long bytesWritten;

    /** @param out a buffered stream; {@link #flush} pushes bytes to the destination */
    public StreamWriter(OutputStream out, List<RamBlock> blocks) {
        this.out = out;
        this.blocks = List.copyOf(blocks);
    }

    public long bytesWritten() {
        return bytesWritten;
    }

    public void raw(byte[] bytes) throws IOException {
        raw(bytes, 0, bytes.length);
    }

    public void raw(byte[] bytes, int offset, int length) throws IOException {
        out.write(bytes, offset, length);
        bytesWritten += length;
    }

    private void u8(int v) throws IOException {
        out.write(v);
        bytesWritten++;
    }

    private void be16(int v) throws IOException {
        scratch[0] = (byte) (v >>> 8);
        scratch[1] = (byte) v;
        raw(scratch, 0, 2);
    }

    private void be32(int v) throws IOException {
        scratch[0] = (byte) (v >>> 24);
        scratch[1] = (byte) (v >>> 16);
        scratch[2] = (byte) (v >>> 8);
        scratch[3] = (byte) v;
        raw(scratch, 0, 4);
    }

    private void be64(long v) throws IOException {
        be32((int) (v >>> 32));
        be32((int) v);
    }

    private void countedString(String s) throws IOException {
        byte[] bytes = s.getBytes(StandardCharsets.ISO_8859_1);
        u8(bytes.length);
        raw(bytes);
    }

    public void command(int command, byte[] payload) throws IOException {
        u8(Wire.COMMAND);
        be16(command);
        be16(payload.length);
        raw(payload);
    }

    /** RAM SECTION_START with the block list; page sizes only when postcopy was advised and a block differs from 4 KiB. */
    public void ramStart(int sectionId, boolean postcopyAdvised) throws IOException {
        u8(Wire.SECTION_START);
        be32(sectionId);
        countedString(Wire.RAM_SECTION);
        be32(0);
        be32(Wire.RAM_SECTION_VERSION);
        long total = 0;
        for (RamBlock b : blocks) total += b.usedByteSize();
        be64(total | Wire.RAM_MEM_SIZE);
        for (RamBlock b : blocks) {
            countedString(b.name());
            be64(b.usedByteSize());
            if (postcopyAdvised && b.pageByteSize() != Wire.TARGET_PAGE_BYTES) {
                be64(b.pageByteSize());
            }
        }
        be64(Wire.RAM_EOS);
        footer(sectionId);
    }

    /** Opens a RAM SECTION_PART (or SECTION_END when {@code last}); page records follow, then {@link #closeRamSection}. */
    public void openRamSection(int sectionId, boolean last) throws IOException {
        u8(last ? Wire.SECTION_END : Wire.SECTION_PART);
        be32(sectionId);
    }

    public void closeRamSection(int sectionId) throws IOException {
        be64(Wire.RAM_EOS);
        footer(sectionId);
    }

    private void footer(int sectionId) throws IOException {
        u8(Wire.SECTION_FOOTER);
        be32(sectionId);
    }

    private void recordHeader(int block, int pageIndex, int kind) throws IOException {
        long offset = (long) pageIndex * Wire.TARGET_PAGE_BYTES;
        if (block == lastBlock) {
            be64(offset | kind | Wire.RAM_CONTINUE);
        } else {
            be64(offset | kind);
            countedString(blocks.get(block).name());
            lastBlock = block;
        }
    }

    /** A PAGE record: 4096 bytes from {@code data[offset..]}. */
    public void page(int block, int pageIndex, byte[] data, int offset) throws IOException {
        recordHeader(block, pageIndex, Wire.RAM_PAGE);
        raw(data, offset, Wire.TARGET_PAGE_BYTES);
    }

    /** A ZERO record (fill byte 0: QEMU 10 rejects any other). */
    public void zeroPage(int block, int pageIndex) throws IOException {
        recordHeader(block, pageIndex, Wire.RAM_ZERO);
        u8(0);
    }

    /**
     * The end of a postcopy preempt channel: a bare EOS record (no section around it). QEMU 7.2's preempt reader stops only on
     * this; without it the destination never sends SHUT.
     */
    public void preemptEnd() throws IOException {
        be64(Wire.RAM_EOS);
    }

    public void eof() throws IOException {
        u8(Wire.EOF);
    }

    /** The VMDESCRIPTION trailer that a precopy load reads after EOF. */
    public void vmDescription(byte[] json) throws IOException {
        u8(Wire.VMDESCRIPTION);
        be32(json.length);
        raw(json);
    }

    /** OPEN_RETURN_PATH: the destination starts answering on the same connection. */
    public void openReturnPath() throws IOException {
        command(Wire.CMD_OPEN_RETURN_PATH, new byte[0]);
    }

    public void ping(int value) throws IOException {
        command(Wire.CMD_PING, new byte[] {(byte) (value >>> 24), (byte) (value >>> 16), (byte) (value >>> 8), (byte) value});
    }

    /** POSTCOPY_ADVISE with the OR of all blocks' page sizes and the target page size. */
    public void postcopyAdvise() throws IOException {
        long summary = 0;
        for (RamBlock b : blocks) summary |= b.pageByteSize();
        java.nio.ByteBuffer payload = java.nio.ByteBuffer.allocate(16).putLong(summary).putLong(Wire.TARGET_PAGE_BYTES);
        command(Wire.CMD_POSTCOPY_ADVISE, payload.array());
    }

    /** Most ranges one DISCARD command can carry (its length is 16 bits). */
    public static int maxDiscardRanges(String blockName) {
        return (0xFFFF - 3 - blockName.length()) / 16;
    }

    /**
     * POSTCOPY_RAM_DISCARD for one block: u8 version 0, counted block name, a NUL byte, then
     * (be64 start, be64 length) byte ranges. At most {@link #maxDiscardRanges} ranges.
     */
    public void discard(int block, long[] startBytes, long[] lengthBytes, int from, int count) throws IOException {
        String name = blocks.get(block).name();
        if (count < 1 || count > maxDiscardRanges(name)) {
            throw new IllegalArgumentException("discard: expected 1.." + maxDiscardRanges(name) + " ranges, actual " + count);
        }
        byte[] nameBytes = name.getBytes(StandardCharsets.ISO_8859_1);
        java.nio.ByteBuffer payload = java.nio.ByteBuffer.allocate(3 + nameBytes.length + 16 * count);
        payload.put((byte) 0).put((byte) nameBytes.length).put(nameBytes).put((byte) 0);
        for (int i = from; i < from + count; i++) payload.putLong(startBytes[i]).putLong(lengthBytes[i]);
        command(Wire.CMD_POSTCOPY_RAM_DISCARD, payload.array());
    }

    /** PACKAGED: the length, then the package bytes (an embedded stream the destination reads whole first). */
    public void packaged(byte[] pkg) throws IOException {
        command(Wire.CMD_PACKAGED, new byte[] {(byte) (pkg.length >>> 24), (byte) (pkg.length >>> 16), (byte) (pkg.length >>> 8),
                (byte) pkg.length});
        raw(pkg);
    }

    /**
     * RECV_BITMAP: postcopy recovery asks the destination which pages of the block it has placed; it answers on the return
     * path ({@link ReturnPathMessage.ReceivedBitmap}). Only on a connection made after {@code migrate-recover}.
     */
    public void recvBitmap(int block) throws IOException {
        byte[] name = blocks.get(block).name().getBytes(StandardCharsets.ISO_8859_1);
        byte[] payload = new byte[1 + name.length];
        payload[0] = (byte) name.length;
        System.arraycopy(name, 0, payload, 1, name.length);
        command(Wire.CMD_RECV_BITMAP, payload);
    }

    /** POSTCOPY_RESUME: the recovered source is ready; the destination answers RESUME_ACK and asks for its missing pages again. */
    public void postcopyResume() throws IOException {
        command(Wire.CMD_POSTCOPY_RESUME, new byte[0]);
    }

    /** Forgets the last block named, so the next page record names its block (a new channel or package). */
    public void forgetLastBlock() {
        lastBlock = -1;
    }

    public void flush() throws IOException {
        out.flush();
    }
}
