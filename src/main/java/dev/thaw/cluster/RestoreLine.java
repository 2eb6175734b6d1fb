package dev.thaw.cluster;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalLong;
import org.apache.commons.math3.exception.TooManyIterationsException;
import org.apache.commons.math3.optim.MaxIter;
import org.apache.commons.math3.optim.PointValuePair;
import org.apache.commons.math3.optim.linear.LinearConstraint;
import org.apache.commons.math3.optim.linear.LinearConstraintSet;
import org.apache.commons.math3.optim.linear.LinearObjectiveFunction;
import org.apache.commons.math3.optim.linear.NoFeasibleSolutionException;
import org.apache.commons.math3.optim.linear.NonNegativeConstraint;
import org.apache.commons.math3.optim.linear.PivotSelectionRule;
import org.apache.commons.math3.optim.linear.Relationship;
import org.apache.commons.math3.optim.linear.SimplexSolver;
import org.apache.commons.math3.optim.nonlinear.scalar.GoalType;

/**
 * HotRestore's restore line (§4.2): each member's working-set size S_i revised to S_i* so that
 * S_i* >= S_j* + W_ij for every dependency i -> j between components, S_i* = S_j* within a ring, and
 * 0 <= S_i* <= the member's pages, with the sum of |S_i* - S_i| as small as possible; the members
 * then start in ascending order of S_i* (a member's start is its working set's load time).
 *
 * <p>The linear program is the paper's, linearized with one auxiliary t_i >= |S_i* - S_i| per
 * member (t_i >= S_i* - S_i, t_i >= S_i - S_i*, minimize the sum of t_i), and solved with Commons
 * Math's simplex solver. Its constraints are differences of two variables, so an optimal vertex is
 * integral; the solution is rounded to pages and checked against every constraint.
 *
 * <p>W_ij is in pages, the sizes' unit: the bytes i had in flight to j, rounded up to 4 KiB pages
 * (the paper counts packets; only the strict order matters, and pages keep it in the sizes' unit).
 * An edge from recorded traffic weighs one page: it orders, but its bytes were delivered.
 *
 * @param order the members in start order: ascending revised size, then name
 * @param movedPages the optimum: the sum of |S_i* - S_i|
 */
public record RestoreLine(List<Placement> order, long movedPages) {
    /** x86's target page: the unit of the working-set sizes. */
    public static final long PAGE_BYTES = 4096;

    /** A member's working-set estimate and, if known, its memory's page count (the upper bound of its size). */
    public record SizeEstimate(long estimatePages, OptionalLong memoryPages) {
        public SizeEstimate {
            if (estimatePages < 0) throw new IllegalArgumentException("size estimate: expected estimatePages >= 0, actual " + estimatePages);
            if (memoryPages.isPresent() && memoryPages.getAsLong() < estimatePages) {
                throw new IllegalArgumentException("size estimate: expected estimatePages <= memoryPages, actual "
                        + estimatePages + " > " + memoryPages.getAsLong());
            }
        }

        public static SizeEstimate of(long estimatePages) {
            return new SizeEstimate(estimatePages, OptionalLong.empty());
        }

        public static SizeEstimate bounded(long estimatePages, long memoryPages) {
            return new SizeEstimate(estimatePages, OptionalLong.of(memoryPages));
        }
    }

    /** A member's place on the line: its estimate and revised working-set size. */
    public record Placement(String member, long estimatePages, long revisedPages) {}

    public RestoreLine {
        order = List.copyOf(order);
    }

    /** The members in start order. */
    public List<String> members() {
        return order.stream().map(Placement::member).toList();
    }

    public Placement placement(String member) {
        return order.stream().filter(p -> p.member().equals(member)).findFirst()
                .orElseThrow(() -> new IllegalArgumentException("restore line: expected one of " + members() + ", actual " + member));
    }

    /** W_ij in pages (see the class comment). */
    public static long weightPages(RestoreGraph.Edge edge) {
        return edge.source() == RestoreGraph.Source.IN_FLIGHT ? Math.max(1, Math.ceilDiv(edge.bytes(), PAGE_BYTES)) : 1;
    }

