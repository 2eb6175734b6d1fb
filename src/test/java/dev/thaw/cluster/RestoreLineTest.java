package dev.thaw.cluster;

import static dev.thaw.cluster.RestoreGraphTest.t;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.cluster.RestoreLine.SizeEstimate;
import dev.thaw.testing.Seeds;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** The restore line: the paper's linear program through Commons Math's simplex solver, its bounds, rings and errors. */
class RestoreLineTest {
    private static Map<String, SizeEstimate> sizes(Object... memberAndPages) {
        Map<String, SizeEstimate> m = new HashMap<>();
        for (int i = 0; i < memberAndPages.length; i += 2) m.put((String) memberAndPages[i], SizeEstimate.of(((Number) memberAndPages[i + 1]).longValue()));
        return m;
    }

    /** Asserts every constraint of the program on the revised sizes. */
    private static void assertConsistent(RestoreGraph g, RestoreLine line) {
        for (RestoreGraph.Edge e : g.edges()) {
            long si = line.placement(e.from()).revisedPages();
            long sj = line.placement(e.to()).revisedPages();
            if (g.component(e.from()) == g.component(e.to())) {
                assertThat(si).as("ring " + e.from() + " = " + e.to()).isEqualTo(sj);
            } else {
                assertThat(si - sj).as(e.from() + " - " + e.to()).isGreaterThanOrEqualTo(RestoreLine.weightPages(e));
            }
        }
        List<Long> revised = line.order().stream().map(RestoreLine.Placement::revisedPages).toList();
        assertThat(revised).isSorted();
        assertThat(line.movedPages()).isEqualTo(line.order().stream().mapToLong(p -> Math.abs(p.revisedPages() - p.estimatePages())).sum());
    }

    @Test
    void consistentSizesStayAsTheyAre() {
        RestoreGraph g = RestoreGraph.fromInFlight(List.of("a", "b", "o"), List.of(t("a", "b", 1, 60)));
        RestoreLine line = RestoreLine.compute(g, sizes("a", 100, "b", 10, "o", 50));
        assertThat(line.movedPages()).isZero();
        assertThat(line.members()).containsExactly("b", "o", "a");
        assertThat(line.placement("a").revisedPages()).isEqualTo(100);
    }

    @Test
    void aSenderWithTheSmallerWorkingSetIsMovedPastItsReceiverByTheLeast() {
        // a sent b 5000 bytes (2 pages) in flight: S_a* >= S_b* + 2, at the cost of 100 + 2 - 10 pages.
        RestoreGraph g = RestoreGraph.fromInFlight(List.of("a", "b"), List.of(t("a", "b", 4, 5000)));
        RestoreLine line = RestoreLine.compute(g, sizes("a", 10, "b", 100));
        assertThat(RestoreLine.weightPages(g.edge("a", "b").orElseThrow())).isEqualTo(2);
        assertThat(line.movedPages()).isEqualTo(92);
        assertThat(line.members()).containsExactly("b", "a");
        assertConsistent(g, line);
    }

    @Test
    void aChainAndADiamondStartReceiversFirst() {
        RestoreGraph chain = RestoreGraph.fromInFlight(List.of("a", "b", "c"), List.of(t("a", "b", 1, 60), t("b", "c", 1, 60)));
        RestoreLine line = RestoreLine.compute(chain, sizes("a", 10, "b", 20, "c", 30));
        assertThat(line.members()).containsExactly("c", "b", "a");
        assertConsistent(chain, line);
        // |a-10| + |c-30| >= (a - c) + 20 >= 22, reached at c=19, b=20, a=21.
        assertThat(line.movedPages()).isEqualTo(22);

        RestoreGraph diamond = RestoreGraph.fromInFlight(List.of("a", "b", "c", "d"),
                List.of(t("a", "b", 1, 60), t("a", "c", 1, 60), t("b", "d", 1, 60), t("c", "d", 1, 60)));
        RestoreLine d = RestoreLine.compute(diamond, sizes("a", 500, "b", 300, "c", 100, "d", 200));
        assertConsistent(diamond, d);
        assertThat(d.members().getFirst()).isEqualTo("d");
        assertThat(d.members().getLast()).isEqualTo("a");
        assertThat(d.movedPages()).as("c rises to 201, or d falls to 99 with c, at 101 pages").isEqualTo(101);
    }

