package dev.thaw.measure;

import dev.thaw.qemu.VcpuTime;
import dev.thaw.restore.RestoreEventLog;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * A host-side estimate of how a lazily restored guest ran, for guests that report no progress:
 * from Thaw's own event log alone. The guest cannot run before the restore starts it, and after
 * that it waits while a demand fault is outstanding: from the request's arrival at Thaw to the
 * page's departure (the union of those intervals, so overlapping faults count once). Utilization
 * is one minus that stalled share of the time, for a guest with one vCPU (with several, the share of the time at least one
 * of them waited: a one-threaded workload's stall at most). It misses what the log
 * cannot see (QEMU's fault path before the request, the page's placement after it, TCG's slower
 * 4 KiB mappings), so it errs on the high side; docs/benchmarks.md compares it with the guest's own.
 * Times are nanoseconds from the restore's start. Pure: no QEMU, no threads.
 *
 * @param stalledPerStep share of each consecutive step the guest could not run (1.0 before it started)
 * @param ttrSeconds     TTR at the default window and utilization of the estimated utilization; empty if not reached
 * @param mmu            MMU at the default window of the estimated utilization
 */
public record HostStall(List<Double> stalledPerStep, Optional<Double> ttrSeconds, double mmu) {
    /** The grid the estimated progress is laid on. */
    static final long GRID_NANOS = 10_000_000L;

    /**
     * @param log          the restore's events, their times from the restore's own start
     * @param offsetNanos  added to every event time (what came before the restore's own start: opening the image)
     * @param endNanos     the end of the observation
     * @param stepNanos    the step of {@link #stalledPerStep}
     */
    public static HostStall of(RestoreEventLog log, long offsetNanos, long endNanos, long stepNanos) {
        long running = -1;
        for (int i = 0; i < log.size(); i++) {
            if (log.get(i).type() == RestoreEventLog.Type.RUNNING) running = log.get(i).nanos() + offsetNanos;
        }
        if (running < 0) throw new IllegalArgumentException("event log: expected a RUNNING event, actual none in " + log.size() + " events");
        // Merge the waits into disjoint intervals, the time before the guest started included.
        List<long[]> waits = new ArrayList<>(log.demandWaits().stream().map(w -> new long[] {w[0] + offsetNanos, w[1] + offsetNanos}).toList());
        waits.add(new long[] {0, running});
        waits.sort((a, b) -> Long.compare(a[0], b[0]));
        List<long[]> merged = new ArrayList<>();
        for (long[] w : waits) {
            if (!merged.isEmpty() && w[0] <= merged.getLast()[1]) merged.getLast()[1] = Math.max(merged.getLast()[1], w[1]);
            else merged.add(w.clone());
        }
        List<Double> steps = new ArrayList<>();
        for (long s = 0; s + stepNanos <= endNanos; s += stepNanos) steps.add(stalled(merged, s, s + stepNanos) / (double) stepNanos);
        // Estimated progress: one unit per nanosecond the guest could run, against a rate before of 1e9 per second.
        List<Responsiveness.Progress> progress = new ArrayList<>();
        for (long s = 0; s + GRID_NANOS <= endNanos; s += GRID_NANOS) {
            long runnable = GRID_NANOS - stalled(merged, s, s + GRID_NANOS);
            if (runnable > 0) progress.add(new Responsiveness.Progress(s, s + GRID_NANOS, runnable));
        }
        // Not responsive before it runs, as the guest's own TTR: the two compare like for like.
        Responsiveness r = new Responsiveness(progress, 1e9, running, endNanos);
        return new HostStall(List.copyOf(steps),
r.defaultTtrSeconds(), r.defaultMmu());
    }

    /**
     * The estimate from the vCPU's run time instead ({@link VcpuTime}): utilization is the share of each interval the vCPU
     * spent on a CPU over its share before the save, capped at 1. It sees what the event log cannot (stalls in QEMU's fault
     * path, a vCPU waiting for a core the restore's threads hold), but not a vCPU busy doing less (TCG translating code anew).
     *
     * @param runSamples {nanos from the restore's start, vCPU run nanos so far}, in time order
     * @param shareBefore the vCPU's run share before the save
     * @param runningNanos when the restore started the guest: its vCPU thread's time before that is no guest progress
     */
    public static HostStall fromVcpuRunTime(List<long[]> runSamples, double shareBefore, long runningNanos, long endNanos, long stepNanos) {
        if (!(shareBefore > 0)) throw new IllegalArgumentException("vCPU run share before the save: expected > 0, actual " + shareBefore);
        List<Responsiveness.Progress> progress = new ArrayList<>();
        for (int i = 1; i < runSamples.size(); i++) {
            long from = runSamples.get(i - 1)[0];
            long to = Math.min(runSamples.get(i)[0], endNanos);
            long ran = runSamples.get(i)[1] - runSamples.get(i - 1)[1];
            if (to <= from || ran <= 0) continue;
            // Capped: a share above the one before is the guest catching up, not more than full speed.
            progress.add(new Responsiveness.Progress(from, to, (long) Math.min(ran / shareBefore, to - from)));
        }
        Responsiveness r = new Responsiveness(progress, 1e9, runningNanos, endNanos);
        List<Double> steps = new ArrayList<>();
        for (long s = 0; s + stepNanos <= endNanos; s += stepNanos) steps.add(Math.max(0, 1 - r.utilization(s, stepNanos)));
        return new HostStall(List.copyOf(steps),
r.defaultTtrSeconds(), r.defaultMmu());
    }

    /** The stall of an eager restore: the guest waits for all of it, then runs unhindered. */
    public static HostStall eager(long runningNanos, long endNanos, long stepNanos) {
        return of(runningOnly(runningNanos), 0, endNanos, stepNanos);
    }

    private static RestoreEventLog runningOnly(long runningNanos) {
        RestoreEventLog log = new RestoreEventLog();
        log.add(RestoreEventLog.Type.RUNNING, 0, 0, runningNanos);
        return log;
    }

    /** Nanoseconds of (from, to] covered by the disjoint sorted intervals. */
    private static long stalled(List<long[]> merged, long from, long to) {
        long sum = 0;
        for (long[] m : merged) {
            if (m[0] >= to) break;
            sum += Math.max(0, Math.min(to, m[1]) - Math.max(from, m[0]));
        }
        return sum;
    }
}
