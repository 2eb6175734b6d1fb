package dev.thaw.save;

import dev.thaw.image.ImageWriter;
import dev.thaw.migration.RamBlock;
import dev.thaw.migration.SaveStreamHandler;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

/** Feeds what the stream parser finds into an image writer, counting pages for progress reports. */
public record ImageSink(ImageWriter writer, AtomicLong pages) implements SaveStreamHandler {
    public ImageSink(ImageWriter writer) {
        this(writer, new AtomicLong());
    }

    @Override
    public void configuration(byte[] headerAndConfiguration, String machineType, List<String> validatedCapabilities) {
        writer.configuration(headerAndConfiguration, machineType, validatedCapabilities);
    }

    @Override
    public void ramBlocks(int sectionId, int sectionVersion, List<RamBlock> blocks) {
        writer.ramBlocks(sectionId, sectionVersion, blocks);
    }

    @Override
    public void zeroPage(int blockIndex, int pageIndex) {
        writer.zeroPage(blockIndex, pageIndex);
        pages.incrementAndGet();
    }

    @Override
    public void page(int blockIndex, int pageIndex, byte[] data, int offset) {
        writer.page(blockIndex, pageIndex, data, offset);
        pages.incrementAndGet();
    }

    @Override
    public void deviceState(byte[] fullSections, byte[] vmDescriptionJson) {
        writer.deviceState(fullSections, vmDescriptionJson);
    }
}