    @Test
    void aRingGetsOneSizeAndItsDependentsComeAfter() {
        RestoreGraph g = RestoreGraph.fromInFlight(List.of("x", "y", "z", "o"),
                List.of(t("x", "y", 1, 60), t("y", "x", 1, 60), t("z", "x", 1, 60)));
        RestoreLine line = RestoreLine.compute(g, sizes("x", 10, "y", 30, "z", 25, "o", 7));
        assertConsistent(g, line);
        assertThat(line.placement("x").revisedPages()).isEqualTo(line.placement("y").revisedPages());
        assertThat(line.movedPages()).as("x, y meet within [10, 30] (20 pages) below z").isEqualTo(20);
        assertThat(line.placement("o").revisedPages()).as("the orphan is not moved").isEqualTo(7);
    }

    @Test
    void sizesStayWithinTheMembersMemory() {
        RestoreGraph g = RestoreGraph.fromInFlight(List.of("a", "b"), List.of(t("a", "b", 1, 60)));
        RestoreLine line = RestoreLine.compute(g, Map.of("a", SizeEstimate.bounded(50, 50), "b", SizeEstimate.bounded(100, 1000)));
        assertThat(line.placement("a").revisedPages()).isEqualTo(50);
        assertThat(line.placement("b").revisedPages()).isEqualTo(49);
        assertThat(line.movedPages()).isEqualTo(51);
    }

    @Test
    void anInfeasibleSystemNamesTheMemberAndItsChain() {
        RestoreGraph g = RestoreGraph.fromInFlight(List.of("a", "b", "c"), List.of(t("a", "b", 10, 40960), t("b", "c", 10, 40960)));
        assertThatThrownBy(() -> RestoreLine.compute(g, Map.of("a", SizeEstimate.bounded(5, 15), "b", SizeEstimate.of(5), "c", SizeEstimate.of(5))))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("infeasible: a must load at least 20 pages")
                .hasMessageContaining("expected at most its 15 pages of memory, actual 20");
    }

    @Test
    void badEstimatesAreRejected() {
        RestoreGraph g = RestoreGraph.fromInFlight(List.of("a", "b"), List.of());
        assertThatThrownBy(() -> RestoreLine.compute(g, sizes("a", 1))).hasMessageContaining("actual none for b");
        assertThatThrownBy(() -> RestoreLine.compute(g, sizes("a", 1, "b", 1, "c", 1))).hasMessageContaining("actual c");
        assertThatThrownBy(() -> SizeEstimate.of(-1)).hasMessageContaining("expected estimatePages >= 0, actual -1");
        assertThatThrownBy(() -> SizeEstimate.bounded(10, 9)).hasMessageContaining("expected estimatePages <= memoryPages, actual 10 > 9");
    }

    /**
     * Random clusters with working sets of up to 4 GiB: the solution meets every constraint in
     * whole pages and moves no more than a simple feasible revision (raise each member, in causal
     * order, to just above what it depends on).
     */
    @Test
    void randomClustersAreConsistentAndNoWorseThanRaisingSenders() {
        Random random = Seeds.random("randomClustersAreConsistentAndNoWorseThanRaisingSenders");
        for (int round = 0; round < 40; round++) {
            int n = 2 + random.nextInt(9);
            List<String> members = new ArrayList<>();
            for (int i = 0; i < n; i++) members.add("m" + i);
            List<Traffic> log = new ArrayList<>();
            for (int k = 0; k < n + random.nextInt(n); k++) {
                int i = random.nextInt(n);
                int j = random.nextInt(n);
                if (i != j) log.add(t(members.get(i), members.get(j), 1 + random.nextInt(20), 1 + random.nextInt(200_000) + 20));
            }
            RestoreGraph g = RestoreGraph.fromInFlight(members, log);
            Map<String, SizeEstimate> sizes = new HashMap<>();
            for (String m : members) sizes.put(m, SizeEstimate.of(random.nextInt(1 << 20)));
            RestoreLine line = RestoreLine.compute(g, sizes);
            assertConsistent(g, line);
            assertThat(line.movedPages()).as("round " + round).isLessThanOrEqualTo(raisingSenders(g, sizes));
        }
    }

    /** A feasible revision without a solver: each component at max(its largest estimate, its dependencies' size + W). */
    private static long raisingSenders(RestoreGraph g, Map<String, SizeEstimate> sizes) {
        Map<String, Long> revised = new HashMap<>();
        for (List<String> component : g.components()) {
            long size = 0;
            for (String m : component) {
                size = Math.max(size, sizes.get(m).estimatePages());
                for (String d : g.dependencies(m)) {
                    if (!component.contains(d)) size = Math.max(size, revised.get(d) + RestoreLine.weightPages(g.edge(m, d).orElseThrow()));
                }
            }
            for (String m : component) revised.put(m, size);
        }
        return g.members().stream().mapToLong(m -> Math.abs(revised.get(m) - sizes.get(m).estimatePages())).sum();
    }
}
