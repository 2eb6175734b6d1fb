package dev.thaw.measure;

import dev.thaw.guest.WsbenchTick;
import dev.thaw.qemu.QemuVm;
import java.time.Duration;
import java.util.List;
import java.util.Optional;

/**
 * How a restored demo guest ran after its restore: waits until {@code window} after the guest
 * started, then reads wsbench's ticks from the console. Times count from the restore's start.
 *
 * @param ttrSeconds         TTR at the default window and utilization, empty if not reached within the observation
 * @param mmu                MMU at the default window over the observation (from the restore's start)
 * @param relativeThroughput operations in the window after the guest started (placed on the guest's clock), over the rate
 *                           before the save
 * @param utilizationPerStep utilization in consecutive {@link #STEP_MILLIS} windows from the restore's start (for plots)
 * @param latency            a host-side client's request latency over the observation; null for a guest that reports its own
 *                           progress
 * @param stallTtrSeconds    the stall TTR ({@link Responsiveness#stallTtrSeconds}): the earliest time after which every 1 s window
 *                           has at least {@link Responsiveness#DEFAULT_UNSTALLED} of its time unstalled in the guest's own view,
 *                           against the source's own unstalled share before the save where it was measured;
 *                           empty if not reached, or null where the guest reports no stalled time (an older wsbench, Redis)
 * @param unstalledMmu       the lowest unstalled share of any 1 s window over the observation (against the source's, as the stall
 *                           TTR); NaN where not reported
 */
public record AfterRestore(Optional<Double> ttrSeconds, double mmu, double relativeThroughput, List<Double> utilizationPerStep,
                           RequestLatency latency, Optional<Double> stallTtrSeconds, double unstalledMmu) {
    /** Without the guest's stalled time (a guest that does not report it). */
    public AfterRestore(Optional<Double> ttrSeconds, double mmu, double relativeThroughput, List<Double> utilizationPerStep,
                        RequestLatency latency) {
        this(ttrSeconds, mmu, relativeThroughput, utilizationPerStep, latency, null, Double.NaN);
    }

    /** Whether the guest reported its stalled time (then {@link #stallTtrSeconds} is not null). */
    public boolean stallsReported() {
        return stallTtrSeconds != null;
    }

    /** The step of {@link #utilizationPerStep}: utilization in consecutive windows of this length from the restore's start. */
    public static final long STEP_MILLIS = 250;

    private static final org.slf4j.Logger log = org.slf4j.LoggerFactory.getLogger(AfterRestore.class);

    /**
     * @param startedNanos  System.nanoTime() when the restore began
     * @param runningNanos  when the guest started, relative to the restore's start
     * @param opsPerSecondBefore the guest's rate before the save
     */
    public static AfterRestore observe(QemuVm vm, long startedNanos, long runningNanos, double opsPerSecondBefore, Duration window)
            throws InterruptedException {
        return observe(vm, startedNanos, runningNanos, opsPerSecondBefore, Double.NaN, window);
    }

    /**
     * As above, the stall TTR relative to {@code unstalledShareBefore}, the source's own unstalled share before the save
     * ({@link Responsiveness#stallReference}; NaN: the absolute share).
     */
    public static AfterRestore observe(QemuVm vm, long startedNanos, long runningNanos, double opsPerSecondBefore,
                                       double unstalledShareBefore, Duration window) throws InterruptedException {
        long windowEnd = startedNanos + runningNanos + window.toNanos();
        while (System.nanoTime() < windowEnd + 200_000_000L) {
            if (!vm.isAlive()) throw new IllegalStateException("the restored guest died: " + vm.describeState());
            Thread.sleep(50);
        }
        return fromTicks(WsbenchTick.all(vm.console().snapshot()), startedNanos, runningNanos, opsPerSecondBefore, unstalledShareBefore,
                window);
    }

    /**
     * How the guest ran from its restored console's ticks. The console may begin with ticks printed before the save (the
     * guest's serial driver sends what it buffered once the guest runs again), and the first tick printed after the restore
     * counts work done before the save: only the work placed after {@code runningNanos} is credited, to TTR, MMU and the
     * relative throughput alike.
     */
    static AfterRestore fromTicks(List<WsbenchTick> ticks, long startedNanos, long runningNanos, double opsPerSecondBefore, Duration window) {
        return fromTicks(ticks, startedNanos, runningNanos, opsPerSecondBefore, Double.NaN, window);
    }

    /** As above, the stall TTR relative to the source's unstalled share before the save (NaN: absolute). */
    static AfterRestore fromTicks(List<WsbenchTick> ticks, long startedNanos, long runningNanos, double opsPerSecondBefore,
                                  double unstalledShareBefore, Duration window) {
        long end = runningNanos + window.toNanos();
        List<Responsiveness.Progress> progress = Responsiveness.fromTicks(ticks, startedNanos);
        if (log.isDebugEnabled()) { // how much the guest clock placed before running (issue 12): what is not credited
            double before = progress.stream().mapToDouble(p -> p.opsWithin(Long.MIN_VALUE, runningNanos)).sum();
            log.debug("{} of {} ticks end before running at {} ms; {} ops ({} s at the rate before) placed before it, not credited",
                    progress.stream().filter(p -> p.toNanos() <= runningNanos).count(), ticks.size(), runningNanos / 1_000_000,
                    Math.round(before), String.format("%.3f", before / opsPerSecondBefore));
        }
        Responsiveness r = new Responsiveness(progress, opsPerSecondBefore, runningNanos, end);
        AfterRestore byRate = of(r, r.utilization(runningNanos, window.toNanos()), end, null);
        List<Responsiveness.Progress> unstalled = Responsiveness.unstalledFromTicks(ticks, startedNanos);
        if (unstalled.isEmpty()) return byRate;
        // Unstalled nanoseconds per second against the source's own share: 1.0 is the guest stalling as much as before the save.
        Responsiveness u = new Responsiveness(unstalled, 1e9 * Responsiveness.stallReference(unstalledShareBefore), runningNanos, end);
        return new AfterRestore(byRate.ttrSeconds(), byRate.mmu(), byRate.relativeThroughput(), byRate.utilizationPerStep(), null,
                u.stallTtrSeconds(), u.defaultMmu());
    }

    /**
     * The MMU curve on the grid of {@link #utilizationPerStep}: element k - 1 is the lowest mean utilization of any k
     * consecutive steps (a window of k x {@link #STEP_MILLIS}) from the restore's start.
     */
    public static List<Double> mmuCurve(List<Double> steps) {
        List<Double> out = new java.util.ArrayList<>();
        for (int k = 1; k <= steps.size(); k++) {
            double sum = 0;
            for (int i = 0; i < k; i++) sum += steps.get(i);
            double min = sum;
            for (int i = k; i < steps.size(); i++) {
                sum += steps.get(i) - steps.get(i - k);
                min = Math.min(min, sum);
            }
            out.add(min / k);
        }
        return List.copyOf(out);
    }

    /** TTR and MMU at the defaults, and utilization per step, from progress observed until {@code endNanos} after the start. */
    static AfterRestore of(Responsiveness r, double relative, long endNanos, RequestLatency latency) {
        List<Double> steps = new java.util.ArrayList<>();
        long step = STEP_MILLIS * 1_000_000L;
        for (long t = 0; t + step <= endNanos; t += step) steps.add(r.utilization(t, step));
        return new AfterRestore(r.defaultTtrSeconds(), r.defaultMmu(), relative, List.copyOf(steps), latency);
    }
}
