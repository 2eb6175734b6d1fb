package dev.thaw.cluster.checkpoint;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.cluster.CohortMessage;
import dev.thaw.cluster.Coordinator;
import dev.thaw.cluster.RestoreLine.SizeEstimate;
import dev.thaw.cluster.Traffic;
import dev.thaw.cluster.net.Frame;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** What each strategy does with a checkpoint (pure): the order the coordinator starts members in, what is delivered, what is held. */
class RestorePlanTest {
    private static final List<String> MEMBERS = List.of("client", "server", "idle");
    /** The client had two frames in flight to the server at the cut; nothing the other way. */
    private static final List<Frame> IN_FLIGHT = List.of(new Frame(1, "client", "server", ClusterManifestTest.ethernet(2, 1, "one")),
            new Frame(2, "client", "server", ClusterManifestTest.ethernet(2, 1, "two")));
    private static final Map<String, SizeEstimate> SIZES = Map.of("client", SizeEstimate.bounded(10, 1000),
            "server", SizeEstimate.bounded(10, 1000), "idle", SizeEstimate.bounded(5, 1000));

    /** The STARTs the coordinator sends as the members report LOAD_FIN in the order given, each running as soon as started. */
    private static List<String> starts(RestorePlan plan, String... loadFinOrder) {
        Coordinator c = new Coordinator(plan.graph(), plan.line());
        c.begin();
        java.util.ArrayList<String> started = new java.util.ArrayList<>();
        java.util.ArrayDeque<CohortMessage> pending = new java.util.ArrayDeque<>();
        for (String m : loadFinOrder) {
            pending.addAll(c.receive(new CohortMessage.LoadFin(m)));
            while (!pending.isEmpty()) {
                String s = pending.poll().member();
                started.add(s);
                pending.addAll(c.receive(new CohortMessage.StartFin(s)));
            }
        }
        return started;
    }

    @Test
    void independentStartsEachMemberWhenItIsLoadedAndDeliversNothing() {
        RestorePlan plan = RestorePlan.of(Strategy.INDEPENDENT, MEMBERS, IN_FLIGHT, List.of(), SIZES);
        assertThat(plan.graph().edges()).isEmpty();
        assertThat(starts(plan, "client", "idle", "server")).containsExactly("client", "idle", "server");
        assertThat(plan.deliver()).isEmpty();
        assertThat(plan.holdUntilRunning()).isFalse();
        assertThat(plan.framesLost()).isEqualTo(2);
        assertThat(plan.line().placement("client").revisedPages()).as("no edge: no revision").isEqualTo(10);
    }

    @Test
    void restoreLineStartsTheSenderOnlyOnceItsReceiverRunsAndDeliversNothing() {
        RestorePlan plan = RestorePlan.of(Strategy.RESTORE_LINE, MEMBERS, IN_FLIGHT, List.of(), SIZES);
        assertThat(plan.graph().dependencies("client")).containsExactly("server");
        assertThat(starts(plan, "client", "idle", "server")).as("the client waits for the server").containsExactly("idle", "server", "client");
        assertThat(plan.line().placement("client").revisedPages()).as("the sender loads more than its receiver")
                .isGreaterThan(plan.line().placement("server").revisedPages());
        assertThat(plan.line().order().getFirst().member()).isNotEqualTo("client");
        assertThat(plan.deliver()).isEmpty();
        assertThat(plan.holdUntilRunning()).isFalse();
        assertThat(plan.framesLost()).isEqualTo(2);
    }

    @Test
    void heldOrdersAsTheRestoreLineAndDeliversEveryFrameInOrder() {
        RestorePlan plan = RestorePlan.of(Strategy.HELD, MEMBERS, IN_FLIGHT, List.of(), SIZES);
        assertThat(starts(plan, "client", "idle", "server")).containsExactly("idle", "server", "client");
        assertThat(plan.deliver()).isEqualTo(IN_FLIGHT);
        assertThat(plan.holdUntilRunning()).isTrue();
        assertThat(plan.framesLost()).isZero();
    }

    @Test
    void recordedTrafficOrdersPairsWithNothingInFlight() {
        List<Traffic> recorded = List.of(new Traffic("idle", "server", 1000, 1_000_000), new Traffic("server", "idle", 100, 6000));
        RestorePlan plan = RestorePlan.of(Strategy.HELD, MEMBERS, IN_FLIGHT, recorded, SIZES);
        assertThat(plan.graph().dependencies("idle")).containsExactly("server");
        assertThat(RestorePlan.of(Strategy.INDEPENDENT, MEMBERS, IN_FLIGHT, recorded, SIZES).graph().edges()).isEmpty();
    }

    @Test
    void strategiesParseByTheirCommandLineNames() {
        assertThat(List.of("independent", "restore-line", "held").stream().map(Strategy::parse))
                .containsExactly(Strategy.INDEPENDENT, Strategy.RESTORE_LINE, Strategy.HELD);
        assertThat(Strategy.HELD.label()).isEqualTo("held");
        assertThat(Strategy.RESTORE_LINE.label()).isEqualTo("restore-line");
        assertThatThrownBy(() -> Strategy.parse("eager")).hasMessage("--strategy: expected independent, restore-line or held, actual 'eager'");
    }
}
