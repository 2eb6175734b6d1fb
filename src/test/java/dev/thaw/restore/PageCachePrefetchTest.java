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
    void theWindowAdmitsARunOnlyWhenTheRunsBeforeLeaveRoomByBeingReadOrTimingOut() {
        java.util.Set<Long> resident = new java.util.HashSet<>();
        long[] now = {0};
        int[] pauses = {0};
        // Pausing is time passing: 1 ms a look. The run at 0 is read after 3 looks; the one at 4096 never is.
        Runnable pause = () -> {
            now[0] += 1_000_000;
            if (++pauses[0] == 3) resident.add(0L);
        };
        PageCachePrefetch.Window w = new PageCachePrefetch.Window(() -> 8192, 50_000_000, (at, length) -> resident.contains(at),
                () -> now[0], pause, () -> false);
        assertThat(w.admit(0, 4096)).isTrue();
        assertThat(w.admit(4096, 4096)).isTrue();
        assertThat(pauses[0]).as("two runs fit the window").isZero();
        assertThat(w.admit(8192, 4096)).isTrue();
        assertThat(pauses[0]).as("the third waited until the first was in the page cache").isEqualTo(3);
        assertThat(w.inFlightBytes()).isEqualTo(8192);
        assertThat(w.admit(12288, 4096)).isTrue();
        assertThat(now[0]).as("the run never read counts until it is 50 ms old").isEqualTo(50_000_000);
        assertThat(w.inFlightBytes()).isEqualTo(8192);
        // A run larger than the window still goes, alone.
        resident.add(8192L);
        resident.add(12288L);
        assertThat(w.admit(16384, 65536)).isTrue();
        assertThat(w.inFlightBytes()).isEqualTo(65536);
        // Stopped while waiting: no more advice.
        PageCachePrefetch.Window stopped = new PageCachePrefetch.Window(() -> 4096, Long.MAX_VALUE, (at, length) -> false, () -> 0, () -> {},
                () -> true);
        assertThat(stopped.admit(0, 4096)).isTrue();
        assertThat(stopped.admit(4096, 4096)).isFalse();
        // 0: no bound.
        PageCachePrefetch.Window unbounded = new PageCachePrefetch.Window(() -> 0, 1, (at, length) -> false, () -> 0, () -> {
            throw new AssertionError("an unbounded window never waits");
        }, () -> false);
        for (int i = 0; i < 100; i++) assertThat(unbounded.admit(i * 4096L, 4096)).isTrue();
        // Small runs: bounded by their count, not only their bytes.
        java.util.Set<Long> read = new java.util.HashSet<>();
        PageCachePrefetch.Window runs = new PageCachePrefetch.Window(() -> 1L << 40, Long.MAX_VALUE, (at, length) -> read.contains(at),
                () -> 0, () -> read.add(0L), () -> false);
        for (int i = 0; i < PageCachePrefetch.MAX_RUNS_IN_FLIGHT; i++) assertThat(runs.admit(i * 4096L, 4096)).isTrue();
        assertThat(read).as("no wait while under the count").isEmpty();
        assertThat(runs.admit(1L << 30, 4096)).isTrue();
        assertThat(read).as("the next waited for the oldest").containsExactly(0L);
        assertThat(runs.inFlightBytes()).isEqualTo(PageCachePrefetch.MAX_RUNS_IN_FLIGHT * 4096L);
    }

    @Test
    void aBoundedPrefetchStillReadsEveryPage(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("ram");
        Files.write(file, new byte[64 * 4096]);
        List<Long> pages = new ArrayList<>();
        for (long p = 63; p >= 0; p -= 2) pages.add(p);
        PageCachePrefetch prefetch = new PageCachePrefetch(file, pages, "test-prefetch-window", 4 * 4096);
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (!prefetch.stats().finished() && System.nanoTime() < deadline) Thread.sleep(5);
        prefetch.close();
        assertThat(prefetch.stats().finished()).isTrue();
        assertThat(prefetch.stats().pagesRead()).isEqualTo(32);
        assertThat(prefetch.stats().runCount()).isEqualTo(32);
    }

    @Test
    void aHeldPrefetchReadsNothingUntilQemuIsUp(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("ram");
        Files.write(file, new byte[16 * 4096]);
        PageCachePrefetch prefetch = new PageCachePrefetch(file, List.of(0L, 1L, 2L, 9L), "test-prefetch-held",
                PageCachePrefetch.DEFAULT_WINDOW_BYTES, true);
        Thread.sleep(300);
        assertThat(prefetch.stats().pagesRead()).isZero();
        assertThat(prefetch.stats().finished()).isFalse();
        prefetch.qemuStarted();
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (!prefetch.stats().finished() && System.nanoTime() < deadline) Thread.sleep(5);
        prefetch.close();
        assertThat(prefetch.stats().pagesRead()).isEqualTo(4);
        assertThat(prefetch.stats().runCount()).isEqualTo(2);
    }
}
