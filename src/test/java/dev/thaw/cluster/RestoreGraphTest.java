package dev.thaw.cluster;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.cluster.RestoreGraph.Edge;
import dev.thaw.cluster.RestoreGraph.Enrichment;
import dev.thaw.cluster.RestoreGraph.Source;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** The restore dependency graph: edges from the in-flight log, rings, orphans, causal order, enrichment, bad input. */
class RestoreGraphTest {
    static Traffic t(String from, String to, long frames, long bytes) {
        return new Traffic(from, to, frames, bytes);
    }

    /** HotRestore's Figure 3: vm1, vm2, vm3 in a ring, vm4 depends on vm3, vm5 an orphan. */
    static RestoreGraph figure3() {
        return RestoreGraph.fromInFlight(List.of("vm1", "vm2", "vm3", "vm4", "vm5"), List.of(
                t("vm1", "vm2", 1, 100), t("vm2", "vm3", 1, 100), t("vm3", "vm1", 1, 100), t("vm4", "vm3", 2, 3000)));
    }

    @Test
    void thePapersFigure3HasOneRingAndOneOrphan() {
        RestoreGraph g = figure3();
        assertThat(g.rings()).containsExactly(Set.of("vm1", "vm2", "vm3"));
        assertThat(g.orphans()).containsExactly("vm5");
        assertThat(g.inRing("vm2")).isTrue();
        assertThat(g.inRing("vm4")).isFalse();
        assertThat(g.component("vm1")).isEqualTo(g.component("vm3"));
        assertThat(g.component("vm4")).as("vm4 after the ring it depends on").isGreaterThan(g.component("vm3"));
        assertThat(g.dependencies("vm4")).containsExactly("vm3");
        assertThat(g.dependents("vm3")).containsExactly("vm2", "vm4");
        assertThat(g.edge("vm4", "vm3")).contains(new Edge("vm4", "vm3", 2, 3000, Source.IN_FLIGHT));
        assertThat(g.edge("vm3", "vm4")).isEmpty();
    }

    @Test
    void aChainIsInCausalOrderWithNoRingsOrOrphans() {
        RestoreGraph g = RestoreGraph.fromInFlight(List.of("a", "b", "c"), List.of(t("a", "b", 1, 60), t("b", "c", 1, 60)));
        assertThat(g.components()).containsExactly(List.of("c"), List.of("b"), List.of("a"));
        assertThat(g.rings()).isEmpty();
        assertThat(g.orphans()).isEmpty();
        assertThat(g.dependencies("c")).isEmpty();
        assertThat(g.dependents("a")).isEmpty();
    }

    @Test
    void aDiamondPutsTheSinkFirstAndTheSourceLast() {
        RestoreGraph g = RestoreGraph.fromInFlight(List.of("a", "b", "c", "d"),
                List.of(t("a", "b", 1, 60), t("a", "c", 1, 60), t("b", "d", 1, 60), t("c", "d", 1, 60)));
        assertThat(g.components().getFirst()).containsExactly("d");
        assertThat(g.components().getLast()).containsExactly("a");
        assertThat(g.component("b")).isBetween(g.component("d") + 1, g.component("a") - 1);
        assertThat(g.component("c")).isBetween(g.component("d") + 1, g.component("a") - 1);
    }

    @Test
    void twoRingsJoinedByOneEdgeStayTwoRings() {
        RestoreGraph g = RestoreGraph.fromInFlight(List.of("a", "b", "c", "d"),
                List.of(t("a", "b", 1, 60), t("b", "a", 1, 60), t("c", "d", 1, 60), t("d", "c", 1, 60), t("b", "c", 1, 60)));
        assertThat(g.rings()).containsExactly(Set.of("c", "d"), Set.of("a", "b"));
        assertThat(g.component("a")).isGreaterThan(g.component("d"));
    }

