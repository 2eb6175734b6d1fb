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
    void pagesAreMergedByAddressAcrossSmallGapsAndTheRunsKeepTheQueuesOrder() {
        // 100 first in the queue, then 5-7 (out of order), 2-3 and 9: without gaps, runs by address, ordered by their earliest page
        assertThat(PageCachePrefetch.runs(List.of(100L, 7L, 5L, 6L, 2L, 3L, 9L, 5L), 0)).containsExactly(new PageCachePrefetch.Run(100, 1),
                new PageCachePrefetch.Run(5, 3), new PageCachePrefetch.Run(2, 2), new PageCachePrefetch.Run(9, 1));
        // a gap of one page (4, 8) is read with them; 100 is 91 pages away
        assertThat(PageCachePrefetch.runs(List.of(100L, 7L, 5L, 6L, 2L, 3L, 9L), 1)).containsExactly(new PageCachePrefetch.Run(100, 1),
                new PageCachePrefetch.Run(2, 8));
        List<Long> reversed = new ArrayList<>();
        for (long p = PageCachePrefetch.MAX_RUN_PAGES + 9; p >= 0; p--) reversed.add(p);
        assertThat(PageCachePrefetch.runs(reversed, 0)).as("a run is at most one buffer; the later addresses were wanted first")
                .containsExactly(new PageCachePrefetch.Run(PageCachePrefetch.MAX_RUN_PAGES, 10), new PageCachePrefetch.Run(0, PageCachePrefetch.MAX_RUN_PAGES));
        assertThat(PageCachePrefetch.runs(List.of(), 8)).isEmpty();
        assertThatThrownBy(() -> PageCachePrefetch.runs(List.of(1L, -1L), 0)).hasMessageContaining("actual -1");
        assertThatThrownBy(() -> PageCachePrefetch.runs(List.of(1L), -1)).hasMessageContaining("actual -1");
    }

    @Test
    void readsEveryPageOfTheFileItIsGivenAndSkipsPagesBeyondItsEnd(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("ram");
        Files.write(file, new byte[8 * 4096]);
        PageCachePrefetch prefetch = new PageCachePrefetch(file, List.of(3L, 4L, 0L, 50L, 1L), "test-prefetch");
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (!prefetch.stats().finished() && System.nanoTime() < deadline) Thread.sleep(5);
        prefetch.close();
        PageCachePrefetch.Stats stats = prefetch.stats();
        assertThat(stats.finished()).isTrue();
        assertThat(stats.runCount()).as("0-1 and 3-4 by address, 50 beyond the file").isEqualTo(2);
        assertThat(stats.pagesRead()).isEqualTo(4);
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
        assertThat(prefetch.stats().runCount()).as("0-2 and 9").isEqualTo(2);
    }
}
