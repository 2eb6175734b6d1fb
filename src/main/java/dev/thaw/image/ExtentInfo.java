package dev.thaw.image;

import java.util.UUID;

/**
 * Where a group of pages is stored: one extent of a pack file. Reading it is one positional read
 * of {@link #EXTENT_HEADER_BYTES} + {@code storedBytes} at {@code offset}.
 *
 * @param offset      byte offset of the extent header in the pack file
 * @param storedBytes payload bytes after the header
 * @param pageCount   pages in the extent (1..256)
 * @param checksum    XXH3-64 of the payload
 */
public record ExtentInfo(UUID packId, long offset, int storedBytes, Codec codec, int pageCount, long checksum) {
    public static final int EXTENT_HEADER_BYTES = 32;
    public static final int MAX_PAGES = 256;

    /**
     * Reads the 24 bytes shared by extent records (extent table, working-set section): u64 offset, u32 stored bytes,
     * u8 codec, u8 0, u16 pages, u64 checksum. The caller checks {@link #plausible()}.
     */
    static ExtentInfo read(java.nio.ByteBuffer b, UUID packId) {
        long offset = b.getLong();
        int stored = b.getInt();
        Codec codec = Codec.of(b.get() & 0xFF);
        b.get();
        int pages = b.getShort() & 0xFFFF;
        return new ExtentInfo(packId, offset, stored, codec, pages, b.getLong());
    }

    /** A known codec, 1-256 pages, a non-negative size. */
    boolean plausible() {
        return codec != Codec.INVALID && pageCount >= 1 && pageCount <= MAX_PAGES && storedBytes >= 0;
    }
}
