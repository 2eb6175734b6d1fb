package dev.thaw.estimate;

/** A target page of guest RAM: the RAM block's index in the image and the page's index in the block. */
public record PageRef(int block, int page) implements Comparable<PageRef> {
    public PageRef {
        if (block < 0 || page < 0) throw new IllegalArgumentException("page: expected block and page >= 0, actual " + block + "/" + page);
    }

    /** Address order: block by block, ascending pages (QEMU's order in a pass over RAM). */
    @Override
    public int compareTo(PageRef o) {
        return block != o.block ? Integer.compare(block, o.block) : Integer.compare(page, o.page);
    }
}
