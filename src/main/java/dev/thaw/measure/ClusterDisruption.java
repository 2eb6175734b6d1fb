package dev.thaw.measure;

import dev.thaw.guest.TcpCounters;
import dev.thaw.guest.TcpStreamLine;
import dev.thaw.qemu.ConsoleLine;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * How a cluster restore disrupted the cluster's service (HotRestore's disruption experiment, issue 16): the TCP streams that the
 * clients send to the server member, as the server's tcpstream reports them every 100 ms ({@code rx tick}), against their rate
 * before the save; the TCP counters of every member; the frames the switch dropped and held. Pure: no QEMU, no threads.
 *
 * <p>The stream's progress is {@link Responsiveness}'s, with bytes as operations: each tick's bytes since the peer's previous
 * tick fall evenly in the interval between the two ticks' guest times, mapped to the host's clock by the fastest tick. tcpstream
 * blocks in {@code read} while nothing arrives, so a gap shows as one long interval with few bytes. The time to 0.8 is TTR(1 s,
 * 0.8): the earliest time after which every 1 s window carries at least 0.8 of the bytes per second before the save, never before
 * the server runs.
 */
public final class ClusterDisruption {
    /** The step of {@link Run#bytesPerSecondPerStep} (the plot's resolution). */
    public static final long STEP_NANOS = 250_000_000L;

    private ClusterDisruption() {}

    /** One {@code rx tick} of the server's tcpstream: bytes received from {@code peer} so far, and when. */
    public record StreamTick(long hostNanos, long guestNanos, long bytes, String peer) {}

    /** The server's receive ticks among console lines (other lines, and transmit ticks, are left out). */
    public static List<StreamTick> rxTicks(List<ConsoleLine> lines) {
        List<StreamTick> out = new ArrayList<>();
        for (ConsoleLine line : lines) {
            if (TcpStreamLine.parse(line.text()).orElse(null) instanceof TcpStreamLine.Tick t && t.direction() == TcpStreamLine.Direction.RX) {
                out.add(new StreamTick(line.hostNanos(), t.guestNanos(), t.bytes(), t.peer()));
            }
        }
        return out;
    }

    /**
     * The service's rate: for every peer, its bytes from its first tick to its last over the guest's time between them, added up.
     *
     * @throws IllegalArgumentException when a peer has fewer than two ticks, or none were given (no rate to compare with)
     */
    public static double bytesPerSecond(List<StreamTick> ticks) {
        Map<String, List<StreamTick>> byPeer = byPeer(ticks);
        if (byPeer.isEmpty()) throw new IllegalArgumentException("stream rate: expected rx ticks, actual none");
        double rate = 0;
        for (Map.Entry<String, List<StreamTick>> e : byPeer.entrySet()) {
            List<StreamTick> p = e.getValue();
            long nanos = p.getLast().guestNanos() - p.getFirst().guestNanos();
            if (p.size() < 2 || nanos <= 0) {
                throw new IllegalArgumentException("stream rate of peer " + e.getKey() + ": expected at least two ticks over time, actual "
                        + p.size() + " over " + nanos + " ns");
            }
            rate += (p.getLast().bytes() - p.getFirst().bytes()) * 1e9 / nanos;
        }
        return rate;
    }

    /**
     * The bytes received as progress reports relative to {@code originNanos} (host nanoTime): per peer, each tick's bytes since the
     * peer's previous tick over the interval between their guest times; one offset maps the server's guest clock to the host's
     * (the smallest host-minus-guest time of any tick: the tick that reached the host fastest). A peer's first tick, and a tick
     * whose count went back (a new connection from the same peer), start a new series.
     */
    public static List<Responsiveness.Progress> progress(List<StreamTick> ticks, long originNanos) {
        long offset = ticks.stream().mapToLong(t -> t.hostNanos() - t.guestNanos()).min().orElse(0);
        List<Responsiveness.Progress> out = new ArrayList<>();
        for (List<StreamTick> p : byPeer(ticks).values()) {
            for (int i = 1; i < p.size(); i++) {
                long from = p.get(i - 1).guestNanos() + offset - originNanos;
                long to = p.get(i).guestNanos() + offset - originNanos;
                long bytes = p.get(i).bytes() - p.get(i - 1).bytes();
                if (to > from && bytes >= 0) out.add(new Responsiveness.Progress(from, to, bytes));
            }
        }
        out.sort(Comparator.comparingLong(Responsiveness.Progress::fromNanos));
        return out;
    }

    /**
     * The stream after a restore, nanoseconds from its start.
     *
     * @param firstAt80Seconds      the start of the first 1 s window at 0.8 of the rate before the save or more; empty if none
     * @param timeTo80Seconds       TTR(1 s, 0.8) against the rate before the save; empty if not reached within the observation
     * @param bytesPerSecondPerStep the bytes per second received in consecutive {@link #STEP_NANOS} steps from the restore's start
     */
    public record Recovery(Optional<Double> firstAt80Seconds, Optional<Double> timeTo80Seconds, List<Double> bytesPerSecondPerStep) {}

