package dev.thaw.host;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.BitSet;

/**
 * Accessed bits of a process's guest-RAM pages through the kernel's idle page tracking (Zhang et
 * al., VEE'11): {@code /proc/PID/pagemap} gives each page's frame number (to root), and
 * {@code /sys/kernel/mm/page_idle/bitmap} one bit per frame: writing 1 marks a frame idle (and
 * clears its accessed bits in the page tables), reading it back 0 means the frame was accessed
 * since. It sees TCG and KVM guests alike, since both touch guest RAM through the host's page
 * tables. The bitmap is read and written in 8-byte words, at 8-byte-aligned offsets.
 *
 * <p>Not thread-safe; one scanner per process. The files are parameters so that the bit logic can
 * be exercised on files that stand in for the kernel's.
 */
public final class AccessBitScanner implements AutoCloseable {
    private static final long PRESENT = 1L << 63;
    private static final long PFN_MASK = (1L << 55) - 1;
    private static final int PAGE = 4096;

    private final FileChannel pagemap;
    private final FileChannel bitmap;
    private final long ramStart;
    private final int pageCount;

    public static AccessBitScanner forProcess(long pid, long ramStart, int pageCount) {
        return new AccessBitScanner(Path.of("/proc/" + pid + "/pagemap"), IdlePageTracking.BITMAP, ramStart, pageCount);
    }

    public AccessBitScanner(Path pagemapFile, Path idleBitmapFile, long ramStart, int pageCount) {
        if (ramStart % PAGE != 0 || pageCount < 1) {
            throw new IllegalArgumentException("guest RAM: expected a page-aligned start and at least one page, actual 0x"
                    + Long.toHexString(ramStart) + " and " + pageCount + " pages");
        }
        try {
            this.pagemap = FileChannel.open(pagemapFile, StandardOpenOption.READ);
            this.bitmap = FileChannel.open(idleBitmapFile, StandardOpenOption.READ, StandardOpenOption.WRITE);
        } catch (IOException e) {
            throw new IllegalStateException("cannot open " + pagemapFile + " and " + idleBitmapFile + " (root and idle page tracking"
                    + " are needed): " + e.getMessage(), e);
        }
        this.ramStart = ramStart;
        this.pageCount = pageCount;
    }

    /** Marks every present guest page idle: the start of the first interval. */
    public void mark() {
        long[] pfns = frames();
        writeIdle(pfns);
    }

    /** The guest pages accessed since the previous mark or scan (present and no longer idle); marks them all idle again. */
    public BitSet scan() {
        long[] pfns = frames();
        long[] sorted = Arrays.stream(pfns).filter(p -> p >= 0).distinct().sorted().toArray();
        java.util.Map<Long, Long> words = readWords(sorted);
        BitSet accessed = new BitSet(pageCount);
        for (int i = 0; i < pageCount; i++) {
            long pfn = pfns[i];
            if (pfn < 0) continue;
            long word = words.getOrDefault(pfn >>> 6, -1L);
            if ((word & (1L << (pfn & 63))) == 0) accessed.set(i);
        }
        writeIdle(pfns);
        return accessed;
    }

    /** The frame number of each guest page, or -1 for a page not present (never touched, or swapped out). */
    private long[] frames() {
        ByteBuffer b = ByteBuffer.allocateDirect(pageCount * 8).order(ByteOrder.LITTLE_ENDIAN);
        long at = ramStart / PAGE * 8;
        try {
            while (b.hasRemaining()) {
                if (pagemap.read(b, at + b.position()) < 0) break;
            }
        } catch (IOException e) {
            throw new IllegalStateException("reading pagemap failed: " + e.getMessage(), e);
        }
        if (b.hasRemaining()) throw new IllegalStateException("pagemap: expected " + pageCount * 8 + " bytes, actual " + b.position());
        long[] pfns = new long[pageCount];
        for (int i = 0; i < pageCount; i++) {
            long e = b.getLong(i * 8);
            pfns[i] = (e & PRESENT) != 0 && (e & PFN_MASK) != 0 ? e & PFN_MASK : -1;
        }
        return pfns;
    }

    /** Reads the bitmap words holding these frames (sorted, distinct), in runs of adjacent words. */
    private java.util.Map<Long, Long> readWords(long[] sortedPfns) {
        java.util.Map<Long, Long> words = new java.util.HashMap<>();
        int i = 0;
        while (i < sortedPfns.length) {
            long first = sortedPfns[i] >>> 6;
            long last = first;
            int j = i;
            // A run: words no more than 64 apart are read together (one read instead of many).
            while (j + 1 < sortedPfns.length && (sortedPfns[j + 1] >>> 6) - last <= 64 && (sortedPfns[j + 1] >>> 6) - first < 8192) {
                last = sortedPfns[++j] >>> 6;
            }
            ByteBuffer b = ByteBuffer.allocate((int) (last - first + 1) * 8).order(ByteOrder.LITTLE_ENDIAN);
            try {
                while (b.hasRemaining()) {
                    if (bitmap.read(b, first * 8 + b.position()) <= 0) break;
                }
            } catch (IOException e) {
                throw new IllegalStateException("reading the idle bitmap failed at word " + first + ": " + e.getMessage(), e);
            }
            for (int k = 0; k < b.position() / 8; k++) words.put(first + k, b.getLong(k * 8));
            i = j + 1;
        }
        return words;
    }

    /** Marks these frames idle: writes words holding only their bits (the kernel sets idle where a bit is 1, ignores 0). */
    private void writeIdle(long[] pfns) {
        java.util.TreeMap<Long, Long> words = new java.util.TreeMap<>();
        for (long pfn : pfns) {
            if (pfn >= 0) words.merge(pfn >>> 6, 1L << (pfn & 63), (x, y) -> x | y);
        }
        ByteBuffer one = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
        try {
            for (var w : words.entrySet()) {
                one.clear();
                one.putLong(0, w.getValue());
                while (one.hasRemaining()) bitmap.write(one, w.getKey() * 8 + one.position());
            }
        } catch (IOException e) {
            throw new IllegalStateException("writing the idle bitmap failed: " + e.getMessage(), e);
        }
    }

    @Override
    public void close() {
        try {
            pagemap.close();
            bitmap.close();
        } catch (IOException e) {
            // read-only use of pagemap; the bitmap writes are done
        }
    }
}
