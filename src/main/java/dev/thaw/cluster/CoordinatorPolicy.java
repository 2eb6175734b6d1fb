package dev.thaw.cluster;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * HotRestore's checker (§4.2.1, §4.3): which members may START now, given what each has reported.
 * A member starts once its working set is loaded and every member it depends on runs (rules 1-3:
 * direct dependencies suffice, since those only ran after theirs); the members of a ring start
 * together, once all of them are loaded (rule 5); members without dependencies, orphans among them,
 * start as soon as they are loaded (rules 4, 6). Pure code.
 */
public final class CoordinatorPolicy {
    /** Where a member is in the restore, from the coordinator's side. */
    public enum Phase {
        /** LOAD sent, no LOAD_FIN yet. */
        LOADING,
        /** LOAD_FIN received: ready to START. */
        LOADED,
        /** START sent, no START_FIN yet: not known to run. */
        STARTING,
        /** START_FIN received: the guest runs. */
        RUNNING,
        /** RESTORE_FIN received: runs, every page in. */
        RESTORED;

        public boolean runs() {
            return this == RUNNING || this == RESTORED;
        }
    }

    private final RestoreGraph graph;

    public CoordinatorPolicy(RestoreGraph graph) {
        this.graph = graph;
    }

    /** The members that may START now: in causal order (dependencies first), ring members by name. */
    public List<String> mayStart(Map<String, Phase> phases) {
        for (String m : phases.keySet()) graph.checkMember(m);
        for (String m : graph.members()) {
            if (!phases.containsKey(m)) throw new IllegalArgumentException("coordinator policy: expected a phase for every member, actual none for " + m);
        }
        List<String> start = new ArrayList<>();
        for (List<String> component : graph.components()) {
            if (component.stream().allMatch(m -> phases.get(m) == Phase.LOADED) && dependenciesRun(component, phases)) {
                start.addAll(component);
            }
        }
        return start;
    }

    private boolean dependenciesRun(List<String> component, Map<String, Phase> phases) {
        for (String m : component) {
            for (String d : graph.dependencies(m)) {
                if (!component.contains(d) && !phases.get(d).runs()) return false;
            }
        }
        return true;
    }
}
