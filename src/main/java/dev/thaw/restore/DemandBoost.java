package dev.thaw.restore;

import dev.thaw.util.ThreadPriority;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Demand pages at normal priority while the background streams at SCHED_IDLE. Without the preempt channel one thread of
 * Thaw's sends both, and one thread of QEMU's ({@code postcopy/listen}) reads both; at SCHED_IDLE they take only CPU that
 * no other thread wants, so on a host whose CPUs are busy (other guests, other clones, a build) a demand request waited
 * behind everything else there, and the faulting guest with it. The return path's reader, at normal priority, raises the
 * demoted threads as a request arrives; the sender lowers them again once no request waits, before its next background
 * chunk. Two system calls per thread at each burst of faults, none while the background streams undisturbed.
 *
 * <p>And a guard: a host whose CPUs stay busy leaves SCHED_IDLE almost nothing (its weight is 3 against 1024), so the rest of
 * memory would crawl in for as long as the load lasts and the restore not end. A thread of its own, at normal priority,
 * reads the idle sender's schedstat; once it spent more than half of {@link #STARVED} runnable but waiting for a CPU, the
 * background's threads stay at normal priority to the end (logged, and an event). A sender that waits on purpose (pacing,
 * a full socket) sleeps, which is not waiting for a CPU.
 */
final class DemandBoost implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(PostcopyRestore.class);
    /**
     * The window of the guard: the sender waiting for a CPU more than half of it is starvation;
     * {@code -Dthaw.backgroundStarvedMillis} changes it, for measuring the guard.
     */
    static final Duration STARVED = Duration.ofMillis(Long.getLong("thaw.backgroundStarvedMillis", 2000));

    private final List<Long> demotedTids = new CopyOnWriteArrayList<>();
    private final AtomicBoolean raised = new AtomicBoolean();
    private final AtomicLong raiseCount = new AtomicLong();
    private final String vmName;
    private final RestoreEventLog events;
    private final long startedNanos;
    private final Duration starved;
    private volatile long senderTid = -1;
    private volatile boolean promoted;
    private volatile boolean closed;
    private Thread guard;

    /** @param startedNanos when the restore began ({@link System#nanoTime}): the event log's times are after it */
    DemandBoost(String vmName, RestoreEventLog events, long startedNanos) {
        this(vmName, events, startedNanos, STARVED);
    }

    DemandBoost(String vmName, RestoreEventLog events, long startedNanos, Duration starved) {
        this.vmName = vmName;
        this.events = events;
        this.startedNanos = startedNanos;
        this.starved = starved;
    }

    /** The sender moved itself to SCHED_IDLE: raised with demand, and watched for starvation. */
    void senderDemoted(long tid) {
        senderTid = tid;
        demoted(tid);
    }

    /** A thread moved to SCHED_IDLE for the background (the sender, QEMU's listen thread), raised with demand from now on. */
    synchronized void demoted(long tid) {
        if (closed || promoted) {
            set(tid, ThreadPriority.Policy.NORMAL); // too late for idle: the background was promoted or is done
            return;
        }
        demotedTids.add(tid);
        if (guard == null && senderTid > 0) {
            guard = Thread.ofPlatform().daemon().name("background-guard-" + vmName).start(this::watch);
        }
    }

    /** Whether the guard found the background starved and moved it to normal priority. */
    boolean promoted() {
        return promoted;
    }

    /** The background is done and its threads go back to normal for good: nothing to raise, lower or watch any more. */
    void released() {
        demotedTids.clear();
    }

    /** Releases and stops the guard (the sender's end, also on failure). */
    @Override
    public void close() {
        closed = true;
        released();
        Thread g;
        synchronized (this) {
            g = guard;
        }
        if (g != null) g.interrupt();
    }

    private void watch() {
        java.nio.file.Path schedstat = java.nio.file.Path.of("/proc/self/task/" + senderTid + "/schedstat");
        long windowNanos = starved.toNanos();
        long periodMillis = Math.max(10, starved.toMillis() / 8);
        java.util.ArrayDeque<long[]> samples = new java.util.ArrayDeque<>(); // {nanoTime, waited}
        while (!closed) {
            try {
                Thread.sleep(periodMillis);
            } catch (InterruptedException e) {
                return;
            }
            if (closed || demotedTids.isEmpty()) continue;
            dev.thaw.qemu.VcpuTime.Sample now = dev.thaw.qemu.VcpuTime.sample(List.of(schedstat));
            if (now.vcpuCount() == 0) return; // the sender ended
            long at = System.nanoTime();
            samples.addLast(new long[] {at, now.waitedNanos()});
            while (samples.size() > 1 && at - samples.peekFirst()[0] > windowNanos) samples.removeFirst();
            long[] first = samples.peekFirst();
            if (at - first[0] < windowNanos * 3 / 4) continue; // not a window yet
            long waited = now.waitedNanos() - first[1];
            if (2 * waited > at - first[0]) {
                promoted = true;
                List<Long> tids = List.copyOf(demotedTids);
                demotedTids.clear(); // nothing lowers them again
                for (long tid : tids) set(tid, ThreadPriority.Policy.NORMAL);
                events.add(RestoreEventLog.Type.BACKGROUND_PROMOTED, 0, tids.size(), at - startedNanos);
                log.warn("{}: the idle background sender waited {} ms of {} ms for a CPU (the host's CPUs busy): the background"
                        + " streams at normal priority from now on", vmName, waited / 1_000_000, (at - first[0]) / 1_000_000);
                return;
            }
        }
    }

    /** The return path's reader, once it queued a request. */
    void requestArrived() {
        if (demotedTids.isEmpty() || !raised.compareAndSet(false, true)) return;
        raiseCount.incrementAndGet();
        set(ThreadPriority.Policy.NORMAL);
    }

    /** The sender, with no request waiting, before it sends background pages. */
    void demandServed() {
        if (!raised.compareAndSet(true, false)) return;
        set(ThreadPriority.Policy.IDLE);
    }

    /** How many bursts of demand raised the background's threads. */
    long raiseCount() {
        return raiseCount.get();
    }

    private void set(ThreadPriority.Policy policy) {
        for (long tid : demotedTids) {
            if (policy == ThreadPriority.Policy.IDLE && promoted) return; // the guard raised them for good meanwhile
            set(tid, policy);
        }
    }

    private static void set(long tid, ThreadPriority.Policy policy) {
        try {
            ThreadPriority.set(tid, policy);
        } catch (IllegalStateException e) { // the thread ended (QEMU tearing postcopy down): nothing to move
            log.debug("thread {} not moved to {}: {}", tid, policy, e.getMessage());
        }
    }
}
