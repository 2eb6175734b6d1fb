package dev.thaw.cluster;

import dev.thaw.cluster.CoordinatorPolicy.Phase;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The coordinator's side of the restore protocol (HotRestore §4.3) as a pure state machine: it
 * takes the cohorts' messages one at a time and answers with the messages to send. {@link #begin()}
 * sends every cohort LOAD with its revised size, in restore-line order; each LOAD_FIN and START_FIN
 * is answered with START for the members {@link CoordinatorPolicy} lets start now. A message out of
 * order is a protocol violation and fails at once, naming the member and both phases. Not
 * thread-safe: the transport (ZooKeeper, next) feeds it from one thread.
 */
public final class Coordinator {
    private final RestoreLine line;
    private final CoordinatorPolicy policy;
    private final Map<String, Phase> phases = new LinkedHashMap<>();
    private boolean begun;

    public Coordinator(RestoreGraph graph, RestoreLine line) {
        if (!new HashSet<>(graph.members()).equals(new HashSet<>(line.members()))) {
            throw new IllegalArgumentException("coordinator: expected a restore line of the graph's members " + graph.members()
                    + ", actual " + line.members());
        }
        this.line = line;
        this.policy = new CoordinatorPolicy(graph);
    }

    /** LOAD for every member, in restore-line order (smallest revised working set first). */
    public List<CohortMessage> begin() {
        if (begun) throw new IllegalStateException("coordinator: expected one begin, actual a second");
        begun = true;
        List<CohortMessage> loads = new ArrayList<>();
        for (RestoreLine.Placement p : line.order()) {
            phases.put(p.member(), Phase.LOADING);
            loads.add(new CohortMessage.Load(p.member(), p.revisedPages()));
        }
        return loads;
    }

    /** Takes one cohort message and returns the STARTs it allows (none for RESTORE_FIN). */
    public List<CohortMessage> receive(CohortMessage message) {
        if (!begun) throw new IllegalStateException("coordinator: expected begin() before any cohort message, actual " + message);
        Phase now = phases.get(message.member());
        if (now == null) {
            throw new IllegalArgumentException("coordinator: expected a message from one of " + phases.keySet() + ", actual " + message);
        }
        Phase expected = switch (message) {
            case CohortMessage.LoadFin _ -> Phase.LOADING;
            case CohortMessage.StartFin _ -> Phase.STARTING;
            case CohortMessage.RestoreFin _ -> Phase.RUNNING;
            case CohortMessage.Load m -> throw notFromCohort(m);
            case CohortMessage.Start m -> throw notFromCohort(m);
        };
        if (now != expected) {
            throw new IllegalStateException("coordinator: " + message.type() + " from " + message.member() + ": expected the member in phase "
                    + expected + ", actual " + now);
        }
        phases.put(message.member(), switch (message.type()) {
            case LOAD_FIN -> Phase.LOADED;
            case START_FIN -> Phase.RUNNING;
            default -> Phase.RESTORED;
        });
        List<CohortMessage> starts = new ArrayList<>();
        for (String m : policy.mayStart(phases)) {
            phases.put(m, Phase.STARTING);
            starts.add(new CohortMessage.Start(m));
        }
        return starts;
    }

    public Phase phase(String member) {
        Phase p = phases.get(member);
        if (p == null) throw new IllegalArgumentException("coordinator: expected one of " + line.members() + " after begin(), actual " + member);
        return p;
    }

    /** Every member sent RESTORE_FIN: the cluster's restore is complete. */
    public boolean finished() {
        return begun && phases.values().stream().allMatch(p -> p == Phase.RESTORED);
    }

    private static IllegalArgumentException notFromCohort(CohortMessage m) {
        return new IllegalArgumentException("coordinator: expected LOAD_FIN, START_FIN or RESTORE_FIN from a cohort, actual " + m.type()
                + " for " + m.member());
    }
}
