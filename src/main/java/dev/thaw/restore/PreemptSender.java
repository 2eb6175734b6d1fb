package dev.thaw.restore;

import dev.thaw.migration.ReturnPathMessage;
import dev.thaw.migration.StreamWriter;
import dev.thaw.migration.Wire;
import dev.thaw.schedule.PageRange;
import dev.thaw.schedule.PageScheduler;
import dev.thaw.util.ThreadPriority;
import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * The pages of a postcopy restore once the guest runs, with QEMU's postcopy-preempt channel (docs/protocol.md, "Preempt
 * channel"): requests are answered on the preempt connection (bare page records), at normal priority, so a demand page never
 * waits behind the background; a {@code postcopy-background-<vm>} thread streams the rest on the main connection, at the
 * background's priority. The scheduler, under its lock, hands every unit to one of them only: QEMU 7.2 fails on a page placed
 * twice. When the background is done the preempt channel ends with EOS (QEMU's preempt reader stops only on it); later
 * requests are duplicates.
 *
 * <p>Who answers: the return path's reader itself, as it reads each request ({@link #serveInline}), once this sender runs;
 * requests read before that (while QEMU loads the device state) were queued, and the caller's thread answers those first.
 * Answering on the reader saves a hand-over between threads per fault (a wake-up on a host whose other core runs the vCPU);
 * {@code -Dthaw.preemptQueued=true} hands every request to the caller's thread instead, for comparison.
 */
final class PreemptSender {
    /** The trial's switch: requests handed to the caller's thread through the queue, as before the fourteenth session. */
    static final boolean QUEUED = Boolean.getBoolean("thaw.preemptQueued");

    private static final int PAGE = Wire.TARGET_PAGE_BYTES;

    private final PageSender.Context context;
    private final PageSender pages;
    private final StreamWriter preemptWriter;
    private final Duration stallTimeout;
    /** Set by the background thread when it fails; the request loop ends the restore with it. */
    private volatile Throwable backgroundFailure;
    private volatile boolean backgroundDone;
    /** Guards the preempt writer and {@link #inline}: the reader writes demand pages, the caller's thread ends the channel. */
    private final Object preemptLock = new Object();
    /** Whether the reader answers requests itself; set once the queued ones are answered, cleared before EOS. */
    private boolean inline;
    /** A failure of an answer written by the reader; the caller's thread ends the restore with it. */
    private volatile Throwable inlineFailure;

    /**
     * @param pages         writes requests and background chunks, and counts them; its stream is the main connection, its
     *                      context (scheduler, requests, health) this sender's
     * @param preemptWriter the preempt connection: demand pages only
     * @param stallTimeout  how long the background may take to end once the request loop stopped
     */
    PreemptSender(PageSender pages, StreamWriter preemptWriter, Duration stallTimeout) {
        this.context = pages.context();
        this.pages = pages;
        this.preemptWriter = preemptWriter;
        this.stallTimeout = stallTimeout;
    }

    /** Until the background handed out every non-zero page; then EOS on the preempt channel. */
    void serve() throws IOException {
        PageSender.Health health = context.health();
        boolean idle = context.backgroundPriority() == ThreadPriority.Policy.IDLE;
        Thread background = Thread.ofPlatform().daemon().name("postcopy-background-" + context.vm().name()).start(() -> {
            try {
                if (idle) ThreadPriority.setCurrentThread(ThreadPriority.Policy.IDLE);
                streamBackground();
            } catch (Throwable t) {
                backgroundFailure = t;
            } finally {
                backgroundDone = true;
            }
        });
        BackgroundDemotion demotion = idle
                ? new BackgroundDemotion(context.vm(), context.events(), context.startedNanos(), false) : null;
        List<ReturnPathMessage.PageRequest> batch = new ArrayList<>();
        boolean backgroundEnded = false; // by itself, before any stop: a thread stopped early returns as if it had finished
        try {
            if (!QUEUED) {
                // The requests queued so far, then the reader answers the rest as it reads them.
                synchronized (preemptLock) {
                    context.requests().drainTo(batch);
                    if (!batch.isEmpty()) pages.serveRequests(batch, preemptWriter, false);
                    inline = true;
                }
            }
            // After the background, requests go on until EOF may go (PageSender.Health#mayEnd).
            while (!backgroundDone || !health.mayEnd()) {
                if (backgroundFailure != null || inlineFailure != null) break;
                if (demotion != null) demotion.poll();
                if (!PageSender.nextRequests(context, batch)) continue;
                synchronized (preemptLock) {
                    pages.serveRequests(batch, preemptWriter, false);
                }
            }
            background.join(stallTimeout.toMillis());
            backgroundEnded = !background.isAlive();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw health.failure("interrupted while the background finished", e);
        } finally {
            synchronized (preemptLock) {
                inline = false; // later requests are duplicates (every page handed out) or the restore failed: the queue takes them
            }
            stopBackground(background);
        }
        if (inlineFailure instanceof IOException io) throw io;
        if (inlineFailure != null) throw health.failure("answering a page request failed: " + inlineFailure.getMessage(), inlineFailure);
        if (backgroundFailure instanceof IOException io) throw io;
        if (backgroundFailure != null) throw health.failure("the background stream failed: " + backgroundFailure.getMessage(), backgroundFailure);
        if (!backgroundEnded) throw health.failure("the background stream did not finish", null);
        if (demotion != null) demotion.restore();
        synchronized (preemptLock) {
            preemptWriter.preemptEnd();
            preemptWriter.flush();
        }
    }

    /**
     * On the return path's reader: answers {@code request} on the preempt channel now, if this sender answers inline; false
     * if the caller must queue it (before the queued requests were answered, after the background ended, in the trial).
     */
    boolean serveInline(ReturnPathMessage.PageRequest request) {
        synchronized (preemptLock) {
            if (!inline) return false;
            if (inlineFailure != null) return true; // the restore is ending with it
            try {
                pages.serveRequests(List.of(request), preemptWriter, false);
            } catch (Throwable t) {
                inlineFailure = t;
            }
            return true;
        }
    }

    /**
     * Ends the background thread when the loop above left early (a failure, a timeout): with a flag it sees between chunks,
     * not an interrupt, which landing in or before an image read would close the image's pack channel for everyone else
     * reading it (clones, a later restore in this process). Only a thread still stuck after {@link #STOP_WAIT} (a write to a
     * QEMU that stopped reading) is interrupted.
     */
    private void stopBackground(Thread background) {
        stopping = true;
        boolean interrupted = Thread.interrupted(); // an interrupted caller (Clones stopping the others) still waits the bound
        try {
            background.join(STOP_WAIT.toMillis());
        } catch (InterruptedException e) {
            interrupted = true;
        } finally {
            if (interrupted) Thread.currentThread().interrupt();
        }
        if (background.isAlive()) background.interrupt();
    }

    private static final Duration STOP_WAIT = Duration.ofSeconds(5);
    private volatile boolean stopping;

    /** The background thread: chunks on the main channel until every non-zero page was handed out. */
    private void streamBackground() throws IOException, InterruptedException {
        PageScheduler scheduler = context.scheduler();
        byte[] buffer = new byte[PAGE];
        VcpuClock vcpus = VcpuClock.forScheduler(scheduler, context.vm().pid());
        while (!stopping) {
            if (vcpus != null) vcpus.poll(scheduler);
            List<PageRange> chunk;
            long waitNanos;
            synchronized (scheduler) {
                waitNanos = scheduler.backgroundWaitNanos(System.nanoTime());
                chunk = waitNanos > 0 ? List.of() : scheduler.nextBackground();
            }
            if (waitNanos > 0) {
                context.health().waiting();
                Thread.sleep(Math.max(1, Math.min(10, waitNanos / 1_000_000)));
                continue;
            }
            pages.sendBackground(chunk, buffer);
            synchronized (scheduler) {
                if (scheduler.finished()) return;
            }
        }
    }
}
