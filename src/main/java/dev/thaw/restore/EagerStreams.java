package dev.thaw.restore;

import dev.thaw.image.CheckpointImage;
import dev.thaw.migration.RamBlock;
import dev.thaw.migration.StreamWriter;
import dev.thaw.migration.Wire;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.function.Consumer;

/** The precopy stream of a whole image, as an eager restore sends it. */
public final class EagerStreams {
    /** Pages per RAM PART section (QEMU itself uses sections of a few MiB). */
    static final int PAGES_PER_SECTION = 1024;

    private EagerStreams() {}

    /** Pages read ahead per chunk, and chunks in flight between the reader and the writer. */
    static final int CHUNK_PAGES = 256;
    static final int CHUNKS_AHEAD = 8;

    /** A run of consecutive pages of one block; {@code zero[i]} marks zero pages (their bytes are unused). */
    private record Chunk(int block, int firstPage, int pageCount, byte[] data, boolean[] zero, RuntimeException failure) {
        static final Chunk END = new Chunk(-1, 0, 0, null, null, null);
    }

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
        long total = blocks.stream().filter(withPages).mapToLong(RamBlock::pageCount).sum();
        BlockingQueue<Chunk> queue = new ArrayBlockingQueue<>(CHUNKS_AHEAD);
        // Chunk buffers go back to the reader once written: a whole image's worth of 1 MiB arrays is not garbage to collect
        // on a host whose other core is busy loading the stream into QEMU.
        BlockingQueue<byte[]> spare = new ArrayBlockingQueue<>(CHUNKS_AHEAD + 2);
        for (int i = 0; i < CHUNKS_AHEAD + 2; i++) spare.add(new byte[CHUNK_PAGES * Wire.TARGET_PAGE_BYTES]);
        Thread reader = Thread.ofPlatform().daemon().name("eager-reader").start(() -> readAhead(image, blocks, withPages, queue, spare));
        try {
            writer.raw(image.headerAndConfiguration());
            writer.ramStart(sid, false);
            long sent = 0;
            int inSection = 0;
            writer.openRamSection(sid, false);
            while (true) {
                Chunk chunk = queue.take();
                if (chunk.failure() != null) throw chunk.failure();
                if (chunk == Chunk.END) break;
                for (int i = 0; i < chunk.pageCount(); i++) {
                    if (chunk.zero()[i]) writer.zeroPage(chunk.block(), chunk.firstPage() + i);
                    else writer.page(chunk.block(), chunk.firstPage() + i, chunk.data(), i * Wire.TARGET_PAGE_BYTES);
                    sent++;
                    if (++inSection == PAGES_PER_SECTION) {
                        writer.closeRamSection(sid);
                        writer.openRamSection(sid, false);
                        inSection = 0;
                        if ((sent & 0x3FFF) == 0) progress.accept(new EagerRestore.Progress(sent, total, writer.bytesWritten()));
                    }
                }
                spare.add(chunk.data()); // the writer copied it out: the reader may fill it again
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
        } finally {
            reader.interrupt();
        }
    }

    private static void readAhead(CheckpointImage image, List<RamBlock> blocks, java.util.function.Predicate<RamBlock> withPages,
                                  BlockingQueue<Chunk> queue, BlockingQueue<byte[]> spare) {
        try {
            try {
                for (int b = 0; b < blocks.size(); b++) {
                    if (!withPages.test(blocks.get(b))) continue;
                    int count = blocks.get(b).pageCount();
                    for (int first = 0; first < count; first += CHUNK_PAGES) {
                        int n = Math.min(CHUNK_PAGES, count - first);
                        byte[] data = spare.take(); // CHUNK_PAGES long; a last, shorter chunk uses its start
                        boolean[] zero = new boolean[n];
                        for (int i = 0; i < n; i++) {
                            zero[i] = !image.readPage(b, first + i, data, i * Wire.TARGET_PAGE_BYTES);
                        }
                        queue.put(new Chunk(b, first, n, data, zero, null));
                    }
                }
                queue.put(Chunk.END);
            } catch (RuntimeException e) {
                queue.put(new Chunk(-1, 0, 0, null, null, e));
            }
        } catch (InterruptedException e) {
            // the writer stopped
        }
    }
}
