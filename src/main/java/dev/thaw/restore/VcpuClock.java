package dev.thaw.restore;

import dev.thaw.qemu.VcpuTime;
import dev.thaw.schedule.PageScheduler;
import java.nio.file.Path;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Feeds a scheduler's busy pace ({@link dev.thaw.schedule.BusyPace}) the restored guest's vCPU time, read from /proc at most
 * every 20 ms by the thread that streams the background: the vCPU threads are found once, then each read is one small file
 * per vCPU (the same thread serves demand pages). A QEMU whose vCPU threads cannot be found within 2 s gets no pace at all,
 * rather than one that takes its guest for busy forever. Not thread-safe: one per streaming thread.
 */
final class VcpuClock {
    private static final Logger log = LoggerFactory.getLogger(PostcopyRestore.class);
    private static final long PERIOD_NANOS = 20_000_000L;
    private static final long GIVE_UP_NANOS = 2_000_000_000L;
    private final long qemuPid;
    private final long startedNanos = System.nanoTime();
    private List<Path> schedstats = List.of();
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
        VcpuTime.Sample s = VcpuTime.sample(schedstats);
        if (s.vcpuCount() < schedstats.size() || schedstats.isEmpty()) { // not found yet, or a thread went: look again
            schedstats = VcpuTime.schedstats(qemuPid);
            s = VcpuTime.sample(schedstats);
        }
        if (s.vcpuCount() == 0) {
            if (now - startedNanos > GIVE_UP_NANOS) {
                synchronized (scheduler) {
                    if (scheduler.hasBusyPace()) {
                        scheduler.dropBusyPace();
                        log.warn("QEMU pid {}: no vCPU thread found in /proc within 2 s: the background is not paced", qemuPid);
                    }
                }
            }
            return;
        }
        synchronized (scheduler) {
            scheduler.vcpuRunTime(now, s.runNanos(), s.vcpuCount());
        }
    }
}
