package dev.thaw.migration;

/**
 * A RAM block as the migration stream names it.
 *
 * @param name          e.g. {@code pc.ram}, {@code /rom@etc/acpi/tables}
 * @param usedByteSize  the block's used length
 * @param pageByteSize  the host page size backing it (4096 unless hugetlbfs)
 */
public record RamBlock(String name, long usedByteSize, long pageByteSize) {
    /**
     * The largest RAM (one block, or all of a stream's) Thaw takes: 1 TiB. A page map costs 8 bytes per page, so a
     * length from a damaged stream or manifest must fail as such before anything is allocated for it.
     */
    public static final long MAX_USED_BYTE_SIZE = 1L << 40;

    public RamBlock {
        if (name == null || name.isEmpty() || name.length() > 255) {
            throw new IllegalArgumentException("RAM block name: expected 1-255 characters, actual '" + name + "'");
        }
        if (usedByteSize < 0 || usedByteSize % Wire.TARGET_PAGE_BYTES != 0 || usedByteSize > MAX_USED_BYTE_SIZE) {
            throw new IllegalArgumentException("RAM block " + name + ": expected a used length that is a multiple of 4096 and at most "
                    + MAX_USED_BYTE_SIZE + " (1 TiB), actual " + usedByteSize);
        }
        if (pageByteSize < Wire.TARGET_PAGE_BYTES || Long.bitCount(pageByteSize) != 1) {
            throw new IllegalArgumentException("RAM block " + name + ": expected a power-of-two page size >= 4096, actual " + pageByteSize);
        }
    }

    /** Target pages (4 KiB) in the block. */
    public int pageCount() {
        return Math.toIntExact(usedByteSize / Wire.TARGET_PAGE_BYTES);
    }
}
