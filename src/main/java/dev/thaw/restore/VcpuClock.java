package dev.thaw.restore;

import dev.thaw.qemu.VcpuTime;
import dev.thaw.schedule.PageScheduler;

/**
 * Feeds a scheduler's busy pace ({@link dev.thaw.schedule.BusyPace}) the restored guest's vCPU time, read from /proc at most
 * every 20 ms by the thread that streams the background. Not thread-safe: one per streaming thread.
 */
final class VcpuClock {
    private static final long PERIOD_NANOS = 20_000_000L;
    private final long qemuPid;
    private long nextNanos;

    private VcpuClock(long qemuPid) {
        this.qemuPid = qemuPid;
    }

    /** A clock for the scheduler, or null when it has no busy pace (nothing to read then). */
    static VcpuClock forScheduler(PageScheduler scheduler, long qemuPid) {
        return scheduler.hasBusyPace() ? new VcpuClock(qemuPid) : null;
    }

    void poll(PageScheduler scheduler) {
        long now = System.nanoTime();
        if (now < nextNanos) return;
        nextNanos = now + PERIOD_NANOS;
        VcpuTime.Sample s = VcpuTime.sample(qemuPid);
        if (s.vcpuCount() == 0) return; // QEMU is gone; the restore's health check says so
        synchronized (scheduler) {
            scheduler.vcpuRunTime(now, s.runNanos(), s.vcpuCount());
        }
    }
}
