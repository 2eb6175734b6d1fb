package dev.thaw.restore;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.host.PageTouchProbe;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;

/** When a ws restore's guest RAM goes into 2 MiB hugetlb pages on its own, and that the host is probed only when it matters. */
class GuestRamChoiceTest {
    private static final long GIB = 1L << 30;
    /** This project's PVM hosts: 9-18 us per 4 KiB page's first touch, 0.05 us per 4 KiB in a 2 MiB page. */
    private static final PageTouchProbe.Result SHADOWED = new PageTouchProbe.Result(1024, 15.2, 0.05);
    private static final PageTouchProbe.Result BARE_METAL = new PageTouchProbe.Result(1024, 0.3, 0.04);
    private static final GuestRamChoice.Host ROOT_WITH_MEMORY = new GuestRamChoice.Host(true, 20 * GIB, 8000);

    private static GuestRamChoice.Restore denseWs() {
        return new GuestRamChoice.Restore(true, 1, 65536, 0.97, GIB, false);
    }

    private final AtomicInteger probes = new AtomicInteger();

    private Supplier<PageTouchProbe.Result> probe(PageTouchProbe.Result result) {
        return () -> {
            probes.incrementAndGet();
            return result;
        };
    }

    @Test
    void aDenseWsRestoreOnAShadowedHostGoesIntoHugetlbPages() {
        GuestRamChoice.Choice c = GuestRamChoice.choose(denseWs(), ROOT_WITH_MEMORY, probe(SHADOWED));
        assertThat(c.guestRam()).isEqualTo(PostcopyRestore.GuestRam.HUGETLB);
        assertThat(c.reason()).contains("15.2 us").contains("97%");
        assertThat(probes).hasValue(1);
    }

    @Test
    void aHostWhose4KiBTouchIsCheapKeeps4KiBPages() {
        GuestRamChoice.Choice c = GuestRamChoice.choose(denseWs(), ROOT_WITH_MEMORY, probe(BARE_METAL));
        assertThat(c.guestRam()).isEqualTo(PostcopyRestore.GuestRam.DEFAULT);
        assertThat(c.reason()).startsWith("4 KiB pages").contains("0.30 us");
    }

    @Test
    void aScatteredEstimateKeeps4KiBPagesWithoutProbing() {
        GuestRamChoice.Choice c = GuestRamChoice.choose(new GuestRamChoice.Restore(true, 1, 65536, 0.07, 4 * GIB, false), ROOT_WITH_MEMORY,
                probe(SHADOWED));
        assertThat(c.guestRam()).isEqualTo(PostcopyRestore.GuestRam.DEFAULT);
        assertThat(c.reason()).contains("scattered").contains("7%").contains("14.3x");
        assertThat(probes).as("the probe costs a restore ~20 ms: only when all else favours 2 MiB pages").hasValue(0);
    }

    @Test
    void theDensityThresholdIsThirtyPercentOfTheRegions() {
        assertThat(GuestRamChoice.choose(new GuestRamChoice.Restore(true, 1, 100, 0.3, GIB, false), ROOT_WITH_MEMORY, probe(SHADOWED)).hugetlb())
                .isTrue();
        assertThat(GuestRamChoice.choose(new GuestRamChoice.Restore(true, 1, 100, 0.4997, GIB, false), ROOT_WITH_MEMORY, probe(SHADOWED)).hugetlb())
                .as("the demo's estimates, about half").isTrue();
        assertThat(GuestRamChoice.choose(new GuestRamChoice.Restore(true, 1, 100, 0.29, GIB, false), ROOT_WITH_MEMORY, probe(SHADOWED)).hugetlb())
                .isFalse();
    }

    @Test
    void lazyRestoresClonesTrialsAndEmptyPrefetchesKeep4KiBPagesWithoutProbing() {
        assertThat(GuestRamChoice.choose(GuestRamChoice.Restore.lazy(1), ROOT_WITH_MEMORY, probe(SHADOWED)).reason()).contains("lazy");
        assertThat(GuestRamChoice.choose(new GuestRamChoice.Restore(true, 4, 65536, 0.97, GIB, false), ROOT_WITH_MEMORY, probe(SHADOWED)).reason())
                .contains("4 clones");
        assertThat(GuestRamChoice.choose(new GuestRamChoice.Restore(true, 1, 65536, 0.97, GIB, true), ROOT_WITH_MEMORY, probe(SHADOWED)).reason())
                .contains("--placed-prefetch");
        assertThat(GuestRamChoice.choose(new GuestRamChoice.Restore(true, 1, 0, 0.97, GIB, false), ROOT_WITH_MEMORY, probe(SHADOWED)).reason())
                .contains("nothing prefetched");
        assertThat(probes).hasValue(0);
    }

