package dev.thaw.save;

import dev.thaw.image.ImageWriter;
import dev.thaw.image.PageDigest;
import dev.thaw.migration.RamBlock;
import dev.thaw.migration.SaveStreamHandler;
import dev.thaw.migration.Wire;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * An image writer fed from a second thread. The thread that parses QEMU's stream copies each page into a batch of 256; one
 * writer thread applies the batches in stream order (dedup, compression, checksums, pack writes), so the image is exactly
 * what the writer would make from the pages in that order on one thread. Each page's SHA-256 (the store's identity of a
 * page: half of a save's CPU on one thread here, docs/benchmarks.md, twenty-second session) is computed by whichever thread
 * has time: by the parser for a batch begun while two batches wait for the writer, else by the writer. Everything else the
 * writer is told (configuration, RAM blocks, device state) waits until every batch before it was applied, and
 * {@link #finish} until all were: the writer is used by one thread at a time, handed over through the queues.
 */
final class PageHandoff implements SaveStreamHandler, AutoCloseable {
    static final int BATCH_PAGES = 256;
    private static final int BATCHES = 4;
    private static final int PAGE_BYTES = Wire.TARGET_PAGE_BYTES;
    private static final long POLL_MILLIS = 100;

    private static final class Batch {
        final int[] blocks = new int[BATCH_PAGES];
        final int[] pages = new int[BATCH_PAGES];
        final boolean[] zero = new boolean[BATCH_PAGES];
        final PageDigest[] digests = new PageDigest[BATCH_PAGES]; // null: the writer's thread hashes the page
        final byte[] data = new byte[BATCH_PAGES * PAGE_BYTES];
        int count;
        boolean hashedHere; // by the parser: the writer was behind when the batch began
    }

    private static final Batch END = new Batch();

    private final ImageWriter writer;
    private final Duration stallTimeout;
    private final BlockingQueue<Batch> free = new ArrayBlockingQueue<>(BATCHES);
    private final BlockingQueue<Batch> full = new ArrayBlockingQueue<>(BATCHES + 1);
    private final Thread worker;
    private volatile Throwable failure;
    private Batch current;
    private boolean finished;

    /** @param stallTimeout how long the parser waits for the writer thread to take a batch before the save fails */
    PageHandoff(ImageWriter writer, Duration stallTimeout, String name) {
        this.writer = writer;
        this.stallTimeout = stallTimeout;
        for (int i = 0; i < BATCHES; i++) free.add(new Batch());
        this.worker = Thread.ofPlatform().daemon().name("image-writer-" + name).start(this::applyBatches);
    }

    private void applyBatches() {
        try {
            while (true) {
                Batch b = full.take();
                if (b == END) return;
                for (int i = 0; i < b.count; i++) {
                    if (b.zero[i]) {
                        writer.zeroPage(b.blocks[i], b.pages[i]);
                    } else {
                        PageDigest d = b.digests[i] != null ? b.digests[i] : PageDigest.of(b.data, i * PAGE_BYTES, PAGE_BYTES);
                        writer.page(b.blocks[i], b.pages[i], b.data, i * PAGE_BYTES, d);
                    }
                    b.digests[i] = null;
                }
                b.count = 0;
                free.add(b);
            }
        } catch (InterruptedException e) {
            failure = new SaveException("the image writer was interrupted", e);
        } catch (Throwable t) {
            failure = t;
        }
    }

    @Override
    public void configuration(byte[] headerAndConfiguration, String machineType, List<String> validatedCapabilities) {
        drain();
        writer.configuration(headerAndConfiguration, machineType, validatedCapabilities);
    }

    @Override
    public void ramBlocks(int sectionId, int sectionVersion, List<RamBlock> blocks) {
        drain();
        writer.ramBlocks(sectionId, sectionVersion, blocks);
    }

    @Override
    public void zeroPage(int blockIndex, int pageIndex) {
        Batch b = batch();
        b.blocks[b.count] = blockIndex;
        b.pages[b.count] = pageIndex;
        b.zero[b.count] = true;
        added(b);
    }

    @Override
    public void page(int blockIndex, int pageIndex, byte[] data, int offset) {
        Batch b = batch();
        b.blocks[b.count] = blockIndex;
        b.pages[b.count] = pageIndex;
        b.zero[b.count] = false;
        if (b.hashedHere) b.digests[b.count] = PageDigest.of(data, offset, PAGE_BYTES);
        System.arraycopy(data, offset, b.data, b.count * PAGE_BYTES, PAGE_BYTES);
        added(b);
    }

    @Override
    public void deviceState(byte[] fullSections, byte[] vmDescriptionJson) {
        drain();
        writer.deviceState(fullSections, vmDescriptionJson);
    }

    /** Waits until every page handed over was applied and ends the writer thread; the writer is this thread's again. */
    void finish() {
        if (finished) return;
        drain();
        finished = true;
        put(END);
        join();
        rethrow();
    }

    /** Ends the writer thread, applied or not (a failed save): the caller may then close the writer. */
    @Override
    public void close() {
        if (!worker.isAlive()) return;
        worker.interrupt();
        join();
    }

    private Batch batch() {
        if (current == null) {
            current = take();
            // Whichever thread has time hashes: the parser when the writer is behind (two batches wait for it), else the writer.
            current.hashedHere = !BALANCED || full.size() >= 2;
        }
        return current;
    }

    /** Off ({@code -Dthaw.saveHashBalance=false}): the parser hashes every page (for comparisons). */
    private static final boolean BALANCED = !"false".equals(System.getProperty("thaw.saveHashBalance"));

    private void added(Batch b) {
        if (++b.count == BATCH_PAGES) {
            put(b);
            current = null;
        }
    }

    /** Hands over the batch being filled and waits until the writer thread applied everything. */
    private void drain() {
        if (finished) throw new IllegalStateException("the stream went on after the save's pages were finished");
        if (current != null) {
            if (current.count > 0) put(current);
            else free.add(current);
            current = null;
        }
        Batch[] all = new Batch[BATCHES];
        for (int i = 0; i < BATCHES; i++) all[i] = take();
        for (Batch b : all) free.add(b);
        rethrow();
    }

    private Batch take() {
        long deadline = System.nanoTime() + stallTimeout.toNanos();
        try {
            while (true) {
                rethrow();
                Batch b = free.poll(POLL_MILLIS, TimeUnit.MILLISECONDS);
                if (b != null) return b;
                if (System.nanoTime() - deadline > 0) throw stalled();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new SaveException("interrupted while the image writer applied pages", e);
        }
    }

    private void put(Batch b) {
        long deadline = System.nanoTime() + stallTimeout.toNanos();
        try {
            while (!full.offer(b, POLL_MILLIS, TimeUnit.MILLISECONDS)) {
                rethrow();
                if (System.nanoTime() - deadline > 0) throw stalled();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new SaveException("interrupted while handing pages to the image writer", e);
        }
    }

    private SaveException stalled() {
        return new SaveException("the image writer applied no page for " + stallTimeout.toSeconds()
                + " s (its storage stalled?)", null);
    }

    private void join() {
        try {
            if (!worker.join(Duration.ofSeconds(stallTimeout.toSeconds() + 5))) {
                throw new SaveException("the image writer did not end within " + (stallTimeout.toSeconds() + 5) + " s", null);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new SaveException("interrupted while waiting for the image writer to end", e);
        }
    }

    private void rethrow() {
        Throwable t = failure;
        if (t == null) return;
        if (t instanceof RuntimeException re) throw re;
        if (t instanceof Error err) throw err;
        throw new SaveException("the image writer failed: " + t, t);
    }
}
