package dev.thaw.restore;

import dev.thaw.qemu.Journal;
import dev.thaw.qemu.QemuVm;
import dev.thaw.qemu.QmpEvent;
import dev.thaw.util.ThreadPriority;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Moves a postcopy restore's background to SCHED_IDLE once the guest runs (QEMU's RESUME event), looking every 10 ms: QEMU's
 * listen thread (found by name, up to 5 s after) and, without preempt, the sender itself. Not before: while QEMU loads the
 * device state its main thread holds one core, and page requests from the device load served at idle priority wait behind
 * any other work on the other (measured at 4 GiB: the guest running after 2-3 s instead of about 1 s).
 *
 * <p>Polled by the thread that sends; not thread-safe.
 */
final class BackgroundDemotion {
    // The restore's logger, so that its warning reads as the restore's, as it did when this class was part of it.
    private static final Logger log = LoggerFactory.getLogger(PostcopyRestore.class);

    /** QEMU's thread that reads the main stream and places pages; it starts when QEMU processes LISTEN. */
    private static final String QEMU_LISTEN_THREAD = "postcopy/listen";

    private final QemuVm vm;
    private final RestoreEventLog events;
    private final long startedNanos;
    private final boolean sender;
    private final Journal<QmpEvent>.Cursor resumed;
    private long nextLookNanos = System.nanoTime();
    private long giveUpNanos = Long.MAX_VALUE;
    private boolean running;
    private boolean done;
    private final List<Long> demoted = new ArrayList<>();
    private final DemandBoost boost;

    /**
     * @param startedNanos when the restore began ({@link System#nanoTime}): the event log's times are after it
     * @param sender       whether the polling thread is the background sender, to be demoted with QEMU's thread
     */
    BackgroundDemotion(QemuVm vm, RestoreEventLog events, long startedNanos, boolean sender) {
        this(vm, events, startedNanos, sender, null);
    }

    /** @param boost told every thread demoted, raised with demand ({@link DemandBoost}); null: none */
    BackgroundDemotion(QemuVm vm, RestoreEventLog events, long startedNanos, boolean sender, DemandBoost boost) {
        this.boost = boost;
        this.vm = vm;
        this.events = events;
        this.startedNanos = startedNanos;
        this.sender = sender;
        // An attached QEMU (a resumed restore) has no QMP connection while it waits for pages, and its guest runs already.
        this.resumed = vm.qmp() == null ? null : vm.qmp().events().cursorFromStart();
    }

    /**
     * QEMU's listen thread back to normal once the background is done: it then tears postcopy down, and QEMU 7.2 was seen
     * to abort (SIGABRT, after SHUT) in 2 of about 60 restores with that thread idle; its teardown runs as it always did.
     */
    void restore() {
        if (boost != null) boost.released();
        for (long tid : demoted) {
            try {
                ThreadPriority.set(tid, ThreadPriority.Policy.NORMAL);
            } catch (IllegalStateException gone) {
                // the thread already ended
            }
        }
        demoted.clear();
    }

    void poll() {
        if (done || System.nanoTime() < nextLookNanos) return;
        nextLookNanos = System.nanoTime() + 10_000_000L;
        if (!running && resumed == null) {
            running = true;
            if (sender) demoteSender();
            giveUpNanos = System.nanoTime() + 5_000_000_000L;
        }
        if (!running) {
            try {
                for (var e = resumed.next(Duration.ZERO); e.isPresent(); e = resumed.next(Duration.ZERO)) {
                    if (e.get().is("RESUME")) running = true;
                }
            } catch (InterruptedException ie) {
                Thread.currentThread().interrupt();
                return;
            }
            if (!running) return;
            if (sender) demoteSender();
            giveUpNanos = System.nanoTime() + 5_000_000_000L;
        }
        List<Long> tids = ThreadPriority.threadsNamed(vm.pid(), QEMU_LISTEN_THREAD);
        for (long tid : tids) {
            ThreadPriority.set(tid, ThreadPriority.Policy.IDLE);
            if (boost != null) boost.demoted(tid);
        }
        demoted.addAll(tids);
        if (!tids.isEmpty()) {
            done = true;
            events.add(RestoreEventLog.Type.LISTEN_IDLE, 0, tids.size(), System.nanoTime() - startedNanos);
        } else if (System.nanoTime() > giveUpNanos) {
            done = true;
            log.warn("{}: QEMU's {} thread not found in 5 s: it keeps its priority", vm.name(), QEMU_LISTEN_THREAD);
        }
    }

    private void demoteSender() {
        ThreadPriority.setCurrentThread(ThreadPriority.Policy.IDLE);
        if (boost != null) boost.senderDemoted(ThreadPriority.currentTid());
    }
}
