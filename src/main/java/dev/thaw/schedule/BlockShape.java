package dev.thaw.schedule;

/**
 * The shape of one RAM block as the destination sees it: its target pages and how many of them make one host page.
 *
 * @param pageCount  target (4 KiB) pages in the block
 * @param unitPages  target pages per destination host page: 1, or a power of two (512 for 2 MiB hugetlb)
 */
public record BlockShape(int pageCount, int unitPages) {
    public BlockShape {
        if (pageCount < 0) throw new IllegalArgumentException("block shape: expected pageCount >= 0, actual " + pageCount);
        if (unitPages < 1 || (unitPages & (unitPages - 1)) != 0) {
            throw new IllegalArgumentException("block shape: expected unitPages a power of two >= 1, actual " + unitPages);
        }
        if (pageCount % unitPages != 0) {
            throw new IllegalArgumentException("block shape: expected pageCount a multiple of unitPages " + unitPages
                    + ", actual " + pageCount);
        }
    }
}
