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
}
