package dev.thaw.cluster;

import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * HotRestore's restore dependency graph (§4.1, §5.1): one node per member of a virtual cluster and
 * an edge {@code i -> j} ("i depends on j") when i sent j frames that j had not received at the
 * cluster's cut. After the restore i sends them again (Thaw's switch replays them), so j must be
 * running no later than i. The frames in flight carry no ack of a frame in the other direction
 * (an ack is sent on receipt), so they give the sender's dependency alone.
 *
 * <p>Rings (strongly connected components of more than one member, found with Tarjan's algorithm)
 * start together; orphans (no edge in or out) start whenever they are ready. Pure code: no QEMU, no
 * threads; immutable.
 */
public final class RestoreGraph {
    /** Where an edge comes from: the log of frames in flight at the cut, or the traffic recorded before it. */
    public enum Source { IN_FLIGHT, RECORDED }

    /** {@code from} depends on {@code to}: what {@code from} sent {@code to} (in flight, or recorded). */
    public record Edge(String from, String to, long frames, long bytes, Source source) {}

    /**
     * How recorded traffic adds edges between members that had nothing in flight either way. A
     * direction counts from {@code minBytes} on (ARP and other chatter stay out); the direction
     * carrying {@code dominance} times the bytes of the other is the data and the other its acks or
     * answers, so only the data's sender depends on the receiver; neither dominating means both send
     * data: an edge each way, a ring.
     */
    public record Enrichment(long minBytes, double dominance) {
        /** 64 KiB and 4x: bulk TCP data outweighs its acks (about 66 bytes per two full segments) some 40 times. */
        public static final Enrichment DEFAULT = new Enrichment(64 * 1024, 4.0);

        public Enrichment {
            if (minBytes < 1) throw new IllegalArgumentException("enrichment: expected minBytes >= 1, actual " + minBytes);
            if (!(dominance > 1.0) || Double.isInfinite(dominance)) {
                throw new IllegalArgumentException("enrichment: expected a finite dominance > 1, actual " + dominance);
            }
        }
    }

    private final List<String> members;
    private final Map<String, Map<String, Edge>> out; // from -> to -> edge, both in name order
    private final Map<String, Set<String>> in;
    private final List<List<String>> components;
    private final Map<String, Integer> componentOf;

    private RestoreGraph(List<String> members, Map<String, Map<String, Edge>> out) {
        this.members = List.copyOf(members);
        this.out = out;
        this.in = new HashMap<>();
        for (String m : members) in.put(m, new TreeSet<>());
        for (Map<String, Edge> edges : out.values()) {
            for (Edge e : edges.values()) in.get(e.to()).add(e.from());
        }
        this.components = new Tarjan().run();
        this.componentOf = new HashMap<>();
        for (int c = 0; c < components.size(); c++) {
            for (String m : components.get(c)) componentOf.put(m, c);
        }
    }

    /** The graph of the frames in flight at the cut; records of the same pair add up, empty ones add no edge. */
    public static RestoreGraph fromInFlight(Collection<String> members, Collection<Traffic> inFlight) {
        List<String> names = checkedMembers(members);
        Map<String, Map<String, Edge>> out = emptyEdges(names);
        for (Map.Entry<List<String>, Traffic> pair : sumByPair(names, inFlight, "in-flight log").entrySet()) {
            Traffic t = pair.getValue();
            if (t.frames() > 0) out.get(t.from()).put(t.to(), new Edge(t.from(), t.to(), t.frames(), t.bytes(), Source.IN_FLIGHT));
        }
        return new RestoreGraph(names, out);
    }

    /**
     * This graph plus edges from the traffic recorded before the save, between pairs of members
     * that had no frame in flight either way (the in-flight log is the better evidence), by
     * {@code rule}.
     */
    public RestoreGraph enrichedWith(Collection<Traffic> recorded, Enrichment rule) {
        Map<List<String>, Traffic> sums = sumByPair(members, recorded, "recorded traffic");
        Map<String, Map<String, Edge>> enriched = emptyEdges(members);
        for (String m : members) enriched.get(m).putAll(out.get(m));
        for (Traffic t : sums.values()) {
            if (edge(t.from(), t.to()).isPresent() || edge(t.to(), t.from()).isPresent()) continue;
            Traffic back = sums.get(List.of(t.to(), t.from()));
            long backBytes = back == null ? 0 : back.bytes();
            boolean dominated = backBytes > t.bytes() && backBytes >= rule.dominance() * t.bytes();
            if (t.bytes() >= rule.minBytes() && !dominated) {
                enriched.get(t.from()).put(t.to(), new Edge(t.from(), t.to(), t.frames(), t.bytes(), Source.RECORDED));
            }
        }
        return new RestoreGraph(members, enriched);
    }

    /** The members, in the order given. */
    public List<String> members() {
        return members;
    }

    /** Every edge, by sender then receiver name. */
    public List<Edge> edges() {
        List<Edge> all = new ArrayList<>();
        for (String m : new TreeSet<>(members)) all.addAll(out.get(m).values());
        return all;
    }

    public Optional<Edge> edge(String from, String to) {
        return Optional.ofNullable(out.get(checkMember(from)).get(checkMember(to)));
    }

    /** The members {@code member} depends on directly (its edges' receivers), by name. */
    public Set<String> dependencies(String member) {
        return new TreeSet<>(out.get(checkMember(member)).keySet());
    }

    /** The members that depend directly on {@code member}, by name. */
    public Set<String> dependents(String member) {
        return new TreeSet<>(in.get(checkMember(member)));
    }

    /**
     * The strongly connected components in causal restore order: every component after those it
     * depends on (Tarjan's algorithm emits them so), members of each by name.
     */
    public List<List<String>> components() {
        return components;
    }

    /** The index in {@link #components()} of {@code member}'s component. */
    public int component(String member) {
        return componentOf.get(checkMember(member));
    }

    /** The components of more than one member: they start together (HotRestore's rule 5). */
    public List<Set<String>> rings() {
        List<Set<String>> rings = new ArrayList<>();
        for (List<String> c : components) {
            if (c.size() > 1) rings.add(new TreeSet<>(c));
        }
        return rings;
    }

    public boolean inRing(String member) {
        return components.get(component(member)).size() > 1;
    }

    /** Members with no edge in or out (rule 6: free in the restore order), by name. */
    public Set<String> orphans() {
        Set<String> orphans = new TreeSet<>();
        for (String m : members) {
            if (out.get(m).isEmpty() && in.get(m).isEmpty()) orphans.add(m);
        }
        return orphans;
    }

    String checkMember(String name) {
        if (!out.containsKey(name)) {
            throw new IllegalArgumentException("restore graph: expected one of the members " + members + ", actual " + name);
        }
        return name;
    }

    private static List<String> checkedMembers(Collection<String> members) {
        if (members.isEmpty()) throw new IllegalArgumentException("restore graph: expected at least one member, actual none");
        Set<String> seen = new LinkedHashSet<>();
        for (String m : members) {
            Traffic.requireName("restore graph member", m);
            if (!seen.add(m)) throw new IllegalArgumentException("restore graph: expected distinct member names, actual " + m + " twice");
        }
        return List.copyOf(seen);
    }

    private static Map<String, Map<String, Edge>> emptyEdges(List<String> members) {
        Map<String, Map<String, Edge>> out = new HashMap<>();
        for (String m : members) out.put(m, new TreeMap<>());
        return out;
    }

    private static Map<List<String>, Traffic> sumByPair(List<String> members, Collection<Traffic> log, String what) {
        Set<String> known = Set.copyOf(members);
        Map<List<String>, Traffic> sums = new TreeMap<>(Comparator.comparing((List<String> p) -> p.get(0)).thenComparing(p -> p.get(1)));
        for (Traffic t : log) {
            for (String end : List.of(t.from(), t.to())) {
                if (!known.contains(end)) {
                    throw new IllegalArgumentException(what + ": expected one of the members " + members + ", actual " + end
                            + " in " + t.from() + " -> " + t.to());
                }
            }
            sums.merge(List.of(t.from(), t.to()), t, Traffic::plus);
        }
        return sums;
    }

    /** Tarjan's strongly connected components; clusters are small, so recursion depth is the member count. */
    private final class Tarjan {
        private final Map<String, Integer> index = new HashMap<>();
        private final Map<String, Integer> low = new HashMap<>();
        private final ArrayList<String> stack = new ArrayList<>();
        private final Set<String> onStack = new java.util.HashSet<>();
        private final List<List<String>> found = new ArrayList<>();

        List<List<String>> run() {
            for (String m : new TreeSet<>(members)) {
                if (!index.containsKey(m)) visit(m);
            }
            return List.copyOf(found);
        }

        private void visit(String v) {
            index.put(v, index.size());
            low.put(v, index.get(v));
            stack.add(v);
            onStack.add(v);
            for (String w : out.get(v).keySet()) {
                if (!index.containsKey(w)) {
                    visit(w);
                    low.put(v, Math.min(low.get(v), low.get(w)));
                } else if (onStack.contains(w)) {
                    low.put(v, Math.min(low.get(v), index.get(w)));
                }
            }
            if (low.get(v).equals(index.get(v))) {
                List<String> component = new ArrayList<>();
                String w;
                do {
                    w = stack.removeLast();
                    onStack.remove(w);
                    component.add(w);
                } while (!w.equals(v));
                component.sort(null);
                found.add(List.copyOf(component));
            }
        }
    }
}
