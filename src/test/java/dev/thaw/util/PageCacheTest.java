package dev.thaw.util;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * On a real file system (under target/, not /tmp, which may be a tmpfs whose pages cannot be evicted): a file just written and
 * read is cached, evicted it is not, and a hint brings it back.
 */
class PageCacheTest {
    private static final int BYTE_SIZE = 8 << 20;
    private Path dir;

    @BeforeEach
    void createDirectory() throws IOException {
        dir = Files.createTempDirectory(Files.createDirectories(Paths.get("target", "page-cache-test")), "t");
    }

    @AfterEach
    void removeDirectory() {
        FileTrees.deleteQuietly(dir);
    }

    @Test
    void aFileReadIsResidentEvictedItIsNotAndWillNeedReadsItBack() throws Exception {
        Path file = dir.resolve("data");
        byte[] data = new byte[BYTE_SIZE];
        new Random(7).nextBytes(data);
        Files.write(file, data);
        Files.readAllBytes(file);
        assertThat(PageCache.residentBytes(file)).isEqualTo(BYTE_SIZE);

        PageCache.evict(file); // the write's dirty pages are written first, then dropped
        assertThat(PageCache.residentBytes(file)).isLessThan(BYTE_SIZE / 16);

        try (PageCache.Advice a = PageCache.open(file)) {
            assertThat(a.willNeed(0, 1 << 20)).isZero();
        }
        long deadline = System.nanoTime() + 5_000_000_000L; // the hint reads in the background
        while (PageCache.residentBytes(file) < (1 << 20) && System.nanoTime() < deadline) Thread.sleep(10);
        assertThat(PageCache.residentBytes(file)).isGreaterThanOrEqualTo(1 << 20);
        assertThat(Files.readAllBytes(file)).isEqualTo(data); // nothing but the cache changed
    }

    @Test
    void evictingATreeEvictsEveryFileAndSkipsMissingRoots() throws Exception {
        Path sub = Files.createDirectories(dir.resolve("a/b"));
        for (Path f : List.of(dir.resolve("one"), sub.resolve("two"))) {
            try (FileChannel ch = FileChannel.open(f, StandardOpenOption.CREATE, StandardOpenOption.WRITE)) {
                ch.write(ByteBuffer.wrap(new byte[1 << 20]).put(0, (byte) 1));
            }
        }
        assertThat(PageCache.residentBytesOfTrees(List.of(dir))).isEqualTo(2 << 20);
        assertThat(PageCache.evictTrees(List.of(dir, dir.resolve("missing")))).isEqualTo(2);
        assertThat(PageCache.residentBytesOfTrees(List.of(dir))).isLessThan(2 << 20 >> 4);
    }

    @Test
    void aMissingFileIsAnErrorNamingIt() {
        Path missing = dir.resolve("nothing-here");
        assertThatThrownBy(() -> PageCache.open(missing)).isInstanceOf(IOException.class).hasMessageContaining(missing.toString());
        assertThatThrownBy(() -> PageCache.residentBytes(missing)).isInstanceOf(IOException.class).hasMessageContaining("nothing-here");
    }
}
