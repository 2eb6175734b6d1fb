package dev.thaw.image;

/**
 * Page-map entries (u64, little-endian on disk): {@code 0} is a zero page; bit 63 set (format version 3): bits 0-62 are
 * an index (below 2^31) into the disk-reference table, the page being a block of a disk base; otherwise bits 8-62
 * hold the extent-table index + 1 and bits 0-7 the page's slot in that extent. Other negative values exist only in
 * memory, while a page's group is not yet written (-1 - slot: bits 0-62 far above 2^31, so never a disk reference).
 */
public final class PageMap {
    public static final long ZERO = 0;
    static final int EXTENT_RECORD_BYTES = 32;

    private PageMap() {}

    static long stored(int extentNumber, int slot) {
        return ((long) (extentNumber + 1) << 8) | slot;
    }

    static long pending(int slot) {
        return -1L - slot;
    }

    static long diskReference(int number) {
        return Long.MIN_VALUE | number;
    }

    static boolean isDiskReference(long entry) {
        return entry < 0 && (entry & Long.MAX_VALUE) <= Integer.MAX_VALUE;
    }

    static int diskReferenceOf(long entry) {
        return (int) (entry & Long.MAX_VALUE);
    }

    static int extentOf(long entry) {
        return (int) ((entry >>> 8) - 1);
    }

    static int slotOf(long entry) {
        return (int) (entry & 0xFF);
    }
}
