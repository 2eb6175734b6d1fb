package dev.thaw.cluster.checkpoint;

import dev.thaw.cluster.RestoreGraph;
import dev.thaw.cluster.RestoreLine;
import dev.thaw.cluster.Traffic;
import dev.thaw.cluster.net.Frame;
import java.util.List;
import java.util.Map;

/**
 * What a {@link Strategy} does with a checkpoint (pure): the dependency graph the coordinator orders the starts by, the restore
 * line (each member's revised working set, the LOAD order), the frames the switch delivers after the restore, and whether it holds
 * each member until it runs.
 *
 * @param graph            the coordinator's graph: no edge at all for {@link Strategy#INDEPENDENT}
 * @param line             the revised sizes and the LOAD order
 * @param deliver          the frames preloaded into the new switch, in order (held only)
 * @param holdUntilRunning the switch holds each member's frames until it runs (held only)
 * @param framesLost       frames in flight at the cut that this strategy does not deliver
 */
public record RestorePlan(Strategy strategy, RestoreGraph graph, RestoreLine line, List<Frame> deliver, boolean holdUntilRunning,
                          int framesLost) {
    public RestorePlan {
        deliver = List.copyOf(deliver);
    }

    /**
     * @param inFlight the checkpoint's frames (in flight at the cut)
     * @param recorded the switch's traffic record before the save (the graph's enrichment)
     * @param sizes    each member's working-set estimate and memory, in pages
     */
    public static RestorePlan of(Strategy strategy, List<String> members, List<Frame> inFlight, List<Traffic> recorded,
                                 Map<String, RestoreLine.SizeEstimate> sizes) {
        RestoreGraph graph = strategy == Strategy.INDEPENDENT ? RestoreGraph.fromInFlight(members, List.of())
                : RestoreGraph.fromInFlight(members, Frame.summarize(inFlight)).enrichedWith(recorded, RestoreGraph.Enrichment.DEFAULT);
        RestoreLine line = RestoreLine.compute(graph, sizes);
        boolean held = strategy == Strategy.HELD;
        return new RestorePlan(strategy, graph, line, held ? inFlight : List.of(), held, held ? 0 : inFlight.size());
    }
}
