package dev.thaw.image;

/**
 * Page-map entries (u64, little-endian on disk): {@code 0} is a zero page; otherwise bits 8-63
 * hold the extent-table index + 1 and bits 0-7 the page's slot in that extent. Negative values
 * exist only in memory, while a page's group is not yet written.
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

    static int extentOf(long entry) {
        return (int) ((entry >>> 8) - 1);
    }

    static int slotOf(long entry) {
        return (int) (entry & 0xFF);
    }
}
