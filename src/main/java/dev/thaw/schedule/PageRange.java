package dev.thaw.schedule;

/**
 * {@code pageCount} target pages from {@code firstPage} of RAM block {@code block}. As a unit of the scheduler it is one
 * destination host page (1 target page, or 512 for a 2 MiB hugetlb block), which QEMU places when its last target page
 * has arrived; as a discard it is any run of pages.
 */
public record PageRange(int block, int firstPage, int pageCount) {
    public PageRange {
        if (block < 0 || firstPage < 0 || pageCount < 1) {
            throw new IllegalArgumentException("page range: expected block >= 0, first page >= 0, pages >= 1, actual "
                    + block + "/" + firstPage + "/" + pageCount);
        }
    }

    public int endPage() {
        return firstPage + pageCount;
    }
}
