package dev.thaw.cluster;

import static dev.thaw.cluster.RestoreGraphTest.t;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.cluster.CohortMessage.Load;
import dev.thaw.cluster.CohortMessage.LoadFin;
import dev.thaw.cluster.CohortMessage.RestoreFin;
import dev.thaw.cluster.CohortMessage.Start;
import dev.thaw.cluster.CohortMessage.StartFin;
import dev.thaw.cluster.CoordinatorPolicy.Phase;
import dev.thaw.cluster.RestoreLine.SizeEstimate;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The checker's rules and the coordinator's side of LOAD, LOAD_FIN, START, START_FIN, RESTORE_FIN. */
class CoordinatorTest {
    private static RestoreGraph graph(List<String> members, Traffic... inFlight) {
        return RestoreGraph.fromInFlight(members, List.of(inFlight));
    }

    private static Coordinator coordinator(RestoreGraph g) {
        Map<String, SizeEstimate> sizes = new HashMap<>();
        for (String m : g.members()) sizes.put(m, SizeEstimate.of(100));
        return new Coordinator(g, RestoreLine.compute(g, sizes));
    }

    private static List<CohortMessage> starts(String... members) {
        return java.util.Arrays.stream(members).<CohortMessage>map(Start::new).toList();
    }

    @Test
    void aChainStartsFromItsReceiverOneMemberAtATime() {
        RestoreGraph g = graph(List.of("a", "b", "c"), t("a", "b", 1, 60), t("b", "c", 1, 60));
        Coordinator co = coordinator(g);
        List<CohortMessage> loads = co.begin();
        assertThat(loads).as("LOAD in restore-line order with revised sizes").containsExactly(new Load("c", 99), new Load("b", 100), new Load("a", 101));
        assertThat(co.receive(new LoadFin("a"))).isEmpty();
        assertThat(co.receive(new LoadFin("b"))).isEmpty();
        assertThat(co.receive(new LoadFin("c"))).isEqualTo(starts("c"));
        assertThat(co.phase("c")).isEqualTo(Phase.STARTING);
        assertThat(co.receive(new StartFin("c"))).isEqualTo(starts("b"));
        assertThat(co.receive(new StartFin("b"))).isEqualTo(starts("a"));
        assertThat(co.receive(new RestoreFin("c"))).isEmpty();
        assertThat(co.receive(new StartFin("a"))).isEmpty();
        assertThat(co.finished()).isFalse();
        co.receive(new RestoreFin("a"));
        co.receive(new RestoreFin("b"));
        assertThat(co.finished()).isTrue();
    }

    @Test
    void aDiamondsSourceWaitsForBothMiddles() {
        RestoreGraph g = graph(List.of("a", "b", "c", "d"), t("a", "b", 1, 60), t("a", "c", 1, 60), t("b", "d", 1, 60), t("c", "d", 1, 60));
        Coordinator co = coordinator(g);
        co.begin();
        for (String m : List.of("a", "b", "c")) assertThat(co.receive(new LoadFin(m))).isEmpty();
        assertThat(co.receive(new LoadFin("d"))).isEqualTo(starts("d"));
        assertThat(co.receive(new StartFin("d"))).as("b and c together, in causal order").containsExactlyInAnyOrderElementsOf(starts("b", "c"));
        assertThat(co.receive(new StartFin("b"))).as("a still waits for c").isEmpty();
        assertThat(co.receive(new StartFin("c"))).isEqualTo(starts("a"));
    }

    @Test
    void aRingStartsTogetherOnceAllOfItIsLoaded() {
        RestoreGraph g = graph(List.of("x", "y", "z"), t("x", "y", 1, 60), t("y", "x", 1, 60), t("z", "x", 1, 60));
        Coordinator co = coordinator(g);
        co.begin();
        assertThat(co.receive(new LoadFin("z"))).isEmpty();
        assertThat(co.receive(new LoadFin("x"))).as("y is not loaded yet").isEmpty();
        assertThat(co.receive(new LoadFin("y"))).isEqualTo(starts("x", "y"));
        assertThat(co.receive(new StartFin("x"))).as("z needs x only, which runs").isEqualTo(starts("z"));
    }