    /** Solves the paper's linear program for {@code graph} and every member's estimate. */
    public static RestoreLine compute(RestoreGraph graph, Map<String, SizeEstimate> sizes) {
        List<String> members = graph.members();
        for (String m : sizes.keySet()) graph.checkMember(m);
        for (String m : members) {
            if (!sizes.containsKey(m)) throw new IllegalArgumentException("restore line: expected a size estimate for every member, actual none for " + m);
        }
        checkFeasible(graph, sizes);
        int n = members.size();
        Map<String, Integer> var = new HashMap<>();
        for (int i = 0; i < n; i++) var.put(members.get(i), i);
        // Variables 0..n-1: S_i*; n..2n-1: t_i.
        double[] objective = new double[2 * n];
        List<LinearConstraint> constraints = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            objective[n + i] = 1;
            SizeEstimate size = sizes.get(members.get(i));
            constraints.add(new LinearConstraint(row(2 * n, n + i, 1, i, -1), Relationship.GEQ, -size.estimatePages()));
            constraints.add(new LinearConstraint(row(2 * n, n + i, 1, i, 1), Relationship.GEQ, size.estimatePages()));
            if (size.memoryPages().isPresent()) {
                constraints.add(new LinearConstraint(row(2 * n, i, 1, i, 0), Relationship.LEQ, size.memoryPages().getAsLong()));
            }
        }
        for (RestoreGraph.Edge e : graph.edges()) {
            int i = var.get(e.from());
            int j = var.get(e.to());
            if (graph.component(e.from()) == graph.component(e.to())) {
                constraints.add(new LinearConstraint(row(2 * n, i, 1, j, -1), Relationship.EQ, 0));
            } else {
                constraints.add(new LinearConstraint(row(2 * n, i, 1, j, -1), Relationship.GEQ, weightPages(e)));
            }
        }
        PointValuePair solution;
        try {
            solution = new SimplexSolver().optimize(new MaxIter(100_000), new LinearObjectiveFunction(objective, 0),
                    new LinearConstraintSet(constraints), GoalType.MINIMIZE, new NonNegativeConstraint(true), PivotSelectionRule.BLAND);
        } catch (NoFeasibleSolutionException e) {
            throw new IllegalArgumentException("restore line: expected a feasible system, actual none (the simplex solver found no solution"
                    + " although every member's memory holds its longest dependency chain)", e);
        } catch (TooManyIterationsException e) {
            throw new IllegalStateException("restore line: expected the simplex solver to converge within 100000 iterations, actual not ("
                    + n + " members, " + constraints.size() + " constraints)", e);
        }
        double[] x = solution.getPoint();
        List<Placement> order = new ArrayList<>();
        long moved = 0;
        for (int i = 0; i < n; i++) {
            long revised = Math.round(x[i]);
            long estimate = sizes.get(members.get(i)).estimatePages();
            order.add(new Placement(members.get(i), estimate, revised));
            moved += Math.abs(revised - estimate);
        }
        if (Math.abs(moved - solution.getValue()) > 0.5) {
            throw new IllegalStateException("restore line: expected an integral optimum, actual " + solution.getValue() + " pages moved");
        }
        order.sort(Comparator.comparingLong(Placement::revisedPages).thenComparing(Placement::member));
        RestoreLine line = new RestoreLine(order, moved);
        line.check(graph, sizes);
        return line;
    }

    /** Every constraint of the program, in whole pages: the rounded solution must meet them exactly. */
    private void check(RestoreGraph graph, Map<String, SizeEstimate> sizes) {
        for (Placement p : order) {
            OptionalLong memory = sizes.get(p.member()).memoryPages();
            if (p.revisedPages() < 0 || (memory.isPresent() && p.revisedPages() > memory.getAsLong())) {
                throw new IllegalStateException("restore line: expected " + p.member() + "'s size within [0, " + memory + "], actual " + p.revisedPages());
            }
        }
        for (RestoreGraph.Edge e : graph.edges()) {
            long si = placement(e.from()).revisedPages();
            long sj = placement(e.to()).revisedPages();
            boolean ring = graph.component(e.from()) == graph.component(e.to());
            long need = ring ? 0 : weightPages(e);
            if (ring ? si != sj : si - sj < need) {
                throw new IllegalStateException("restore line: expected S*(" + e.from() + ") - S*(" + e.to() + ") " + (ring ? "= 0" : ">= " + need)
                        + ", actual " + si + " - " + sj);
            }
        }
    }

    /**
     * The system is feasible iff every component's smallest memory holds its longest weighted path
     * of dependencies (the least size that starts it after them all): checked first, so an
     * infeasible system names the member and the chain instead of the solver's bare verdict.
     */
    private static void checkFeasible(RestoreGraph graph, Map<String, SizeEstimate> sizes) {
        List<List<String>> components = graph.components();
        long[] least = new long[components.size()];
        // Components come dependencies first, so each one's dependencies already have their least size.
        for (int c = 0; c < components.size(); c++) {
            for (String m : components.get(c)) {
                for (String d : graph.dependencies(m)) {
                    int dc = graph.component(d);
                    if (dc != c) {
                        least[c] = Math.max(least[c], Math.addExact(least[dc], weightPages(graph.edge(m, d).orElseThrow())));
                    }
                }
            }
            for (String m : components.get(c)) {
                OptionalLong memory = sizes.get(m).memoryPages();
                if (memory.isPresent() && memory.getAsLong() < least[c]) {
                    throw new IllegalArgumentException("restore line: infeasible: " + m + " must load at least " + least[c]
                            + " pages to start after the members it depends on (" + graph.dependencies(m) + "), expected at most its "
                            + memory.getAsLong() + " pages of memory, actual " + least[c]);
                }
            }
        }
    }

    private static double[] row(int width, int a, double ca, int b, double cb) {
        double[] r = new double[width];
        r[a] += ca;
        r[b] += cb;
        return r;
    }
}
