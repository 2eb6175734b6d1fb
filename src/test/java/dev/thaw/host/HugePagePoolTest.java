package dev.thaw.host;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import org.junit.jupiter.api.Test;

class HugePagePoolTest {
    @Test
    void pagesPromisedToAMappingAreNotAvailable() {
        assertThat(new HugePagePool.State(100, 100, 0, 0, 0).availablePageCount()).isEqualTo(100);
        assertThat(new HugePagePool.State(100, 100, 60, 0, 0).availablePageCount()).as("a QEMU mapped 60 and touched none yet").isEqualTo(40);
        assertThat(new HugePagePool.State(100, 10, 0, 0, 0).availablePageCount()).isEqualTo(10);
        assertThat(new HugePagePool.State(5, 5, 5, 5, 64).availablePageCount()).as("surplus pages are not the pool's").isZero();
        HugePagePool.State mixed = new HugePagePool.State(2148, 100, 2048, 2048, 4096);
        assertThat(mixed.persistentPageCount()).as("nr_hugepages counts a restore's surplus pages too").isEqualTo(100);
        assertThat(mixed.availablePageCount()).isZero();
        assertThat(mixed.describe()).startsWith("100 persistent 2 MiB pages (200 MiB)");
        assertThat(new HugePagePool.State(4, 4, 0, 0, 0).describe()).contains("4 persistent 2 MiB pages (8 MiB), 4 of them free");
    }

    @Test
    void sizesRoundUpToWholePages() {
        assertThat(HugePagePool.pagesFor(1)).isEqualTo(1);
        assertThat(HugePagePool.pagesFor(4L << 20)).isEqualTo(2);
        assertThat(HugePagePool.pagesFor((4L << 20) + 1)).isEqualTo(3);
        assertThatThrownBy(() -> HugePagePool.reserve(-1)).hasMessageContaining("expected a page count >= 0, actual -1");
    }

    /** The real kernel's pool: grown by four pages, every free page touched, then put back as it was. Root only. */
    @Test
    void reserveGrowsThePoolAndTouchesItsFreePages() {
        HugePagePool.State before = HugePagePool.state().orElse(null);
        assumeTrue(before != null && java.nio.file.Files.isWritable(java.nio.file.Path.of("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages")),
                "needs root and 2 MiB hugetlb pages");
        try {
            HugePagePool.Reserved r = HugePagePool.reserve(before.persistentPageCount() + 4);
            assertThat(r.pageCountBefore()).isEqualTo(before.persistentPageCount());
            assertThat(r.pageCount()).as("4 free 2 MiB blocks on a host with GiBs free").isEqualTo(before.persistentPageCount() + 4);
            assertThat(r.isShort()).isFalse();
            assertThat(r.touchedPageCount()).isGreaterThanOrEqualTo(4);
            HugePagePool.State after = HugePagePool.state().orElseThrow();
            assertThat(after.persistentPageCount()).isEqualTo(before.persistentPageCount() + 4);
            assertThat(after.availablePageCount()).as("touched and given back to the pool").isGreaterThanOrEqualTo(4);
            assertThat(HugePagePool.reserve(1).pageCount()).as("never shrinks").isEqualTo(before.persistentPageCount() + 4);
        } finally {
            HugePagePool.resize(before.persistentPageCount());
        }
        assertThat(HugePagePool.state().orElseThrow().persistentPageCount()).isEqualTo(before.persistentPageCount());
    }
}