    /**
     * @param ticks                the server's rx ticks after the restore
     * @param restoreStartNanos    host nanoTime at the restore's start (the origin)
     * @param serverRunningNanos   when the server ran, from the start: no byte counts before
     * @param observedNanos        the end of the observation, from the start
     * @param bytesPerSecondBefore the rate before the save ({@link #bytesPerSecond})
     */
    public static Recovery recovery(List<StreamTick> ticks, long restoreStartNanos, long serverRunningNanos, long observedNanos,
                                    double bytesPerSecondBefore) {
        Responsiveness r = new Responsiveness(progress(ticks, restoreStartNanos), bytesPerSecondBefore, serverRunningNanos, observedNanos);
        List<Double> steps = new ArrayList<>();
        for (long t = 0; t + STEP_NANOS <= observedNanos; t += STEP_NANOS) steps.add(r.utilization(t, STEP_NANOS) * bytesPerSecondBefore);
        Optional<Double> first = r.firstReachNanos(Responsiveness.DEFAULT_WINDOW_NANOS, Responsiveness.DEFAULT_UTILIZATION).map(n -> n / 1e9);
        return new Recovery(first, r.defaultTtrSeconds(), List.copyOf(steps));
    }

    /**
     * One cluster restore's disruption.
     *
     * @param repetition            from 1; every strategy runs once per repetition, in a rotated order
     * @param allRunningSeconds     from the restore's start until every member ran
     * @param completedSeconds      from the restore's start until every member's restore completed (its last page in: the lazy
     *                              restores' background stream competes with the guests for the host's CPUs until then)
     * @param tcp                   the TCP counters of every member added up, after the observation minus before the save
     * @param framesHeld            frames in flight at the save that the switch held and delivered once their receiver ran
     * @param framesNotDelivered    frames in flight at the save that the strategy does not deliver (TCP resends them)
     * @param framesDropped         frames the switch dropped after the restore (a queue at its bound, or a member not connected)
     * @param maxQueuedFrames       the most frames that waited for one member at once
     * @param components            the coordinator's graph in restore order: a ring is a component of more than one member, started
     *                              together once all its members are loaded (every member alone under independent)
     * @param startOrder            the members in the order they started
     * @param members               each member's restore: its mode, sizes and when it was loaded and ran
     */
    public record Run(String strategy, int repetition, Optional<Double> firstAt80Seconds, Optional<Double> timeTo80Seconds,
                      double allRunningSeconds, double completedSeconds, TcpCounters tcp,
                      long framesHeld, long framesNotDelivered, long framesDropped, int maxQueuedFrames, List<List<String>> components, List<String> startOrder,
                      List<Double> bytesPerSecondPerStep, List<MemberTimes> members) {
        public Run {
            members = List.copyOf(members);
        }

        /**
         * How long the first client ran before its server did (0 when the server ran first or with it): the time a client sent to a
         * server that was still loading, HotRestore's TCP backoff situation.
         */
        public double clientAheadSeconds(String server) {
            double serverRan = members.stream().filter(m -> m.member().equals(server)).mapToDouble(MemberTimes::runningSeconds).findFirst()
                    .orElseThrow(() -> new IllegalArgumentException("expected member " + server + " among " + members));
            double firstClient = members.stream().filter(m -> !m.member().equals(server)).mapToDouble(MemberTimes::runningSeconds).min()
                    .orElse(serverRan);
            return Math.max(0, serverRan - firstClient);
        }
    }

    /**
     * One member's restore in a run; seconds from the restore's start.
     *
     * @param mode          ws (its revised working set prefetched before it may start) or lazy
     * @param estimatePages its image's working-set estimate (0: none)
     * @param revisedPages  the restore line's size for it (the prefetch's cap under ws)
     */
    public record MemberTimes(String member, String mode, long estimatePages, long revisedPages, double loadedSeconds, double runningSeconds) {}

    /**
     * One strategy over its runs. A time to 0.8 not reached counts as infinite in the median ({@code Double.POSITIVE_INFINITY}).
     */
    public record Summary(String strategy, int runs, int reached, double medianFirstAt80Seconds, double minFirstAt80Seconds,
                          double medianTimeTo80Seconds, double minTimeTo80Seconds, double medianAllRunningSeconds, double medianCompletedSeconds, double medianRetransSegs, double medianTimeouts, long totalTimeouts,
                          double medianFramesDropped,
                          double medianFramesHeld, double medianFramesNotDelivered, double medianClientAheadSeconds) {}

