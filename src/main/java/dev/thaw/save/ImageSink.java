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
 * dirty-bit estimator). The writer works on a thread of its own ({@link PageHandoff}) until {@link #finish}.
 */
public final class ImageSink implements SaveStreamHandler, AutoCloseable {
    private final SaveStreamHandler writer; // null: a live probe, which writes no image
    private final PageHandoff handoff;
    private final AtomicLong pages;
    private final boolean trackRecency;
    private volatile DirtyRecency recency;

    /** Pages written on the caller's thread (no {@link #finish} needed). */
    public ImageSink(ImageWriter writer) {
        this.handoff = null;
        this.writer = writer;
        this.pages = new AtomicLong();
        this.trackRecency = false;
    }

    /** @param stallTimeout how long the stream waits for the writer's thread to take pages before the save fails */
    public ImageSink(ImageWriter writer, AtomicLong pages, boolean trackRecency, java.time.Duration stallTimeout, String name) {
        this.handoff = writer == null || !HANDOFF ? null : new PageHandoff(writer, stallTimeout, name);
        this.writer = handoff != null ? handoff : writer;
        this.pages = pages;
        this.trackRecency = trackRecency;
    }

    /** Off ({@code -Dthaw.savePageHandoff=false}): the parser's thread writes the image itself, as before (for comparisons). */
    private static final boolean HANDOFF = !"false".equals(System.getProperty("thaw.savePageHandoff"));

    /** Every page applied to the writer, which is the caller's thread's again; rethrows what failed the writer's thread. */
    public void finish() {
        if (handoff != null) handoff.finish();
    }

    @Override
    public void close() {
        if (handoff != null) handoff.close();
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
