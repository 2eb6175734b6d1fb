package dev.thaw.restore;

import dev.thaw.image.CheckpointImage;
import dev.thaw.migration.ReturnPathMessage;
import dev.thaw.migration.StreamWriter;
import dev.thaw.migration.Wire;
import dev.thaw.qemu.QemuVm;
import dev.thaw.schedule.PageRange;
import dev.thaw.schedule.PageScheduler;
import dev.thaw.util.ThreadPriority;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

/**
 * The pages of a postcopy restore once the guest runs, on the main connection: requests first (with their neighbours), the
 * background otherwise, as the {@link PageScheduler} hands them out, until every non-zero page was sent. The caller's thread
 * is the only writer of the stream. A request preempts background work at the next chunk boundary; background chunks are small
 * and the socket send buffer is limited, so a requested page waits behind at most about a chunk plus the send buffer.
 *
 * <p>It also counts what it sent (the result's metrics). {@link PreemptSender} writes requests and chunks through it, from two
 * threads: each counter has one writer, and the restore reads them after both ended.
 */
final class PageSender {
    private static final int PAGE = Wire.TARGET_PAGE_BYTES;

    /** The restore's side: whether it can go on, and its error (naming the QEMU and its state). */
    interface Health {
        /** Throws the restore's failure if the return path failed or QEMU died. */
        void checkHealthy();

        RestoreException failure(String what, Throwable cause);

        /** The scheduler waits by design (tracing, pacing): a sign of life for the stall watchdog. */
        void waiting();

        /**
         * Whether EOF may follow the last page: QEMU's main thread has loaded the device state (or the wait for it ran out).
         * QEMU 7.2's listen thread, once it reads EOF, waits for that load to end before it releases the pages never sent
         * (zero pages); a load that touches one of them waits for it in turn, and nothing reads the stream any more: the
         * destination deadlocked (no SHUT, no QMP answer), seen in 2 of about 12 full test runs on a loaded host. Until
         * then the senders go on answering requests.
         */
        boolean mayEnd();
    }

    /**
     * What both senders work with, from the restore.
     *
     * @param scheduler    which page next; with preempt two threads ask it, under its lock
     * @param requests     the page requests the return path validated and queued
     * @param startedNanos when the restore began ({@link System#nanoTime}): the event log's times are after it
     * @param progress     the restore's status line
     */
    record Context(QemuVm vm, PageScheduler scheduler, LinkedBlockingQueue<ReturnPathMessage.PageRequest> requests,
                   RestoreEventLog events, long startedNanos, Health health, ThreadPriority.Policy backgroundPriority,
                   Consumer<String> progress, DemandBoost boost) {}

    private final Context context;
    private final CheckpointImage image;
    private StreamWriter writer;
    private final int sid;
    private final Map<String, Integer> blockIndex;
    private final byte[] page = new byte[PAGE];
    private final List<PostcopyRestore.Fault> faults = new ArrayList<>();
    private final List<Long> serviceNanos = new ArrayList<>();
    private final List<Long> queueNanos = new ArrayList<>();
    private long demandFaults;
    private long duplicates;
    private long demandPages;
    private long backgroundPages;

    /**
     * @param writer       the main stream, after the package that starts the guest
     * @param ramSectionId the image's RAM section, around every page written on the main stream
     * @param blockIndex   the index of each RAM block by name, as page requests name them
     */
    PageSender(Context context, CheckpointImage image, StreamWriter writer, int ramSectionId, Map<String, Integer> blockIndex) {
        this.context = context;
        this.image = image;
        this.writer = writer;
        this.sid = ramSectionId;
        this.blockIndex = blockIndex;
    }

    /** After a recovery: the new connection's main stream (the caller's thread, between two {@link #serve} calls). */
    void useWriter(StreamWriter newWriter) {
        this.writer = newWriter;
    }

    /** Demand first, background otherwise, until every non-zero page is sent; at the background's priority. */
    void serve() throws IOException {
        boolean idle = context.backgroundPriority() == ThreadPriority.Policy.IDLE;
        try {
            servePagesAsScheduled(idle);
        } finally {
            if (idle) ThreadPriority.setCurrentThread(ThreadPriority.Policy.NORMAL);
        }
    }

