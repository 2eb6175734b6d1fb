package dev.thaw.restore;

import dev.thaw.image.CheckpointImage;
import dev.thaw.migration.RamBlock;
import dev.thaw.migration.StreamWriter;
import dev.thaw.migration.Wire;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.function.Consumer;

/** The precopy stream of a whole image, as an eager restore sends it. */
public final class EagerStreams {
    /** Pages per RAM PART section (QEMU itself uses sections of a few MiB). */
    static final int PAGES_PER_SECTION = 1024;

    private EagerStreams() {}

    /** Every page in address order, then the device state, EOF and the trailer. Returns the pages sent. */
    public static long write(CheckpointImage image, StreamWriter writer, Consumer<EagerRestore.Progress> progress) throws IOException {
        int sid = image.manifest().ramSectionId();
        writer.raw(image.headerAndConfiguration());
        writer.ramStart(sid, false);
        List<RamBlock> blocks = image.ramBlocks();
        long total = blocks.stream().mapToLong(RamBlock::pageCount).sum();
        byte[] page = new byte[Wire.TARGET_PAGE_BYTES];
        long sent = 0;
        int inSection = 0;
        writer.openRamSection(sid, false);
        for (int b = 0; b < blocks.size(); b++) {
            for (int p = 0; p < blocks.get(b).pageCount(); p++) {
                if (image.readPage(b, p, page, 0)) {
                    writer.page(b, p, page, 0);
                } else {
                    writer.zeroPage(b, p);
                }
                sent++;
                if (++inSection == PAGES_PER_SECTION) {
                    writer.closeRamSection(sid);
                    writer.openRamSection(sid, false);
                    inSection = 0;
                    if ((sent & 0x3FFF) == 0) progress.accept(new EagerRestore.Progress(sent, total, writer.bytesWritten()));
                }
            }
        }
        writer.closeRamSection(sid);
        writer.openRamSection(sid, true);
        writer.closeRamSection(sid);
        writer.raw(image.deviceState());
        writer.eof();
        // A precopy load reads one more record after EOF: the description trailer (docs/protocol.md 10.5).
        byte[] vmdesc = image.vmDescription();
        writer.vmDescription(vmdesc != null ? vmdesc : "{}".getBytes(StandardCharsets.US_ASCII));
        writer.flush();
        progress.accept(new EagerRestore.Progress(sent, total, writer.bytesWritten()));
        return sent;
    }

}
