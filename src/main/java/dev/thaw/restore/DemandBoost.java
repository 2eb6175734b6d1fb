package dev.thaw.restore;

import dev.thaw.util.ThreadPriority;
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
 */
final class DemandBoost {
    private static final Logger log = LoggerFactory.getLogger(PostcopyRestore.class);

    private final List<Long> demotedTids = new CopyOnWriteArrayList<>();
    private final AtomicBoolean raised = new AtomicBoolean();
    private final AtomicLong raiseCount = new AtomicLong();

    /** A thread moved to SCHED_IDLE for the background (the sender, QEMU's listen thread), raised with demand from now on. */
    void demoted(long tid) {
        demotedTids.add(tid);
    }

    /** The background is done and its threads go back to normal for good: nothing to raise or lower any more. */
    void released() {
        demotedTids.clear();
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
            try {
                ThreadPriority.set(tid, policy);
            } catch (IllegalStateException e) { // the thread ended (QEMU tearing postcopy down): nothing to move
                log.debug("thread {} not moved to {}: {}", tid, policy, e.getMessage());
            }
        }
    }
}
