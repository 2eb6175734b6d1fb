package dev.thaw.restore;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class PageCachePrefetchTest {
    @Test
    void pagesFollowingEachOtherInTheQueueAreReadAsOneRunAndTheOrderIsKept() {
        assertThat(PageCachePrefetch.runs(List.of(5L, 6L, 7L, 100L, 2L, 3L, 9L))).containsExactly(new PageCachePrefetch.Run(5, 3),
                new PageCachePrefetch.Run(100, 1), new PageCachePrefetch.Run(2, 2), new PageCachePrefetch.Run(9, 1));
        List<Long> long_ = new ArrayList<>();
        for (long p = 0; p < PageCachePrefetch.MAX_RUN_PAGES + 10; p++) long_.add(p);
        assertThat(PageCachePrefetch.runs(long_)).as("a run is at most one buffer").containsExactly(
                new PageCachePrefetch.Run(0, PageCachePrefetch.MAX_RUN_PAGES), new PageCachePrefetch.Run(PageCachePrefetch.MAX_RUN_PAGES, 10));
        assertThat(PageCachePrefetch.runs(List.of())).isEmpty();
        assertThatThrownBy(() -> PageCachePrefetch.runs(List.of(1L, -1L))).hasMessageContaining("actual -1");
    }

    @Test
    void readsEveryPageOfTheFileItIsGivenAndSkipsPagesBeyondItsEnd(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("ram");
        Files.write(file, new byte[8 * 4096]);
        PageCachePrefetch prefetch = new PageCachePrefetch(file, List.of(3L, 4L, 0L, 50L), "test-prefetch");
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (!prefetch.stats().finished() && System.nanoTime() < deadline) Thread.sleep(5);
        prefetch.close();
        PageCachePrefetch.Stats stats = prefetch.stats();
        assertThat(stats.finished()).isTrue();
        assertThat(stats.runCount()).as("run 50 lies beyond the file").isEqualTo(2);
        assertThat(stats.pagesRead()).isEqualTo(3);
        assertThat(stats.advised()).as("Linux's libc has posix_fadvise: the runs go to the kernel's readahead").isTrue();
    }

    @Test
    void aHeldPrefetchReadsNothingUntilReleased(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("ram");
        Files.write(file, new byte[16 * 4096]);
        PageCachePrefetch prefetch = new PageCachePrefetch(file, List.of(0L, 1L, 2L, 9L), "test-prefetch-held", true);
        Thread.sleep(300);
        assertThat(prefetch.stats().pagesRead()).isZero();
        assertThat(prefetch.stats().finished()).isFalse();
        prefetch.release();
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (!prefetch.stats().finished() && System.nanoTime() < deadline) Thread.sleep(5);
        prefetch.close();
        assertThat(prefetch.stats().pagesRead()).isEqualTo(4);
        assertThat(prefetch.stats().runCount()).isEqualTo(2);
    }
}
