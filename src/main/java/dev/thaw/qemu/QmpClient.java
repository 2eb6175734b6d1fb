package dev.thaw.qemu;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Iterator;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BooleanSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A client of QEMU's machine protocol (QMP) over a unix socket.
 *
 * <p>One reader thread reads every message: answers complete the call with the same {@code id},
 * events go to {@link #events()}. Writes go straight to the channel (not through a stream adapter
 * that would share a lock with the blocked reader). Every call has a timeout; when the connection
 * ends, every pending and later call fails at once with {@link QmpException.ConnectionLost}.
 * Out-of-band execution is negotiated whenever QEMU offers it, so that {@link #executeOob} works
 * while the main loop is blocked (for example on a missing postcopy page).
 */
public final class QmpClient implements AutoCloseable {
    public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(30);
    private static final Logger log = LoggerFactory.getLogger(QmpClient.class);
    static final ObjectMapper JSON = new ObjectMapper();
    private static final int MAX_MESSAGE_BYTES = 16 << 20;

    private final String peer;
    private final SocketChannel channel;
    private final Object writeLock = new Object();
    private final AtomicLong nextId = new AtomicLong(1);
    private final Map<Long, Pending> pending = new ConcurrentHashMap<>();
    private final CompletableFuture<JsonNode> greeting = new CompletableFuture<>();
    private final Journal<QmpEvent> events = new Journal<>(10_000);
    private final Thread reader;
    private volatile String closedReason;
    private volatile boolean oob;
    private volatile JsonNode greetingMessage;

    private record Pending(String command, CompletableFuture<JsonNode> answer) {}

    private QmpClient(String peer, SocketChannel channel) {
        this.peer = peer;
        this.channel = channel;
        this.reader = Thread.ofPlatform().daemon().name("qmp-reader-" + peer).unstarted(this::readLoop);
    }

    /**
     * Connects to a QMP socket that QEMU may still be creating, retrying until {@code timeout};
     * gives up at once when {@code peerAlive} turns false. Then reads the greeting and negotiates
     * capabilities (out-of-band execution when offered).
     */
    public static QmpClient connect(Path socket, String peer, Duration timeout, BooleanSupplier peerAlive) {
        return connect(socket, peer, timeout, Duration.ofSeconds(5), peerAlive);
    }

    /**
     * The same, waiting for QEMU's greeting at least {@code greetingTimeout} once connected: a QEMU whose socket accepts but
     * which does not speak (SIGSTOPped, a host stall) is slow, not dead, and a caller that owns the guest waits for it as long
     * as for any of its answers. A socket nobody listens on still fails within {@code timeout}.
     */
    public static QmpClient connect(Path socket, String peer, Duration timeout, Duration greetingTimeout, BooleanSupplier peerAlive) {
        long deadline = System.nanoTime() + timeout.toNanos();
        SocketChannel channel = null;
        IOException last = null;
        while (channel == null) {
            if (!peerAlive.getAsBoolean()) {
                throw new QmpException.ConnectionLost(peer, "connect", "the process exited before its QMP socket "
                        + socket + " accepted a connection", last);
            }
            try {
                SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX);
                try {
                    ch.connect(UnixDomainSocketAddress.of(socket));
                    channel = ch;
                } catch (IOException e) {
                    ch.close();
                    throw e;
                }
            } catch (IOException e) {
                last = e;
                if (System.nanoTime() > deadline) {
                    throw new QmpException.Timeout(peer, "connect to " + socket, timeout);
                }
                sleepQuietly(20);
            }
        }
        QmpClient client = new QmpClient(peer, channel);
        client.reader.start();
        try {
            client.handshake(Duration.ofNanos(Math.max(deadline - System.nanoTime(), greetingTimeout.toNanos())));
        } catch (RuntimeException e) {
            client.close();
            throw e;
        }
        return client;
    }

    private void handshake(Duration timeout) {
        JsonNode hello = await("greeting", greeting, timeout);
        boolean offersOob = QmpMessage.offersOob(peer, hello);
        greetingMessage = hello;
        ObjectNode args = JSON.createObjectNode();
        if (offersOob) {
            args.putArray("enable").add("oob");
        }
        execute("qmp_capabilities", args, timeout);
        oob = offersOob;
    }

    /** The peer name used in messages and thread names. */
    public String peer() {
        return peer;
    }

    /** QEMU's version as announced in its greeting. */
    public String qemuVersionText() {
        JsonNode v = greetingMessage.path("QMP").path("version").path("qemu");
        return v.path("major").asInt() + "." + v.path("minor").asInt() + "." + v.path("micro").asInt();
    }

    public boolean oobEnabled() {
        return oob;
    }

    /** Every asynchronous event QEMU sent on this connection. */
    public Journal<QmpEvent> events() {
        return events;
    }

    public boolean isOpen() {
        return closedReason == null;
    }

    public JsonNode execute(String command) {
        return execute(command, null, DEFAULT_TIMEOUT);
    }

    public JsonNode execute(String command, JsonNode arguments) {
        return execute(command, arguments, DEFAULT_TIMEOUT);
    }

    /** Runs a command and returns its {@code return} value; QEMU's error answer is thrown. */
    public JsonNode execute(String command, JsonNode arguments, Duration timeout) {
        return call("execute", command, arguments, timeout);
    }

    /** Runs a command out of band: QEMU answers even while its main loop is busy or blocked. */
    public JsonNode executeOob(String command, JsonNode arguments, Duration timeout) {
        if (!oob) {
            throw new QmpException.ProtocolViolation(peer, command, "out-of-band execution was not offered by this QEMU");
        }
        return call("exec-oob", command, arguments, timeout);
    }

    private JsonNode call(String verb, String command, JsonNode arguments, Duration timeout) {
        long id = nextId.getAndIncrement();
        ObjectNode message = JSON.createObjectNode();
        message.put(verb, command);
        if (arguments != null && !arguments.isEmpty()) {
            message.set("arguments", arguments);
        }
        message.put("id", id);
        Pending call = new Pending(command, new CompletableFuture<>());
        pending.put(id, call);
        try {
            String reason = closedReason;
            if (reason != null) {
                throw new QmpException.ConnectionLost(peer, command, reason, null);
            }
            byte[] bytes = (message + "\n").getBytes(StandardCharsets.UTF_8);
            log.debug("{} <- {}", peer, message);
            synchronized (writeLock) {
                ByteBuffer buffer = ByteBuffer.wrap(bytes);
                while (buffer.hasRemaining()) {
                    channel.write(buffer);
                }
            }
            return QmpMessage.value(peer, command, await(command, call.answer(), timeout));
        } catch (IOException e) {
            throw new QmpException.ConnectionLost(peer, command, "write failed: " + e.getMessage(), e);
        } finally {
            pending.remove(id);
        }
    }

    private JsonNode await(String command, CompletableFuture<JsonNode> future, Duration timeout) {
        try {
            return future.get(timeout.toNanos(), TimeUnit.NANOSECONDS);
        } catch (TimeoutException e) {
            throw new QmpException.Timeout(peer, command, timeout);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof QmpException q) {
                // Re-thrown with this command's name: the reader does not know which call it failed.
                throw new QmpException.ConnectionLost(peer, command, q.getMessage(), q);
            }
            throw new QmpException.ConnectionLost(peer, command, String.valueOf(e.getCause()), e.getCause());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new QmpException.ConnectionLost(peer, command, "interrupted while waiting for the answer", e);
        }
    }

    private void readLoop() {
        ByteBuffer buffer = ByteBuffer.allocate(64 << 10);
        ByteArrayOutputStream line = new ByteArrayOutputStream();
        String reason = "QEMU closed the QMP connection";
        try {
            while (true) {
                buffer.clear();
                int n = channel.read(buffer);
                if (n < 0) break;
                byte[] data = buffer.array();
                for (int i = 0; i < n; i++) {
                    byte b = data[i];
                    if (b == '\n') {
                        dispatch(line.toString(StandardCharsets.UTF_8).strip());
                        line.reset();
                    } else {
                        line.write(b);
                        if (line.size() > MAX_MESSAGE_BYTES) {
                            throw new IOException("a QMP message exceeds " + MAX_MESSAGE_BYTES + " bytes");
                        }
                    }
                }
            }
        } catch (IOException e) {
            reason = closedReason != null ? closedReason : "QMP read failed: " + e.getMessage();
        } catch (RuntimeException e) {
            reason = "QMP reader failed: " + e;
            log.warn("{}: {}", peer, reason, e);
        }
        shutDown(reason);
    }

    private void dispatch(String text) {
        if (text.isEmpty()) return;
        log.debug("{} -> {}", peer, text);
        switch (QmpMessage.parse(text, System.nanoTime())) {
            case QmpMessage.Greeting g -> greeting.complete(g.message());
            case QmpMessage.Event e -> events.append(e.event());
            case QmpMessage.Answer a -> {
                Pending call = pending.get(a.id());
                if (call != null) call.answer().complete(a.message());
            }
            case QmpMessage.Unusable u -> log.warn("{}: ignoring a QMP message ({}): {}", peer, u.why(), text);
        }
    }

    private void shutDown(String reason) {
        if (closedReason == null) {
            closedReason = reason;
        }
        QmpException lost = new QmpException.ConnectionLost(peer, "?", closedReason, null);
        greeting.completeExceptionally(lost);
        for (Iterator<Pending> it = pending.values().iterator(); it.hasNext(); ) {
            it.next().answer().completeExceptionally(lost);
        }
        events.close(closedReason);
    }

    @Override
    public void close() {
        if (closedReason == null) {
            closedReason = "closed by Thaw";
        }
        try {
            channel.close();
        } catch (IOException e) {
            // closing anyway
        }
        shutDown(closedReason);
        if (Thread.currentThread() != reader) {
            try {
                reader.join(2000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    // ---- Typed commands -------------------------------------------------------------------

    /** {@code query-status}. */
    public record RunState(boolean running, String status) {
        /** From {@code query-status}'s return value (a missing field reads as not running, status ""). */
        public static RunState of(JsonNode r) {
            return new RunState(r.path("running").asBoolean(), r.path("status").asText());
        }
    }

    public RunState queryStatus() {
        return queryStatus(DEFAULT_TIMEOUT);
    }

    /** {@code query-status}, waiting up to {@code timeout} (longer for a caller that waits out a slow QEMU). */
    public RunState queryStatus(Duration timeout) {
        return RunState.of(execute("query-status", null, timeout));
    }

    public void stop() {
        stop(DEFAULT_TIMEOUT);
    }

    public void stop(Duration timeout) {
        execute("stop", null, timeout);
    }

    public void cont() {
        cont(DEFAULT_TIMEOUT);
    }

    public void cont(Duration timeout) {
        execute("cont", null, timeout);
    }

    /** Asks QEMU to exit; the answer may race the exit, so a lost connection counts as success. */
    public void quit() {
        try {
            execute("quit", null, Duration.ofSeconds(10));
        } catch (QmpException.ConnectionLost e) {
            // QEMU closed the socket while quitting: that is what was asked.
        }
    }

    public void migrateSetCapabilities(Map<String, Boolean> capabilities) {
        migrateSetCapabilities(capabilities, DEFAULT_TIMEOUT);
    }

    public void migrateSetCapabilities(Map<String, Boolean> capabilities, Duration timeout) {
        ObjectNode args = JSON.createObjectNode();
        var list = args.putArray("capabilities");
        capabilities.forEach((name, state) -> list.addObject().put("capability", name).put("state", state));
        execute("migrate-set-capabilities", args, timeout);
    }

    public void migrateSetParameters(Map<String, ?> parameters) {
        migrateSetParameters(parameters, DEFAULT_TIMEOUT);
    }

    public void migrateSetParameters(Map<String, ?> parameters, Duration timeout) {
        execute("migrate-set-parameters", JSON.valueToTree(parameters), timeout);
    }

    public void migrate(String uri) {
        migrate(uri, DEFAULT_TIMEOUT);
    }

    public void migrate(String uri, Duration timeout) {
        execute("migrate", JSON.createObjectNode().put("uri", uri), timeout);
    }

    public void migrateIncoming(String uri) {
        execute("migrate-incoming", JSON.createObjectNode().put("uri", uri));
    }

    /** {@code query-migrate}: {@code status} is empty before any migration. */
    public record MigrationInfo(String status, JsonNode raw) {
        /** From {@code query-migrate}'s return value. */
        public static MigrationInfo of(JsonNode r) {
            return new MigrationInfo(r.path("status").asText(""), r);
        }

        public boolean completed() {
            return "completed".equals(status);
        }

        public boolean failed() {
            return "failed".equals(status) || "cancelled".equals(status);
        }

        /** QEMU's description of a failure, or "". */
        public String errorDescription() {
            return raw.path("error-desc").asText("");
        }
    }

    public MigrationInfo queryMigrate() {
        return queryMigrate(DEFAULT_TIMEOUT);
    }

    public MigrationInfo queryMigrate(Duration timeout) {
        return MigrationInfo.of(execute("query-migrate", null, timeout));
    }

    /**
     * Polls {@code query-migrate} until the migration completed, failed or was cancelled, and
     * returns that final state; throws {@link QmpException.Timeout} at the deadline.
     */
    private MigrationInfo awaitMigrationEnd(Duration timeout, Duration callTimeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            MigrationInfo info = queryMigrate(callTimeout);
            if (info.completed() || info.failed()) return info;
            if (System.nanoTime() > deadline) {
                throw new QmpException.Timeout(peer, "query-migrate (status " + info.status() + ")", timeout);
            }
            try {
                Thread.sleep(5);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new QmpException.ConnectionLost(peer, "query-migrate", "interrupted while waiting for the migration", e);
            }
        }
    }

    /**
     * Waits until the migration ends, on either side of it, and requires it {@code completed}: the one wait of every save and
     * restore. Fails with {@link QmpException.Timeout} (the status so far) or {@link QmpException.MigrationFailed}.
     */
    public MigrationInfo awaitMigrationCompleted(Duration timeout) {
        return awaitMigrationCompleted(timeout, DEFAULT_TIMEOUT);
    }

    /** As {@link #awaitMigrationCompleted(Duration)}, each {@code query-migrate} waiting up to {@code callTimeout} for its answer. */
    public MigrationInfo awaitMigrationCompleted(Duration timeout, Duration callTimeout) {
        MigrationInfo info = awaitMigrationEnd(timeout, callTimeout);
        if (!info.completed()) throw new QmpException.MigrationFailed(peer, info.status(), info.errorDescription());
        return info;
    }

    public String humanMonitorCommand(String commandLine) {
        return execute("human-monitor-command", JSON.createObjectNode().put("command-line", commandLine)).asText();
    }

    private static void sleepQuietly(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new QmpException.ConnectionLost("?", "connect", "interrupted", e);
        }
    }
}
