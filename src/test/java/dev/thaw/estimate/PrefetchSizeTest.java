package dev.thaw.estimate;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.testing.Seeds;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** The elastic prefetch size: half of a clustered estimate, the whole of a scattered one, capped by the budget. */
class PrefetchSizeTest {
    private static WorkingSet queue(List<PageRef> pages) {
        return WorkingSet.of(Estimator.DIRTY, pages, pages.size(), "test");
    }

    @Test
    void aContiguousEstimateIsClusteredAndPrefetchesHotRestoresHalf() {
        List<PageRef> pages = new ArrayList<>();
        for (int p = 0; p < 16384; p++) pages.add(new PageRef(0, 1000 + p)); // 64 MiB from an unaligned start
        PrefetchSize size = PrefetchSize.elastic(queue(pages), Sizing.HOTRESTORE, 65536);
        assertThat(size.pages()).isEqualTo(8192);
        assertThat(size.reason()).startsWith("clustered");
        assertThat(size.density()).as("16384 pages over 33 regions").isEqualTo(16384 / (33 * 512.0));
    }

    @Test
    void aScatteredEstimateIsPrefetchedWholeUpToTheBudget() {
        Random random = Seeds.random("aScatteredEstimateIsPrefetchedWholeUpToTheBudget");
        List<PageRef> all = new ArrayList<>();
        for (int p = 0; p < 950_272; p++) all.add(new PageRef(0, p)); // 3712 MiB
        Collections.shuffle(all, random);
        List<PageRef> pages = all.subList(0, 65536); // 256 MiB spread evenly
        PrefetchSize whole = PrefetchSize.elastic(queue(pages), Sizing.HOTRESTORE, 65536);
        assertThat(whole.pages()).isEqualTo(65536);
        assertThat(whole.reason()).startsWith("scattered").contains("the whole estimate");
        PrefetchSize capped = PrefetchSize.elastic(queue(pages), Sizing.HOTRESTORE, 40000);
        assertThat(capped.pages()).isEqualTo(40000);
        assertThat(capped.reason()).contains("budget");
    }

    @Test
    void densityIsPagesOverTheRegionsTheyTouch() {
        assertThat(PrefetchSize.density(List.of())).isEqualTo(1);
        List<PageRef> region = new ArrayList<>();
        for (int p = 512; p < 1024; p++) region.add(new PageRef(1, p));
        assertThat(PrefetchSize.density(region)).isEqualTo(1.0);
        assertThat(PrefetchSize.density(List.of(new PageRef(0, 0), new PageRef(0, 512), new PageRef(1, 0))))
                .as("one page in each of three regions, two blocks").isEqualTo(1.0 / 512);
        assertThat(PrefetchSize.density(List.of(new PageRef(0, 3), new PageRef(0, 3)))).as("duplicates count once").isEqualTo(1.0 / 512);
    }

    @Test
    void aFixedFractionIsTheOperatorsChoice() {
        List<PageRef> pages = new ArrayList<>();
        for (int p = 0; p < 1000; p++) pages.add(new PageRef(0, p * 512));
        PrefetchSize size = PrefetchSize.fraction(queue(pages), Sizing.HOTRESTORE.withPrefetchFraction(0.25));
        assertThat(size.pages()).isEqualTo(250);
        assertThat(size.reason()).contains("--ws-fraction");
    }
}