    @Test
    void recordsOfOnePairAddUpAndEmptyOnesAddNoEdge() {
        RestoreGraph g = RestoreGraph.fromInFlight(List.of("a", "b"), List.of(t("a", "b", 1, 60), t("a", "b", 2, 1500), t("b", "a", 0, 0)));
        assertThat(g.edges()).containsExactly(new Edge("a", "b", 3, 1560, Source.IN_FLIGHT));
        assertThat(RestoreGraph.fromInFlight(List.of("a", "b"), List.of()).orphans()).containsExactly("a", "b");
    }

    @Test
    void badInputIsRejectedWithExpectedAndActual() {
        assertThatThrownBy(() -> RestoreGraph.fromInFlight(List.of("a", "b"), List.of(t("a", "x", 1, 60))))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("expected one of the members [a, b], actual x");
        assertThatThrownBy(() -> t("a", "a", 1, 60)).hasMessageContaining("expected two different members, actual a -> a");
        assertThatThrownBy(() -> t("a", "b", -1, 60)).hasMessageContaining("expected frames and bytes >= 0, actual -1 frames");
        assertThatThrownBy(() -> t("a", "b", 0, 60)).hasMessageContaining("expected bytes >= frames, both zero or neither");
        assertThatThrownBy(() -> t("a", "b", 5, 4)).hasMessageContaining("actual 5 frames, 4 bytes");
        assertThatThrownBy(() -> t("a", "b", 1, 60).plus(t("b", "a", 1, 60))).hasMessageContaining("expected a -> b, actual b -> a");
        assertThatThrownBy(() -> t(" ", "b", 1, 60)).hasMessageContaining("expected a member name, actual ' '");
        assertThatThrownBy(() -> RestoreGraph.fromInFlight(List.of("a", "a"), List.of())).hasMessageContaining("actual a twice");
        assertThatThrownBy(() -> RestoreGraph.fromInFlight(List.of(), List.of())).hasMessageContaining("expected at least one member");
        RestoreGraph g = figure3();
        assertThatThrownBy(() -> g.dependencies("vm9")).hasMessageContaining("actual vm9");
        assertThatThrownBy(() -> g.enrichedWith(List.of(t("vm1", "vm9", 1, 60)), Enrichment.DEFAULT)).hasMessageContaining("recorded traffic");
        assertThatThrownBy(() -> new Enrichment(0, 4)).hasMessageContaining("expected minBytes >= 1, actual 0");
        assertThatThrownBy(() -> new Enrichment(1, 1.0)).hasMessageContaining("expected a finite dominance > 1, actual 1.0");
    }

    @Test
    void recordedTrafficAddsTheDataDirectionBalancedPairsAsARingAndIgnoresChatter() {
        RestoreGraph base = RestoreGraph.fromInFlight(List.of("client", "server", "peer", "idle", "quiet"), List.of(t("peer", "idle", 1, 60)));
        RestoreGraph g = base.enrichedWith(List.of(
                t("client", "server", 1000, 1_500_000), t("server", "client", 500, 30_000), // bulk data and its acks
                t("server", "peer", 800, 800_000), t("peer", "server", 700, 700_000),       // both send data
                t("idle", "peer", 50, 1_000_000),                                         // the pair has a frame in flight
                t("quiet", "client", 3, 180), t("client", "quiet", 3, 180)),              // ARP-sized chatter
                Enrichment.DEFAULT);
        assertThat(g.edge("client", "server")).hasValueSatisfying(e -> assertThat(e.source()).isEqualTo(Source.RECORDED));
        assertThat(g.edge("server", "client")).as("the acks' direction").isEmpty();
        assertThat(g.rings()).containsExactly(Set.of("peer", "server"));
        assertThat(g.edge("idle", "peer")).as("in flight wins over recorded").isEmpty();
        assertThat(g.edge("peer", "idle")).hasValueSatisfying(e -> assertThat(e.source()).isEqualTo(Source.IN_FLIGHT));
        assertThat(g.orphans()).containsExactly("quiet");
        assertThat(base.edges()).as("the original graph is unchanged").hasSize(1);
    }
}
