package dev.thaw.measure;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * Time to responsiveness after minimum mutator utilization (Zhang et al., VEE'11). The guest's
 * progress is a series of reports, each the operations done over an interval, spread evenly over
 * it (counting a report whole in the window its end falls into would make a 1 s window of 100 ms
 * reports jump by 10% with the jitter of their arrival); utilization over a window of length w is
 * the progress in the window divided by what the guest did in w before the save. TTR(w, u) is the earliest time T after which every window of
 * length w that fits in the observation has utilization at least u; MMU(w) is the lowest
 * utilization of any window of length w. Times are nanoseconds from the start of the restore.
 *
 * <p>No work is credited before the restored guest runs ({@code runningNanos}), and TTR is never earlier: a report whose
 * interval reaches back before it (a tick printed before the save that the guest's serial driver sends only after the
 * restore, or the first tick after it, whose interval holds work done before the save) counts only with its share after
 * it, and a guest that does not run is not responsive, whatever a window that reaches past its start averages.
 * Pure: no QEMU, no threads.
 */
public final class Responsiveness {
    /** The window TTR is reported at by default (see docs/benchmarks.md, TTR calibration). */
    public static final long DEFAULT_WINDOW_NANOS = 1_000_000_000L;
    /** The utilization TTR is reported at by default. */
    public static final double DEFAULT_UTILIZATION = 0.8;
    /**
     * The share of time not stalled that the stall TTR asks of every window, relative to the source's own before the save
     * ({@link #stallReference}; see {@link #unstalledFromTicks}): an undisturbed guest stalled 2-4% of the time on the earlier
     * hosts (TCG's timer interrupts) and 10-15% on the fourteenth session's, whatever its rate (docs/benchmarks.md, TTR
     * calibration), so an absolute 0.9 was out of reach of a guest never saved there.
     */
    public static final double DEFAULT_UNSTALLED = 0.9;

    /**
     * The unstalled share that counts as 1.0 for the stall TTR: the source's own before the save, or 1 (the absolute share)
     * when it is unknown; never below a half, so a source that was itself mostly stalled does not make every restore pass.
     */
    public static double stallReference(double unstalledShareBefore) {
        if (!Double.isFinite(unstalledShareBefore) || unstalledShareBefore <= 0 || unstalledShareBefore > 1) return 1;
        return Math.max(0.5, unstalledShareBefore);
    }

    /** The share of the ticks' time not stalled (the guest's clock, first tick's interval left out); NaN if not reported. */
    public static double unstalledShare(List<dev.thaw.guest.WsbenchTick> ticks) {
        if (ticks.size() < 2 || !dev.thaw.guest.WsbenchTick.stallsReported(ticks)) return Double.NaN;
        long total = 0;
        long stalled = 0;
        for (int i = 1; i < ticks.size(); i++) {
            long interval = ticks.get(i).guestNanos() - ticks.get(i - 1).guestNanos();
            if (interval <= 0) continue;
            total += interval;
            stalled += Math.min(interval, ticks.get(i).stalledNanos());
        }
        return total == 0 ? Double.NaN : 1 - stalled / (double) total;
    }

    /** Grid on which window starts are taken. */
    static final long STEP_NANOS = 10_000_000L;

    /** One progress report: {@code ops} done over (fromNanos, toNanos]. */
    public record Progress(long fromNanos, long toNanos, long ops) {
        public Progress {
            if (toNanos <= fromNanos) {
                throw new IllegalArgumentException("progress interval: expected from < to, actual " + fromNanos + " >= " + toNanos);
            }
        }

        /** The share of the operations that fell into (start, end]. */
        double opsWithin(long start, long end) {
            long overlap = Math.min(end, toNanos) - Math.max(start, fromNanos);
            return overlap <= 0 ? 0 : ops * (double) overlap / (toNanos - fromNanos);
        }
    }

    private final List<Progress> reports;
    private final double opsPerSecondBefore;
    private final long runningNanos;
    private final long endNanos;

    /** A guest that runs from the start of the observation (never saved, or a client that only sees it running). */
    public Responsiveness(List<Progress> reports, double opsPerSecondBefore, long endNanos) {
        this(reports, opsPerSecondBefore, 0, endNanos);
    }

    /**
     * @param reports            progress reports, in time order
     * @param opsPerSecondBefore the guest's rate before the save (utilization 1.0)
     * @param runningNanos       when the restored guest started running: no work is credited before it
     * @param endNanos           the end of the observation
     */
    public Responsiveness(List<Progress> reports, double opsPerSecondBefore, long runningNanos, long endNanos) {
        if (opsPerSecondBefore <= 0) {
            throw new IllegalArgumentException("rate before the save: expected > 0 ops/s, actual " + opsPerSecondBefore);
        }
        if (runningNanos < 0 || runningNanos > endNanos) {
            throw new IllegalArgumentException("guest running: expected within the observation [0, " + endNanos + "] ns, actual "
                    + runningNanos + " ns");
        }
        this.reports = List.copyOf(reports);
        this.opsPerSecondBefore = opsPerSecondBefore;
        this.runningNanos = runningNanos;
        this.endNanos = endNanos;
    }

    /** Utilization of the window (start, start + w]; only the work after the guest started running counts. */
    public double utilization(long startNanos, long windowNanos) {
        double ops = 0;
        for (Progress p : reports) ops += p.opsWithin(Math.max(startNanos, runningNanos), startNanos + windowNanos);
        return ops / (opsPerSecondBefore * windowNanos / 1e9);
    }

    /** Utilization of every window of length w on the grid, as (start, utilization) pairs. */
    private List<double[]> windows(long windowNanos) {
        List<double[]> out = new ArrayList<>();
        for (long s = 0; s + windowNanos <= endNanos; s += STEP_NANOS) {
            out.add(new double[] {s, utilization(s, windowNanos)});
        }
        return out;
    }

    /** TTR(w, u), never before the guest runs: empty if even the last window of the observation is below u, or no window fits. */
    public Optional<Long> ttrNanos(long windowNanos, double utilization) {
        List<double[]> w = windows(windowNanos);
        if (w.isEmpty()) return Optional.empty();
        long ttr = -1;
        for (int i = w.size() - 1; i >= 0; i--) {
            if (w.get(i)[1] < utilization) break;
            ttr = (long) w.get(i)[0];
        }
        return ttr < 0 ? Optional.empty() : Optional.of(Math.max(ttr, runningNanos));
    }

    /**
     * Progress reports from wsbench ticks, placed on the host's clock: each tick's operations fall in the interval between
     * the guest-clock times of the previous tick and this one. The guest clock is mapped to the host's by the smallest
     * (host read time - guest print time) among the ticks, the tick that reached the host fastest, because console
     * lines arrive late and in bursts (host read times would bunch the progress). The guest clock stands still while the
     * VM is stopped, so this mapping holds for ticks after a restore. Times are relative to {@code originNanos}
     * (host nanoTime); the first tick has no previous one and is left out.
     */
    public static List<Progress> fromTicks(List<dev.thaw.guest.WsbenchTick> ticks, long originNanos) {
        List<Progress> out = new ArrayList<>();
        if (ticks.size() < 2) return out;
        long offset = Long.MAX_VALUE;
        for (int i = 1; i < ticks.size(); i++) offset = Math.min(offset, ticks.get(i).hostNanos() - ticks.get(i).guestNanos());
        for (int i = 1; i < ticks.size(); i++) {
            long from = ticks.get(i - 1).guestNanos() + offset - originNanos;
            long to = ticks.get(i).guestNanos() + offset - originNanos;
            if (to > from) out.add(new Progress(from, to, ticks.get(i).opCount()));
        }
        return out;
    }

    /**
     * The first window of length w on the grid, starting no earlier than the guest runs, whose utilization is at least u (its
     * start): when the guest first got back to u, whatever came after; TTR is when it stayed there. Empty if no window reaches it.
     */
    public Optional<Long> firstReachNanos(long windowNanos, double utilization) {
        for (double[] w : windows(windowNanos)) {
            if (w[0] >= runningNanos && w[1] >= utilization) return Optional.of((long) w[0]);
        }
        return Optional.empty();
    }

    /**
     * The guest's time not stalled, from wsbench ticks that report stalled time: the same intervals as {@link #fromTicks}, each
     * with its length minus its stalled time as progress, to be judged against a rate before of 1e9 (every nanosecond
     * unstalled). This follows the restore (pages not there, reads from disk, a vCPU without a CPU) and not the host's memory
     * speed, which moves the operation count about 2x on this project's machines with nothing restored. Empty if any tick
     * lacks its stalled time (a guest built before wsbench reported it).
     */
    public static List<Progress> unstalledFromTicks(List<dev.thaw.guest.WsbenchTick> ticks, long originNanos) {
        if (!dev.thaw.guest.WsbenchTick.stallsReported(ticks)) return List.of();
        List<dev.thaw.guest.WsbenchTick> asUnstalled = new ArrayList<>();
        for (int i = 0; i < ticks.size(); i++) {
            dev.thaw.guest.WsbenchTick t = ticks.get(i);
            long interval = i == 0 ? 0 : t.guestNanos() - ticks.get(i - 1).guestNanos();
            asUnstalled.add(new dev.thaw.guest.WsbenchTick(t.hostNanos(), t.seq(), t.guestNanos(), Math.max(0, interval - t.stalledNanos()),
                    t.stalledNanos()));
        }
        return fromTicks(asUnstalled, originNanos);
    }

    /** The stall TTR: TTR of {@link #unstalledFromTicks} progress at the default window and {@link #DEFAULT_UNSTALLED}. */
    public Optional<Double> stallTtrSeconds() {
        return ttrNanos(DEFAULT_WINDOW_NANOS, DEFAULT_UNSTALLED).map(n -> n / 1e9);
    }

    /** TTR at the default window and utilization, in seconds; empty if not reached. */
    public Optional<Double> defaultTtrSeconds() {
        return ttrNanos(DEFAULT_WINDOW_NANOS, DEFAULT_UTILIZATION).map(n -> n / 1e9);
    }

    /** MMU at the default window over the whole observation. */
    public double defaultMmu() {
        return mmu(DEFAULT_WINDOW_NANOS, 0);
    }

    /** MMU(w): the lowest utilization of any window of length w from {@code fromNanos} on. */
    public double mmu(long windowNanos, long fromNanos) {
        return windows(windowNanos).stream().filter(x -> x[0] >= fromNanos).mapToDouble(x -> x[1]).min().orElse(Double.NaN);
    }
}
