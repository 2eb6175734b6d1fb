package dev.thaw.restore;

import dev.thaw.image.CheckpointImage;
import dev.thaw.migration.RamBlock;
import dev.thaw.migration.StreamWriter;
import dev.thaw.migration.Wire;
import dev.thaw.schedule.PageRange;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/** The precopy stream of a whole image, as an eager restore sends it. */
public final class EagerStreams {
    /** Pages per RAM PART section (QEMU itself uses sections of a few MiB). */
    static final int PAGES_PER_SECTION = 1024;
    /** Bytes read ahead of the writer: 8 batches of 1 MiB. */
    static final long BYTES_AHEAD = 8L * PageReadAhead.BATCH_PAGES * Wire.TARGET_PAGE_BYTES;
    /** The reader producing nothing for this long is a stall (an image read that hangs), like the socket's. */
    static final Duration READ_TIMEOUT = Duration.ofSeconds(60);

    private EagerStreams() {}

    /**
     * Every page in address order, then the device state, EOF and the trailer. Returns the pages sent.
     * A reader thread reads and decompresses ahead while this thread writes, so storage reads and
     * socket writes overlap.
     */
    public static long write(CheckpointImage image, StreamWriter writer, Consumer<EagerRestore.Progress> progress) throws IOException {
        return write(image, writer, progress, b -> true);
    }

    /**
     * The same stream with the pages of only the blocks {@code withPages} accepts; the others are announced (with their
     * sizes) but get no page, so the destination keeps what its memory backend already holds.
     */
    static long write(CheckpointImage image, StreamWriter writer, Consumer<EagerRestore.Progress> progress,
                      java.util.function.Predicate<RamBlock> withPages) throws IOException {
        int sid = image.manifest().ramSectionId();
        List<RamBlock> blocks = image.ramBlocks();
        List<PageRange> runs = new ArrayList<>(); // address order, one reader batch each
        for (int b = 0; b < blocks.size(); b++) {
            if (!withPages.test(blocks.get(b))) continue;
            int count = blocks.get(b).pageCount();
            for (int first = 0; first < count; first += PageReadAhead.BATCH_PAGES) {
                runs.add(new PageRange(b, first, Math.min(PageReadAhead.BATCH_PAGES, count - first)));
            }
        }
        long total = runs.stream().mapToLong(PageRange::pageCount).sum();
        try (PageReadAhead ahead = new PageReadAhead(image, runs, BYTES_AHEAD, "eager-reader")) {
            writer.raw(image.headerAndConfiguration());
            writer.ramStart(sid, false);
            long sent = 0;
            int inSection = 0;
            writer.openRamSection(sid, false);
            for (PageReadAhead.Batch batch = ahead.next(READ_TIMEOUT); batch != null; batch = ahead.next(READ_TIMEOUT)) {
                int at = 0;
                for (PageRange run : batch.units()) {
                    for (int q = run.firstPage(); q < run.endPage(); q++, at++) {
                        if (batch.zero()[at]) writer.zeroPage(run.block(), q);
                        else writer.page(run.block(), q, batch.data(), at * Wire.TARGET_PAGE_BYTES);
                        sent++;
                        if (++inSection == PAGES_PER_SECTION) {
                            writer.closeRamSection(sid);
                            writer.openRamSection(sid, false);
                            inSection = 0;
                            if ((sent & 0x3FFF) == 0) progress.accept(new EagerRestore.Progress(sent, total, writer.bytesWritten()));
                        }
                    }
                }
                ahead.release(batch); // the writer copied it out: the reader may fill it again
            }
            writer.closeRamSection(sid);
            writer.openRamSection(sid, true);
            writer.closeRamSection(sid);
            writer.raw(image.deviceState());
            writer.eof();
            // A precopy load reads one more record after EOF: the description trailer (docs/protocol.md).
            byte[] vmdesc = image.vmDescription();
            writer.vmDescription(vmdesc != null ? vmdesc : "{}".getBytes(StandardCharsets.US_ASCII));
            writer.flush();
            progress.accept(new EagerRestore.Progress(sent, total, writer.bytesWritten()));
            return sent;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted while sending the image", e);
        }
    }
}
