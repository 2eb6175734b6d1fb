package dev.thaw.host;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.testing.Seeds;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.BitSet;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The scanner's bit logic against files laid out like the kernel's pagemap and idle bitmap (the
 * hosts this project is developed on have no idle page tracking, so the kernel side cannot run
 * here; `thaw doctor` says so). The stand-in bitmap is a plain file: a write replaces words where
 * the kernel would only set bits, which this test never depends on.
 */
class AccessBitScannerTest {
    @Test
    void framesNotIdleAnyMoreAreReportedAccessedAndMarkedIdleAgain(@TempDir Path dir) throws Exception {
        Random random = Seeds.random("framesNotIdleAnyMoreAreReportedAccessedAndMarkedIdleAgain");
        int pages = 1 + random.nextInt(3000);
        long ramStart = (1L << 30) + 4096L * random.nextInt(1000);
        long[] pfns = new long[pages];
        Path pagemap = dir.resolve("pagemap");
        Path bitmap = dir.resolve("bitmap");
        long maxPfn = 1 << 20;
        ByteBuffer map = ByteBuffer.allocate(pages * 8).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < pages; i++) {
            boolean present = random.nextInt(10) > 0;
            pfns[i] = present ? 1 + random.nextLong(maxPfn - 1) : -1;
            map.putLong(i * 8, present ? (1L << 63) | pfns[i] : 0);
        }
        try (FileChannel c = FileChannel.open(pagemap, StandardOpenOption.CREATE, StandardOpenOption.WRITE)) {
            c.write(map, ramStart / 4096 * 8); // a sparse file, as big as the real pagemap's offsets need
        }
        Files.write(bitmap, new byte[(int) (maxPfn / 8)]);

        try (AccessBitScanner scanner = new AccessBitScanner(pagemap, bitmap, ramStart, pages)) {
            scanner.mark();
            for (int i = 0; i < pages; i++) {
                if (pfns[i] >= 0) assertThat(bit(bitmap, pfns[i])).as("page %d marked idle", i).isTrue();
            }
            BitSet touched = new BitSet();
            for (int i = 0; i < pages; i++) {
                if (pfns[i] >= 0 && random.nextInt(3) == 0) {
                    touched.set(i);
                    clear(bitmap, pfns[i]); // the kernel clears the idle bit when the page is accessed
                }
            }
            // Two pages may share a frame here (random frame numbers): one access shows for both, as it would in the kernel.
            BitSet expected = new BitSet();
            for (int i = 0; i < pages; i++) {
                if (pfns[i] >= 0 && !bit(bitmap, pfns[i])) expected.set(i);
            }
            assertThat(scanner.scan()).isEqualTo(expected);
            for (int i = touched.nextSetBit(0); i >= 0; i = touched.nextSetBit(i + 1)) {
                assertThat(expected.get(i)).as("touched page %d reads as accessed", i).isTrue();
            }
            for (int i = 0; i < pages; i++) {
                if (pfns[i] >= 0) assertThat(bit(bitmap, pfns[i])).as("page %d idle again after the scan", i).isTrue();
            }
            assertThat(scanner.scan()).as("nothing touched since").isEqualTo(new BitSet());
        }
    }

    private static boolean bit(Path bitmap, long pfn) throws Exception {
        try (FileChannel c = FileChannel.open(bitmap, StandardOpenOption.READ)) {
            ByteBuffer w = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            c.read(w, (pfn >>> 6) * 8);
            return (w.getLong(0) & (1L << (pfn & 63))) != 0;
        }
    }

    private static void clear(Path bitmap, long pfn) throws Exception {
        try (FileChannel c = FileChannel.open(bitmap, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            ByteBuffer w = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            c.read(w, (pfn >>> 6) * 8);
            w.putLong(0, w.getLong(0) & ~(1L << (pfn & 63)));
            w.clear();
            c.write(w, (pfn >>> 6) * 8);
        }
    }
}
