package dev.thaw.restore;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.thaw.migration.RamBlock;
import dev.thaw.migration.ReturnPathMessage;
import dev.thaw.migration.StreamWriter;
import dev.thaw.qemu.QemuVm;
import dev.thaw.qemu.QmpException;
import dev.thaw.qemu.SpareMonitor;
import java.io.IOException;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * QEMU's postcopy recovery, Thaw's side as the source (docs/protocol.md, "Postcopy recovery"): once a connection broke after
 * RUN and QEMU paused in postcopy, {@code migrate-recover} on a new socket, a new connection, RECV_BITMAP per block, the
 * received bitmaps as the scheduler's pages sent, POSTCOPY_RESUME and its RESUME_ACK, all within {@link #RECOVERY_TIMEOUT}.
 * The restore's session owns the connections and serves the pages before and after; this class only reconnects, at most
 * {@link #MAX_RECOVERIES} times per restore.
 *
 * @param <C> the session's connection
 */
final class PostcopyRecovery<C extends PostcopyRecovery.Connection> {
    private static final Logger log = LoggerFactory.getLogger(PostcopyRecovery.class);

    /** Broken connections one restore recovers from before it gives up. */
    static final int MAX_RECOVERIES = 20;
    /** From a broken connection to RESUME_ACK: QEMU paused, listening again, its bitmaps and its ack. */
    static final Duration RECOVERY_TIMEOUT = Duration.ofSeconds(30);

    /** The connection to the destination broke (not a protocol error, not a dead QEMU): postcopy recovery may resume it. */
    static final class ConnectionLost extends RuntimeException {
        ConnectionLost(String message) {
            super(message);
        }
    }

    /** What recovery needs of a connection: its stream, and the handshake answers its return-path reader queued. */
    interface Connection extends AutoCloseable {
        StreamWriter writer();

        /** The next received bitmap or RESUME_ACK the return path read, or null after {@code timeoutMillis}. */
        ReturnPathMessage nextHandshake(long timeoutMillis) throws InterruptedException;

        /** Why the connection broke, or null while it works. */
        String failure();

        /** The destination sent what it must not: no recovery. */
        boolean protocolError();

        @Override
        void close();
    }

    /** Opens the session's connection on a channel to the destination (its writer, watchdog and return-path reader). */
    interface Connector<C> {
        C open(SocketChannel channel) throws IOException;
    }

    private final PageSender.Context context;
    private final List<RamBlock> blocks;
    private final Map<String, Integer> blockIndex;
    private final Connector<C> connector;
    private int recoveries;

    /**
     * @param context    the restore's QEMU, scheduler, request queue, event log, status line and failure
     * @param blocks     the destination's RAM blocks, in the stream's order
     * @param blockIndex the index of each block by name, as the received bitmaps name them
     */
    PostcopyRecovery(PageSender.Context context, List<RamBlock> blocks, Map<String, Integer> blockIndex, Connector<C> connector) {
        this.context = context;
        this.blocks = blocks;
        this.blockIndex = blockIndex;
        this.connector = connector;
    }

    /**
     * Closes {@code broken} (null: none, a restore whose Thaw died), broken because {@code why} ({@code cause}), and
     * recovers: the new connection, resumed, with the scheduler's pages sent replaced by what QEMU holds and queued requests
     * dropped; empty if QEMU had completed the migration instead of pausing. A new connection that breaks during the
     * handshake is {@link ConnectionLost}; a QEMU that exits, a wrong answer or the deadline a failure.
     */
    Optional<C> recover(String why, Throwable cause, C broken) throws InterruptedException {
        QemuVm vm = context.vm();
        if (recoveries >= MAX_RECOVERIES) throw context.health().failure(why + " (after " + recoveries + " recoveries)", cause);
        long begun = System.nanoTime();
        long deadlineNanos = begun + RECOVERY_TIMEOUT.toNanos();
        if (broken != null) broken.close();
        recoveries++;
        log.warn("{}: {}; recovering (attempt {})", vm.name(), why, recoveries);
        context.progress().accept(why + "; recovering (QEMU's postcopy recovery)");
        Path socket = vm.runDir().resolve("recover-" + ProcessHandle.current().pid() + "-" + recoveries + ".sock");
        if (!migrateRecover(why, socket, deadlineNanos)) return Optional.empty();
        C next;
        try {
            next = connector.open(IncomingQemu.connect(socket, vm, Duration.ofSeconds(10)));
        } catch (IOException e) {
            throw new ConnectionLost("recovery: the new connection failed: " + e.getMessage());
        }
        try {
            long placed = handshake(next, deadlineNanos);
            context.events().add(RestoreEventLog.Type.RECOVERED, 0, placed, System.nanoTime() - context.startedNanos());
            log.info("{}: recovered in {} ms; QEMU holds {} pages", vm.name(), (System.nanoTime() - begun) / 1_000_000, placed);
            context.progress().accept(String.format("recovered in %.2f s; QEMU holds %d pages; serving the rest",
                    (System.nanoTime() - begun) / 1e9, placed));
            return Optional.of(next);
        } catch (IOException e) {
            next.close();
            throw new ConnectionLost("recovery: the new connection failed: " + e.getMessage());
        } catch (RuntimeException | InterruptedException e) {
            next.close();
            throw e;
        }
    }

    /**
     * {@code migrate-recover} on {@code socket} once QEMU has paused, retried until the deadline (QEMU sees the break at its
     * next read); false if QEMU had completed the migration instead.
     */
    private boolean migrateRecover(String why, Path socket, long deadlineNanos) throws InterruptedException {
        QemuVm vm = context.vm();
        ObjectNode args = JsonNodeFactory.instance.objectNode().put("uri", "unix:" + socket);
        while (true) {
            if (!vm.isAlive()) throw exited(why, null);
            try {
                // Out of band: a paused QEMU's main thread may be blocked on a missing page and answer nothing in band.
                // An attached QEMU (its Thaw died) has no negotiated QMP connection: its spare monitor has one.
                if (vm.qmp() != null) vm.qmp().executeOob("migrate-recover", args, Duration.ofSeconds(5));
                else SpareMonitor.executeOob(vm.runDir(), vm.name(), "migrate-recover", args, Duration.ofSeconds(5));
                return true;
            } catch (QmpException.CommandFailed e) {
                // Not paused yet (QEMU sees the break at its next read), or not any more.
                String status = migrationStatus();
                if ("completed".equals(status)) return false;
                if ("failed".equals(status) || "cancelled".equals(status)) {
                    throw context.health().failure(why + "; QEMU's incoming migration is " + status + ": it cannot be resumed", e);
                }
                if (System.nanoTime() > deadlineNanos) {
                    throw context.health().failure(why + "; expected QEMU in postcopy-paused within " + RECOVERY_TIMEOUT.toSeconds()
                            + " s, actual " + status + " (" + e.getMessage() + ")", e);
                }
                Thread.sleep(50);
            } catch (QmpException e) {
                // A QEMU that died meanwhile closed its monitor: say that, not the monitor's end.
                if (e instanceof QmpException.ConnectionLost && vm.awaitExit(Duration.ofSeconds(2))) throw exited(why, e);
                throw context.health().failure(why + "; migrate-recover failed: " + e.getMessage(), e);
            }
        }
    }

    /** The failure of a QEMU that exited when it should have paused. */
    private RestoreException exited(String why, Throwable cause) {
        // QEMU exits by itself (status 1) when the break came before it ran the guest; a signal's death is no such sign.
        String how = context.vm().exitCode().filter(status -> status > 128)
                .map(status -> "; QEMU was killed (signal " + (status - 128) + ")")
                .orElse("; QEMU exited instead of pausing (the break came before it ran the guest?)");
        return context.health().failure(why + how, cause);
    }

    /** RECV_BITMAP per block, the bitmaps to the scheduler, POSTCOPY_RESUME, RESUME_ACK; the pages QEMU holds. */
    private long handshake(C next, long deadlineNanos) throws IOException, InterruptedException {
        for (int b = 0; b < blocks.size(); b++) next.writer().recvBitmap(b);
        next.writer().flush();
        List<BitSet> received = new ArrayList<>(Collections.nCopies(blocks.size(), null));
        for (int i = 0; i < blocks.size(); i++) {
            ReturnPathMessage m = awaitHandshake(next, deadlineNanos, "a received bitmap (" + i + " of " + blocks.size() + ")");
            if (!(m instanceof ReturnPathMessage.ReceivedBitmap bitmap) || received.get(blockIndex.get(bitmap.blockName())) != null) {
                throw context.health().failure("recovery: expected one received bitmap per block, actual " + describe(m), null);
            }
            received.set(blockIndex.get(bitmap.blockName()), bitmap.received());
        }
        long placed = received.stream().mapToLong(BitSet::cardinality).sum();
        synchronized (context.scheduler()) {
            context.scheduler().resume(received);
        }
        context.requests().clear(); // QEMU asks again for every page it still waits for, after RESUME_ACK
        next.writer().postcopyResume();
        next.writer().flush();
        ReturnPathMessage ack = awaitHandshake(next, deadlineNanos, "RESUME_ACK");
        if (!(ack instanceof ReturnPathMessage.ResumeAck)) {
            throw context.health().failure("recovery: expected RESUME_ACK, actual " + describe(ack), null);
        }
        return placed;
    }

    private static String describe(ReturnPathMessage m) {
        return m instanceof ReturnPathMessage.ReceivedBitmap b ? "a second bitmap of " + b.blockName() : String.valueOf(m);
    }

    /** The next handshake answer on {@code c}; a broken connection is {@link ConnectionLost}, the deadline a failure. */
    private ReturnPathMessage awaitHandshake(C c, long deadlineNanos, String what) throws InterruptedException {
        while (true) {
            ReturnPathMessage m = c.nextHandshake(100);
            if (m != null) return m;
            if (c.protocolError()) throw context.health().failure(c.failure(), null);
            if (c.failure() != null) throw new ConnectionLost("recovery: " + c.failure() + " while waiting for " + what);
            if (!context.vm().isAlive()) throw context.health().failure("QEMU died while Thaw waited for " + what, null);
            if (System.nanoTime() > deadlineNanos) {
                throw context.health().failure("recovery: expected " + what + " within " + RECOVERY_TIMEOUT.toSeconds()
                        + " s, actual nothing", null);
            }
        }
    }

    /** QEMU's incoming migration status, or "unknown" if it does not answer in band within a second (a paused QEMU may not). */
    private String migrationStatus() {
        QemuVm vm = context.vm();
        try {
            if (vm.qmp() == null) vm.connectQmp(Duration.ofSeconds(3));
            // A completed QEMU (its MIGRATION event came) may be tearing its migration down, and a query-migrate then can make
            // QEMU 7.2 abort (IncomingQemu.awaitTeardown): wait for the teardown instead of asking.
            boolean completed = vm.qmp().events().snapshot().stream().filter(e -> e.is("MIGRATION")).reduce((a, b) -> b)
                    .map(e -> "completed".equals(e.data().path("status").asText())).orElse(false);
            if (completed) {
                IncomingQemu.awaitTeardown(vm, Duration.ofSeconds(10));
                return "completed";
            }
            return vm.qmp().execute("query-migrate", JsonNodeFactory.instance.objectNode(), Duration.ofSeconds(1))
                    .path("status").asText("unknown");
        } catch (QmpException e) {
            return "unknown (" + e.getMessage() + ")";
        }
    }
}