    private void servePagesAsScheduled(boolean idle) throws IOException {
        BackgroundDemotion demotion = idle
                ? new BackgroundDemotion(context.vm(), context.events(), context.startedNanos(), true, context.boost()) : null;
        PageScheduler scheduler = context.scheduler();
        LinkedBlockingQueue<ReturnPathMessage.PageRequest> requests = context.requests();
        Health health = context.health();
        long lastReport = System.nanoTime();
        VcpuClock vcpus = VcpuClock.forScheduler(scheduler, context.vm().pid());
        List<ReturnPathMessage.PageRequest> batch = new ArrayList<>();
        while (true) {
            health.checkHealthy();
            if (demotion != null) demotion.poll();
            if (vcpus != null) vcpus.poll(scheduler);
            batch.clear();
            requests.drainTo(batch);
            long backgroundWaitNanos = scheduler.backgroundWaitNanos(System.nanoTime());
            if (batch.isEmpty() && backgroundWaitNanos > 0) {
                // Tracing or pacing: no background now, only requests. Short waits keep the health check going, and the
                // watchdog must not take the quiet stream for a stall.
                ReturnPathMessage.PageRequest r;
                try {
                    r = requests.poll(Math.min(backgroundWaitNanos, 10_000_000L), TimeUnit.NANOSECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw health.failure("interrupted while waiting for page requests", e);
                }
                if (r != null) batch.add(r);
                requests.drainTo(batch);
                if (batch.isEmpty()) {
                    health.waiting();
                    continue;
                }
            }
            if (!batch.isEmpty()) {
                serveRequests(batch, writer, true);
                continue;
            }
            context.boost().demandServed(); // no request waits: the background's threads back to idle
            sendBackground(scheduler.nextBackground(), page);
            if (scheduler.finished()) {
                if (demotion != null) demotion.restore();
                serveUntilMayEnd();
                return;
            }
            if (System.nanoTime() - lastReport > 250_000_000L) {
                lastReport = System.nanoTime();
                context.progress().accept(String.format("serving pages: %d demand faults, %d background pages", demandFaults,
                        backgroundPages));
            }
        }
    }

    /** Every page was handed out: answers requests (zero pages, duplicates) on the main stream until EOF may go. */
    private void serveUntilMayEnd() throws IOException {
        List<ReturnPathMessage.PageRequest> batch = new ArrayList<>();
        while (!context.health().mayEnd()) {
            if (nextRequests(context, batch)) serveRequests(batch, writer, true);
        }
    }

    /**
     * Health checked, then the requests that arrive within 10 ms into {@code batch} (cleared first); false, with a sign of life
     * for the stall watchdog, if none came.
     */
    static boolean nextRequests(Context context, List<ReturnPathMessage.PageRequest> batch) {
        Health health = context.health();
        health.checkHealthy();
        batch.clear();
        ReturnPathMessage.PageRequest r;
        try {
            r = context.requests().poll(10, TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw health.failure("interrupted while waiting for page requests", e);
        }
        if (r == null) {
            health.waiting();
            return false;
        }
        batch.add(r);
        context.requests().drainTo(batch);
        return true;
    }

    /** One background chunk on the main stream, in a RAM section of its own (nothing if empty). */
    void sendBackground(List<PageRange> chunk, byte[] buffer) throws IOException {
        if (chunk.isEmpty()) return;
        writer.openRamSection(sid, false);
        int pages = 0;
        for (PageRange unit : chunk) pages += send(writer, unit, buffer);
        writer.closeRamSection(sid);
        writer.flush();
        backgroundPages += pages;
        context.events().add(RestoreEventLog.Type.BACKGROUND_SENT, chunk.getFirst().block(), pages, now());
    }

    /**
     * Answers page requests on {@code out}: the main stream (in a RAM section) or the preempt channel (bare records).
     */
    void serveRequests(List<ReturnPathMessage.PageRequest> batch, StreamWriter out, boolean inSection) throws IOException {
        long taken = System.nanoTime();
        if (inSection) out.openRamSection(sid, false);
        List<Long> arrivals = new ArrayList<>();
        for (ReturnPathMessage.PageRequest r : batch) {
            int b = blockIndex.get(r.blockName());
            int p = (int) (r.offset() / PAGE);
            PageScheduler.Demand demand;
            synchronized (context.scheduler()) {
                demand = context.scheduler().request(b, p);
            }
            faults.add(new PostcopyRestore.Fault(b, p, r.receivedNanos() - context.startedNanos(), demand.duplicate()));
            context.events().add(demand.duplicate() ? RestoreEventLog.Type.DUPLICATE_REQUEST : RestoreEventLog.Type.REQUEST, b, p,
                    r.receivedNanos() - context.startedNanos());
            if (demand.duplicate()) {
                duplicates++;
                continue;
            }
            demandFaults++;
            arrivals.add(r.receivedNanos());
            for (PageRange unit : demand.units()) demandPages += send(out, unit, page);
        }
        // One flush for the requested pages and their neighbours: flushing each requested page before its neighbours
        // was measured too (demo image, 5 interleaved pairs): fewer but longer faults, the same total vCPU blocked time.
        if (inSection) out.closeRamSection(sid);
        out.flush();
        long now = System.nanoTime();
        for (long a : arrivals) {
            serviceNanos.add(now - a);
            queueNanos.add(taken - a);
        }
        context.events().add(RestoreEventLog.Type.DEMAND_SENT, 0, arrivals.size(), now - context.startedNanos());
    }

    /**
     * Sends one unit (a destination host page); returns its target pages. A 2 MiB host page goes as its 512 target pages
     * back to back, zero ones included: QEMU places it when the last one arrives, and nothing may come between.
     */
    private int send(StreamWriter out, PageRange unit, byte[] buffer) throws IOException {
        int b = unit.block();
        for (int q = unit.firstPage(); q < unit.endPage(); q++) {
            if (image.readPage(b, q, buffer, 0)) out.page(b, q, buffer, 0);
            else out.zeroPage(b, q);
        }
        return unit.pageCount();
    }

    /** Nanoseconds since the restore began: the event log's clock. */
    private long now() {
        return System.nanoTime() - context.startedNanos();
    }

    Context context() {
        return context;
    }

    long demandFaults() {
        return demandFaults;
    }

    long duplicates() {
        return duplicates;
    }

    long demandPages() {
        return demandPages;
    }

    long backgroundPages() {
        return backgroundPages;
    }

    /** Every page request as it arrived, duplicates included. */
    List<PostcopyRestore.Fault> faults() {
        return List.copyOf(faults);
    }

    /** Per demand fault: request read to page written to the socket. */
    long[] serviceNanos() {
        return serviceNanos.stream().mapToLong(Long::longValue).toArray();
    }

    /** Per demand fault: request read to the scheduler taking it. */
    long[] queueNanos() {
        return queueNanos.stream().mapToLong(Long::longValue).toArray();
    }
}