    @Test
    void anOrphanAndAMemberWhoseDependenciesRunStartOnTheirLoadFin() {
        RestoreGraph g = graph(List.of("a", "b", "o"), t("a", "b", 1, 60));
        Coordinator co = coordinator(g);
        co.begin();
        assertThat(co.receive(new LoadFin("o"))).isEqualTo(starts("o"));
        assertThat(co.receive(new LoadFin("b"))).isEqualTo(starts("b"));
        assertThat(co.receive(new StartFin("b"))).as("a is not loaded yet").isEmpty();
        assertThat(co.receive(new LoadFin("a"))).isEqualTo(starts("a"));
    }

    @Test
    void thePolicyCountsOnlyRunningDependencies() {
        RestoreGraph g = graph(List.of("a", "b", "o"), t("a", "b", 1, 60));
        CoordinatorPolicy policy = new CoordinatorPolicy(g);
        assertThat(policy.mayStart(Map.of("a", Phase.LOADED, "b", Phase.STARTING, "o", Phase.LOADING))).isEmpty();
        assertThat(policy.mayStart(Map.of("a", Phase.LOADED, "b", Phase.RESTORED, "o", Phase.LOADED))).containsExactly("a", "o");
        assertThat(policy.mayStart(Map.of("a", Phase.RUNNING, "b", Phase.LOADED, "o", Phase.STARTING))).containsExactly("b");
        assertThatThrownBy(() -> policy.mayStart(Map.of("a", Phase.LOADED))).hasMessageContaining("actual none for b");
        assertThatThrownBy(() -> policy.mayStart(Map.of("a", Phase.LOADED, "b", Phase.LOADED, "o", Phase.LOADED, "q", Phase.LOADED)))
                .hasMessageContaining("actual q");
    }

    @Test
    void messagesOutOfOrderAreProtocolViolations() {
        RestoreGraph g = graph(List.of("a", "b"), t("a", "b", 1, 60));
        Coordinator co = coordinator(g);
        assertThatThrownBy(() -> co.receive(new LoadFin("a"))).isInstanceOf(IllegalStateException.class).hasMessageContaining("expected begin()");
        co.begin();
        assertThatThrownBy(co::begin).hasMessageContaining("actual a second");
        assertThatThrownBy(() -> co.receive(new StartFin("a"))).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("START_FIN from a: expected the member in phase STARTING, actual LOADING");
        assertThatThrownBy(() -> co.receive(new RestoreFin("b"))).hasMessageContaining("expected the member in phase RUNNING, actual LOADING");
        co.receive(new LoadFin("a"));
        assertThatThrownBy(() -> co.receive(new LoadFin("a"))).hasMessageContaining("LOAD_FIN from a: expected the member in phase LOADING, actual LOADED");
        assertThatThrownBy(() -> co.receive(new Start("a"))).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("expected LOAD_FIN, START_FIN or RESTORE_FIN from a cohort, actual START");
        assertThatThrownBy(() -> co.receive(new Load("a", 5))).hasMessageContaining("actual LOAD");
        assertThatThrownBy(() -> co.receive(new LoadFin("z"))).hasMessageContaining("actual LoadFin[member=z]");
        assertThatThrownBy(() -> co.phase("z")).hasMessageContaining("actual z");
        RestoreGraph other = graph(List.of("a", "c"));
        assertThatThrownBy(() -> new Coordinator(other, RestoreLine.compute(g, Map.of("a", SizeEstimate.of(1), "b", SizeEstimate.of(1)))))
                .hasMessageContaining("expected a restore line of the graph's members [a, c], actual [b, a]");
    }

    @Test
    void messageTypesReserveZeroOnTheWire() {
        for (CohortMessage.Type type : CohortMessage.Type.values()) {
            if (type != CohortMessage.Type.INVALID) assertThat(CohortMessage.Type.of(type.code())).isEqualTo(type);
        }
        assertThat(CohortMessage.Type.INVALID.code()).isZero();
        assertThatThrownBy(() -> CohortMessage.Type.of(0)).hasMessageContaining("expected a code in 1..5, actual 0");
        assertThatThrownBy(() -> CohortMessage.Type.of(6)).hasMessageContaining("actual 6");
        assertThat(List.of(new Load("a", 1), new LoadFin("a"), new Start("a"), new StartFin("a"), new RestoreFin("a")))
                .extracting(CohortMessage::type).extracting(CohortMessage.Type::code).containsExactly(1, 2, 3, 4, 5);
        assertThatThrownBy(() -> new Load("a", -1)).hasMessageContaining("expected workingSetPages >= 0, actual -1");
        assertThatThrownBy(() -> new Start("")).hasMessageContaining("expected a member name");
    }
}
