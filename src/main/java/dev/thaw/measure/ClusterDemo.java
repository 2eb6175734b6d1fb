package dev.thaw.measure;

import dev.thaw.cluster.checkpoint.ClusterRestore;
import dev.thaw.cluster.checkpoint.ClusterSave;
import dev.thaw.cluster.checkpoint.Strategy;
import dev.thaw.cluster.live.LiveCluster;
import dev.thaw.cluster.net.PortStats;
import dev.thaw.estimate.WorkingSet;
import dev.thaw.guest.ClusterMember;
import dev.thaw.guest.GuestAgent;
import dev.thaw.guest.GuestImage;
import dev.thaw.guest.TcpCounters;
import dev.thaw.qemu.Accel;
import dev.thaw.qemu.ConsoleLine;
import dev.thaw.qemu.QemuVersion;
import dev.thaw.save.Saver;
import dev.thaw.util.FileTrees;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * The strategies' evaluation (issue 16, HotRestore's disruption experiment), small: a cluster of demo guests whose clients stream
 * checked bytes to m1 without end is booted, measured, saved once, and its checkpoint restored with every strategy, interleaved
 * (repetition r starts with the r-th strategy), each restore observed for the same time and then ended. Per restore: the stream's
 * bytes per second at m1 over time against before the save, the time until it is back at 0.8 of it, the members' TCP
 * retransmissions and retransmission timeouts (their agents' {@code tcp} answer, after the observation minus before the save), and
 * the frames the switch dropped and held ({@link ClusterDisruption}). Every QEMU, switch and directory it made is gone when it
 * returns, also after a failure.
 */
public final class ClusterDemo {
    private static final Duration STREAM_TIMEOUT = Duration.ofSeconds(120);
    private static final Duration AGENT_TIMEOUT = Duration.ofSeconds(30);
    /** The star's server: the member the others stream to. */
    static final String SERVER = "m1";

    private ClusterDemo() {}

    /**
     * @param members     2 to 254: m1 serves, the others stream to it
     * @param memoryMiB   each member's RAM, at least {@link ClusterMember#MIN_MEMORY_MIB}
     * @param warmUp      how long the streams run before the rate before the save is measured
     * @param before      how long the rate before the save is measured
     * @param observe     how long each restore is observed, from its start
     * @param plot        the PNG of the stream's bytes per second over time per strategy (the median of its runs), or null
     * @param memholdMiB  per member in order (m1 first; members beyond the list: 0), the MiB memhold keeps written in it beside
     *                    tcpstream, its memory grown by as much: working sets of different sizes (HotRestore's premise)
     * @param probeLimit  zero: no estimate, lazy restores; else each member's dirty-bit probe before the save, stopped at this live
     *                    limit, gives its image a working set, and the restores are ws restores whose sizes the restore line revises
     */
    public record Config(int members, long memoryMiB, int repetitions, Duration warmUp, Duration before, Duration observe,
                         List<Strategy> strategies, Path plot, List<Long> memholdMiB, Duration probeLimit) {
        public Config(int members, long memoryMiB, int repetitions, Duration warmUp, Duration before, Duration observe,
                      List<Strategy> strategies, Path plot) {
            this(members, memoryMiB, repetitions, warmUp, before, observe, strategies, plot, List.of(), Duration.ZERO);
        }

        public Config {
            if (members < 2 || members > 254) {
                throw new IllegalArgumentException("--members: expected 2 (a server and a client) to 254, actual " + members);
            }
            if (memoryMiB < ClusterMember.MIN_MEMORY_MIB) {
                throw new IllegalArgumentException("--memory-mib: expected at least " + ClusterMember.MIN_MEMORY_MIB
                        + " (a cluster member's least), actual " + memoryMiB);
            }
            if (repetitions < 1) throw new IllegalArgumentException("--repeat: expected at least 1, actual " + repetitions);
            if (warmUp.isNegative()) throw new IllegalArgumentException("--warm-up-seconds: expected 0 or more, actual " + warmUp.toSeconds());
            if (observe.compareTo(Duration.ofSeconds(2)) < 0) {
                throw new IllegalArgumentException("--observe-seconds: expected at least 2 (TTR's 1 s window must fit), actual " + observe.toSeconds());
            }
            if (before.compareTo(Duration.ofSeconds(1)) < 0) {
                throw new IllegalArgumentException("--before-seconds: expected at least 1, actual " + before.toSeconds());
            }
            if (strategies.isEmpty()) throw new IllegalArgumentException("--strategies: expected at least one, actual none");
            strategies = List.copyOf(strategies);
            memholdMiB = List.copyOf(memholdMiB);
            if (memholdMiB.size() > members) {
                throw new IllegalArgumentException("--memhold-mib: expected at most one size per member (" + members + "), actual "
                        + memholdMiB.size());
            }
            for (long mib : memholdMiB) {
                if (mib < 0) throw new IllegalArgumentException("--memhold-mib: expected sizes of 0 or more MiB, actual " + mib);
            }
            if (probeLimit.isNegative() || !probeLimit.isZero() && probeLimit.compareTo(Duration.ofSeconds(1)) < 0) {
                throw new IllegalArgumentException("--probe-seconds: expected 0 (no estimate) or at least 1, actual " + probeLimit.toMillis() / 1000.0);
            }
        }

        /** The cluster: the star, each member grown by its memhold. */
        public List<ClusterMember> cluster() {
            List<ClusterMember> star = ClusterMember.starOf(members, memoryMiB, 0);
            return java.util.stream.IntStream.range(0, star.size())
                    .mapToObj(i -> i < memholdMiB.size() ? star.get(i).withMemhold(memholdMiB.get(i)) : star.get(i)).toList();
        }
    }

    /**
     * The cluster before its save, and the save.
     *
     * @param bytesPerSecond the stream's bytes per second into m1 (every client's) over {@code before}
     * @param tcp            every member's TCP counters added up, read one member after the other right before the save began
     * @param tcpReadMillis  how long reading them took: the first member's were read that long before the save began
     * @param workingSetPages per member, the working set its image got from its probe (empty without probes)
     */
    public record Before(double bytesPerSecond, double seconds, TcpCounters tcp, double tcpReadMillis, double saveSeconds,
                         double stopSkewMillis, int framesSaved, int framesAtCut, Map<String, Integer> workingSetPages) {}

    /** A restore that failed: it has no measurement. */
    public record Failure(String strategy, int repetition, String error) {}

    public record Report(Config config, Before before, List<ClusterDisruption.Run> runs, List<ClusterDisruption.Summary> summaries,
                         List<Failure> failures, String plot, double totalSeconds) {
        /** The comparison table. */
        public String table() {
            return ClusterDisruption.table(summaries, config.observe().toMillis() / 1000.0);
        }
    }

    public static Report run(Config config, GuestImage image, QemuVersion qemu, Accel accel, PrintStream log) throws IOException, InterruptedException {
        long started = System.nanoTime();
        Path work = Files.createTempDirectory(Path.of("/tmp"), "thaw-cluster-demo-");
        try {
            Path checkpoint = work.resolve("checkpoint");
            Before before = bootMeasureAndSave(config, image, qemu, accel, checkpoint, log);
            List<ClusterDisruption.Run> runs = new ArrayList<>();
            List<Failure> failures = new ArrayList<>();
            List<Strategy> s = config.strategies();
            for (int rep = 1; rep <= config.repetitions(); rep++) {
                for (int k = 0; k < s.size(); k++) {
                    Strategy strategy = s.get((rep - 1 + k) % s.size()); // interleaved: each strategy leads once in turn
                    ClusterDisruption.Run run;
                    try {
                        run = restoreAndObserve(config, checkpoint, strategy, rep, before);
                    } catch (RuntimeException e) {
                        // One failed restore (its QEMUs and switch already gone) does not void the others: reported, not measured.
                        failures.add(new Failure(strategy.label(), rep, e.getMessage()));
                        log.printf("  %-12s rep %d: FAILED: %s%n", strategy.label(), rep, e.getMessage());
                        continue;
                    }
                    runs.add(run);
                    log.printf("  %-12s rep %d: back at 0.8 %s, stays %s, every member running %.2f s, complete %.2f s, a client ahead"
                                    + " of %s by %.2f s, retrans %d, RTOs %d, held %d, not delivered %d, dropped %d; graph %s, started %s%n",
                            strategy.label(), rep, secondsOrNot(run.firstAt80Seconds()), secondsOrNot(run.timeTo80Seconds()),
                            run.allRunningSeconds(), run.completedSeconds(), SERVER, run.clientAheadSeconds(SERVER), run.tcp().retransSegs(),
                            run.tcp().timeouts(), run.framesHeld(), run.framesNotDelivered(), run.framesDropped(), run.components(), run.startOrder());
                    for (ClusterDisruption.MemberTimes m : run.members()) {
                        log.printf("      %s: %s, estimate %d pages, revised %d, loaded %.2f s, running %.2f s%n", m.member(), m.mode(),
                                m.estimatePages(), m.revisedPages(), m.loadedSeconds(), m.runningSeconds());
                    }
                }
            }
            String plot = null;
            if (config.plot() != null) {
                Map<String, List<Double>> mbps = new LinkedHashMap<>();
                ClusterDisruption.medianPerStep(runs).forEach((k, v) -> mbps.put(k, v.stream().map(b -> b / 1e6).toList()));
                int steps = mbps.values().stream().mapToInt(List::size).max().orElse(0);
                mbps.put("before the save", java.util.Collections.nCopies(steps, before.bytesPerSecond() / 1e6));
                plot = Plots.overTime(config.plot(), "Stream into m1 after a cluster restore (median of " + config.repetitions() + " per strategy)",
                        "MB/s", mbps, ClusterDisruption.STEP_NANOS / 1_000_000).toString();
            }
            return new Report(config, before, List.copyOf(runs), ClusterDisruption.summarize(runs, SERVER), List.copyOf(failures), plot,
                    (System.nanoTime() - started) / 1e9);
        } finally {
            FileTrees.deleteQuietly(work);
        }
    }

    private static Before bootMeasureAndSave(Config config, GuestImage image, QemuVersion qemu, Accel accel, Path checkpoint, PrintStream log)
            throws IOException, InterruptedException {
        List<ClusterMember> members = config.cluster();
        log.printf("booting %d members (m1 serves, the others stream to it without end): %s%n", members.size(), members.stream()
                .map(m -> m.name() + " " + m.memoryMiB() + " MiB" + (m.memholdMiB() > 0 ? " (memhold " + m.memholdMiB() + " MiB)" : "")).toList());
        try (LiveCluster cluster = LiveCluster.up(null, members, image, qemu, accel, LiveCluster.CONNECT_TIMEOUT)) {
            awaitEveryClient(cluster, config.members() - 1);
            awaitMemhold(cluster);
            Thread.sleep(config.warmUp());
            Map<String, WorkingSet> estimates = Map.of();
            if (!config.probeLimit().isZero()) {
                estimates = ClusterSave.probe(cluster, config.probeLimit(), log::println);
                // The probes stopped every member for its last round: the stream recovers before its rate is measured.
                Thread.sleep(config.warmUp());
                cluster.check();
            }
            long from = System.nanoTime();
            Thread.sleep(config.before());
            List<ConsoleLine> lines = cluster.vm("m1").console().snapshot().stream().filter(l -> l.hostNanos() >= from).toList();
            double rate = ClusterDisruption.bytesPerSecond(ClusterDisruption.rxTicks(lines));
            // The counters last, right before the save: a stopped guest's agent does not answer, so this is as near to the stop as
            // they can be read; what a restore's difference still includes besides the restore is in docs/cluster.md.
            long reading = System.nanoTime();
            TcpCounters tcp = counters(cluster);
            double readMillis = (System.nanoTime() - reading) / 1e6;
            ClusterSave.Result saved = ClusterSave.save(cluster, checkpoint, Saver.Options.defaults(), estimates, line -> { });
            log.printf("before the save: %.1f MB/s into m1 over %d s; TCP retransmissions %d, RTOs %d since boot (read in %.0f ms, then"
                    + " the save began)%n", rate / 1e6, config.before().toSeconds(), tcp.retransSegs(), tcp.timeouts(), readMillis);
            if (!saved.workingSetPages().isEmpty()) log.printf("working sets attached to the images: %s pages%n", saved.workingSetPages());
            log.printf("saved in %.2f s: sockets drained %s after the cut, stops within %.3f ms, %d frames in flight (%d at the cut)%n",
                    saved.durationNanos() / 1e9, saved.drainNanos() < 0 ? "(not seen)" : String.format("%.1f ms", saved.drainNanos() / 1e6),
                    saved.stopSkewNanos() / 1e6, saved.frames(), saved.framesAtCut());
            return new Before(rate, config.before().toMillis() / 1000.0, tcp, readMillis, saved.durationNanos() / 1e9,
                    saved.stopSkewNanos() / 1e6, saved.frames(), saved.framesAtCut(), saved.workingSetPages());
        }
    }

    /** Until m1's console shows a receive tick from every client. */
    private static void awaitEveryClient(LiveCluster cluster, int clients) throws InterruptedException {
        long deadline = System.nanoTime() + STREAM_TIMEOUT.toNanos();
        while (true) {
            cluster.check();
            Set<String> peers = new TreeSet<>();
            for (ClusterDisruption.StreamTick t : ClusterDisruption.rxTicks(cluster.vm("m1").console().snapshot())) peers.add(t.peer());
            if (peers.size() >= clients) return;
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("cluster demo: expected a stream from each of " + clients + " clients at m1 within "
                        + STREAM_TIMEOUT.toSeconds() + " s, actual from " + peers);
            }
            Thread.sleep(200);
        }
    }

    /** Until every member with memhold says its region is written (memhold's fill takes seconds under TCG for a large one). */
    private static void awaitMemhold(LiveCluster cluster) throws InterruptedException {
        long deadline = System.nanoTime() + STREAM_TIMEOUT.toNanos();
        for (ClusterMember m : cluster.members()) {
            if (m.memholdMiB() == 0) continue;
            while (cluster.vm(m.name()).console().snapshot().stream().noneMatch(l -> l.text().startsWith("memhold ready "))) {
                cluster.check();
                if (System.nanoTime() > deadline) {
                    throw new IllegalStateException("cluster demo: expected 'memhold ready' on " + m.name() + "'s console within "
                            + STREAM_TIMEOUT.toSeconds() + " s, actual none");
                }
                Thread.sleep(200);
            }
        }
    }

    private static ClusterDisruption.Run restoreAndObserve(Config config, Path checkpoint, Strategy strategy, int rep, Before before) throws InterruptedException {
        ClusterRestore.Result r = ClusterRestore.restore(checkpoint, ClusterRestore.Options.of(strategy));
        try (LiveCluster cluster = r.cluster()) {
            // One clock: the restore's own start, the origin of its members' running and complete times, is that of the stream's too.
            long start = r.startedNanos();
            long observed = config.observe().toNanos();
            long left = start + observed - System.nanoTime();
            if (left > 0) Thread.sleep(Duration.ofNanos(left));
            TcpCounters tcp = counters(cluster).minus(before.tcp());
            // After the agents' answers: by now the ticks that cover the observation's last step have reached the console.
            List<ConsoleLine> lines = cluster.vm("m1").console().snapshot();
            long serverRunning = r.members().stream().filter(m -> m.member().equals(SERVER)).findFirst().orElseThrow().runningNanos();
            ClusterDisruption.Recovery rec = ClusterDisruption.recovery(ClusterDisruption.rxTicks(lines), start,
                    Math.min(serverRunning, observed), observed, before.bytesPerSecond());
            long dropped = 0;
            int maxQueued = 0;
            for (ClusterMember m : cluster.members()) {
                PortStats p = cluster.port(m.name());
                dropped += p.droppedQueueFull() + p.droppedUnconnected();
                maxQueued = Math.max(maxQueued, p.maxQueuedFrames());
            }
            return new ClusterDisruption.Run(strategy.label(), rep, rec.firstAt80Seconds(), rec.timeTo80Seconds(), r.allRunningNanos() / 1e9,
                    r.completedNanos() / 1e9, tcp, r.framesHeld(),
                    r.plan().framesLost(), dropped, maxQueued, r.plan().graph().components(), r.order(), rec.bytesPerSecondPerStep(),
                    r.members().stream().map(m -> new ClusterDisruption.MemberTimes(m.member(), m.mode().name().toLowerCase(java.util.Locale.ROOT),
                            m.estimatePages(), m.revisedPages(), m.loadedNanos() / 1e9, m.runningNanos() / 1e9)).toList());
        }
    }

    private static String secondsOrNot(java.util.Optional<Double> seconds) {
        return seconds.map(v -> String.format("%.2f s", v)).orElse("not reached");
    }

    /** Every member's TCP counters, added up, through its guest agent. */
    private static TcpCounters counters(LiveCluster cluster) {
        TcpCounters sum = TcpCounters.ZERO;
        for (ClusterMember m : cluster.members()) {
            try (GuestAgent agent = GuestAgent.connect(cluster.vm(m.name()))) {
                agent.awaitReady(AGENT_TIMEOUT);
                sum = sum.plus(agent.tcpCounters());
            }
        }
        return sum;
    }
}