    /** Per strategy, in the order of first appearance; {@code server} names the member the others stream to. */
    public static List<Summary> summarize(List<Run> runs, String server) {
        Map<String, List<Run>> by = new LinkedHashMap<>();
        for (Run r : runs) by.computeIfAbsent(r.strategy(), k -> new ArrayList<>()).add(r);
        List<Summary> out = new ArrayList<>();
        for (Map.Entry<String, List<Run>> e : by.entrySet()) {
            List<Run> s = e.getValue();
            out.add(new Summary(e.getKey(), s.size(), (int) s.stream().filter(r -> r.timeTo80Seconds().isPresent()).count(),
                    SaveRestoreBenchmark.Report.median(s, r -> orInfinity(r.firstAt80Seconds())),
                    SaveRestoreBenchmark.Report.min(s, r -> orInfinity(r.firstAt80Seconds())),
                    SaveRestoreBenchmark.Report.median(s, r -> orInfinity(r.timeTo80Seconds())),
                    SaveRestoreBenchmark.Report.min(s, r -> orInfinity(r.timeTo80Seconds())),
                    SaveRestoreBenchmark.Report.median(s, Run::allRunningSeconds),
                    SaveRestoreBenchmark.Report.median(s, Run::completedSeconds),
                    SaveRestoreBenchmark.Report.median(s, r -> r.tcp().retransSegs()),
                    SaveRestoreBenchmark.Report.median(s, r -> r.tcp().timeouts()),
                    s.stream().mapToLong(r -> r.tcp().timeouts()).sum(),
                    SaveRestoreBenchmark.Report.median(s, Run::framesDropped),
                    SaveRestoreBenchmark.Report.median(s, Run::framesHeld),
                    SaveRestoreBenchmark.Report.median(s, Run::framesNotDelivered),
                    SaveRestoreBenchmark.Report.median(s, r -> r.clientAheadSeconds(server))));
        }
        return out;
    }

    private static double orInfinity(Optional<Double> seconds) {
        return seconds.orElse(Double.POSITIVE_INFINITY);
    }

    /** The comparison table: a row per strategy. */
    public static String table(List<Summary> summaries, double observedSeconds) {
        StringBuilder b = new StringBuilder();
        b.append(String.format("%-13s %4s %15s %15s %11s %10s %13s %8s %6s %8s %6s %9s%n", "strategy", "runs", "back at 0.8 s", "stays at 0.8 s",
                "running s", "complete s", "client ahead", "retrans", "RTOs", "dropped", "held", "not deliv."));
        b.append(String.format("%-13s %4s %15s %15s %11s %10s %13s%n", "", "", "median / min", "median / min", "median", "median", "s, median"));
        for (Summary s : summaries) {
            b.append(String.format("%-13s %4d %15s %15s %11.2f %10.2f %13.2f %8s %6s %8s %6s %9s%n", s.strategy(), s.runs(),
                    seconds(s.medianFirstAt80Seconds(), observedSeconds) + " / " + seconds(s.minFirstAt80Seconds(), observedSeconds),
                    seconds(s.medianTimeTo80Seconds(), observedSeconds) + " / " + seconds(s.minTimeTo80Seconds(), observedSeconds),
                    s.medianAllRunningSeconds(), s.medianCompletedSeconds(), s.medianClientAheadSeconds(), count(s.medianRetransSegs()),
                    count(s.medianTimeouts()), count(s.medianFramesDropped()), count(s.medianFramesHeld()), count(s.medianFramesNotDelivered())));
        }
        b.append("(seconds from the restore's start; back at 0.8: the first 1 s window with 0.8 of the stream's bytes per second before the"
                + " save; stays at 0.8: every 1 s window from then on (TTR); running: every member ran; complete: every member's last page"
                + " in; client ahead: how long the first client ran before the server did; retrans and RTOs: the members' TCP retransmitted segments and retransmission timeouts, after the restore minus"
                + " before the save; dropped: frames the switch dropped; held: frames in flight at the save held and delivered; not"
                + " deliv.: frames in flight at the save left to TCP; counts are medians)\n");
        return b.toString();
    }

    /** The per-step median over each strategy's runs (the plot's lines). */
    public static Map<String, List<Double>> medianPerStep(List<Run> runs) {
        Map<String, List<Run>> by = new LinkedHashMap<>();
        for (Run r : runs) by.computeIfAbsent(r.strategy(), k -> new ArrayList<>()).add(r);
        Map<String, List<Double>> out = new LinkedHashMap<>();
        by.forEach((strategy, s) -> {
            int steps = s.stream().mapToInt(r -> r.bytesPerSecondPerStep().size()).min().orElse(0);
            List<Double> line = new ArrayList<>();
            for (int i = 0; i < steps; i++) {
                int step = i;
                line.add(SaveRestoreBenchmark.Report.median(s, r -> r.bytesPerSecondPerStep().get(step)));
            }
            out.put(strategy, List.copyOf(line));
        });
        return out;
    }

    private static String seconds(double s, double observedSeconds) {
        return Double.isInfinite(s) ? String.format("> %.0f", observedSeconds) : String.format("%.2f", s);
    }

    private static String count(double c) {
        return c == Math.rint(c) ? String.format("%.0f", c) : String.format("%.1f", c);
    }

    private static Map<String, List<StreamTick>> byPeer(List<StreamTick> ticks) {
        Map<String, List<StreamTick>> out = new LinkedHashMap<>();
        for (StreamTick t : ticks) out.computeIfAbsent(t.peer(), k -> new ArrayList<>()).add(t);
        return out;
    }
}
