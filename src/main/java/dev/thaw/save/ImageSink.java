package dev.thaw.save;

import dev.thaw.estimate.DirtyRecency;
import dev.thaw.image.ImageWriter;
import dev.thaw.migration.RamBlock;
import dev.thaw.migration.SaveStreamHandler;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Feeds what the stream parser finds into an image writer (none for a live probe), counting pages for
 * progress reports and, when asked, telling a {@link DirtyRecency} the order pages arrive in (the
 * dirty-bit estimator).
 */
public final class ImageSink implements SaveStreamHandler {
    private final ImageWriter writer;
    private final AtomicLong pages;
    private final boolean trackRecency;
    private volatile DirtyRecency recency;

    public ImageSink(ImageWriter writer) {
        this(writer, new AtomicLong(), false);
    }

    public ImageSink(ImageWriter writer, AtomicLong pages, boolean trackRecency) {
        this.writer = writer;
        this.pages = pages;
        this.trackRecency = trackRecency;
    }

    /** The recency seen so far (null before the RAM block list arrived or when not tracked). */
    public DirtyRecency recency() {
        return recency;
    }

    @Override
    public void configuration(byte[] headerAndConfiguration, String machineType, List<String> validatedCapabilities) {
        if (writer != null) writer.configuration(headerAndConfiguration, machineType, validatedCapabilities);
    }

    @Override
    public void ramBlocks(int sectionId, int sectionVersion, List<RamBlock> blocks) {
        if (writer != null) writer.ramBlocks(sectionId, sectionVersion, blocks);
        if (trackRecency) recency = new DirtyRecency(blocks.stream().mapToInt(RamBlock::pageCount).toArray());
    }

    @Override
    public void zeroPage(int blockIndex, int pageIndex) {
        if (writer != null) writer.zeroPage(blockIndex, pageIndex);
        arrived(blockIndex, pageIndex);
    }

    @Override
    public void page(int blockIndex, int pageIndex, byte[] data, int offset) {
        if (writer != null) writer.page(blockIndex, pageIndex, data, offset);
        arrived(blockIndex, pageIndex);
    }

    private void arrived(int blockIndex, int pageIndex) {
        pages.incrementAndGet();
        if (recency != null) recency.arrived(blockIndex, pageIndex);
    }

    @Override
    public void deviceState(byte[] fullSections, byte[] vmDescriptionJson) {
        if (writer != null) writer.deviceState(fullSections, vmDescriptionJson);
    }
}