    @Test
    void withoutRootMemoryOrFreeHugeBlocksItKeeps4KiBPages() {
        assertThat(GuestRamChoice.choose(denseWs(), new GuestRamChoice.Host(false, 20 * GIB, 8000), probe(SHADOWED)).reason()).contains("root");
        GuestRamChoice.Choice tight = GuestRamChoice.choose(denseWs(), new GuestRamChoice.Host(true, GIB + GIB / 2, 8000), probe(SHADOWED));
        assertThat(tight.guestRam()).isEqualTo(PostcopyRestore.GuestRam.DEFAULT);
        assertThat(tight.reason()).contains("1536 MiB available").contains("1024 MiB");
        GuestRamChoice.Choice fragmented = GuestRamChoice.choose(denseWs(), new GuestRamChoice.Host(true, 20 * GIB, 575), probe(SHADOWED));
        assertThat(fragmented.reason()).contains("575 free 2 MiB blocks, fewer than the guest's 512 and 64 to spare");
        assertThat(GuestRamChoice.choose(denseWs(), new GuestRamChoice.Host(true, 20 * GIB, 576), probe(SHADOWED)).hugetlb()).isTrue();
        assertThat(probes).hasValue(1);
        GuestRamChoice.Choice odd = GuestRamChoice.choose(new GuestRamChoice.Restore(true, 1, 65536, 0.97, GIB + 4096, false),
                ROOT_WITH_MEMORY, probe(SHADOWED));
        assertThat(odd.reason()).contains("not a whole number of 2 MiB pages");
        assertThat(probes).hasValue(1);
    }

    @Test
    void aPoolThatHoldsTheGuestServesItWhateverMemAvailableAndTheBuddyAllocatorSay() {
        // Pool pages count neither in MemAvailable nor in /proc/buddyinfo: a 4 GiB pool leaves both looking short.
        GuestRamChoice.Choice pooled = GuestRamChoice.choose(denseWs(), new GuestRamChoice.Host(true, GIB / 2, 10, 512), probe(SHADOWED));
        assertThat(pooled.hugetlb()).isTrue();
        assertThat(pooled.reason()).contains("from the pre-backed pool (512 free)");
        GuestRamChoice.Choice tooSmall = GuestRamChoice.choose(denseWs(), new GuestRamChoice.Host(true, GIB / 2, 10, 511), probe(SHADOWED));
        assertThat(tooSmall.hugetlb()).as("a pool one page short: surplus pages then, which the host cannot give").isFalse();
        assertThat(tooSmall.reason()).contains("available");
        assertThat(GuestRamChoice.choose(denseWs(), new GuestRamChoice.Host(true, 20 * GIB, 8000, 511), probe(SHADOWED)).reason())
                .as("short pool, surplus pages enough").doesNotContain("pool");
        assertThat(GuestRamChoice.choose(new GuestRamChoice.Restore(true, 1, 65536, 0.07, GIB, false),
                new GuestRamChoice.Host(true, 20 * GIB, 8000, 4096), probe(SHADOWED)).hugetlb()).as("a pool does not change the density rule").isFalse();
    }

    @Test
    void aProbeThatFailsKeeps4KiBPagesAndSaysWhy() {
        GuestRamChoice.Choice c = GuestRamChoice.choose(denseWs(), ROOT_WITH_MEMORY, () -> {
            throw new IllegalStateException("probe: madvise(MADV_POPULATE_WRITE) failed (a kernel before 5.14?)");
        });
        assertThat(c.guestRam()).isEqualTo(PostcopyRestore.GuestRam.DEFAULT);
        assertThat(c.reason()).contains("the page-touch probe failed").contains("MADV_POPULATE_WRITE");
    }

    @Test
    void freeHugeBlocksCountOrdersNineAndUp() {
        assertThat(HugePages.freeHugeBlocks("Node 0, zone   Normal      0     33     22    798   1452   6346   4699   2989   1255    718   3220"))
                .as("718 of order 9, 3220 of order 10").isEqualTo(718 + 2 * 3220);
        assertThat(HugePages.freeHugeBlocks("Node 0, zone      DMA      0      0      0      0      0      0      0      0      1")).isZero();
        assertThatThrownBy(() -> HugePages.freeHugeBlocks("garbage")).hasMessageContaining("expected 'Node N, zone NAME'");
    }

    @Test
    void aChoiceIsNeverAuto() {
        assertThatThrownBy(() -> new GuestRamChoice.Choice(PostcopyRestore.GuestRam.AUTO, "x"))
                .hasMessageContaining("actual AUTO");
        assertThat(GuestRamChoice.Choice.asked(PostcopyRestore.GuestRam.COLLAPSE_AFTER).label()).isEqualTo("4k-collapsed");
    }
}
