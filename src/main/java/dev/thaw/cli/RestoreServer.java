package dev.thaw.cli;

import dev.thaw.qemu.QemuVm;
import dev.thaw.util.Closing;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import picocli.CommandLine;

/**
 * {@code thaw serve}: {@code thaw restore} run in this JVM for clients on a unix socket ({@link ServeClient}), so that a
 * restore does not pay a JVM's start, its class loading and its cold code before QEMU starts (0.6-0.9 s on the project's
 * host, more than any difference between restore methods; docs/benchmarks.md). One thread per request runs the command as
 * {@code thaw restore} would, with the client's working directory and start ({@link Invocation}); its output goes back in
 * frames ({@link ServeWire}). A client that goes (its Ctrl-C, its death) ends its request as its own Ctrl-C would end a
 * restore in its own process: the QEMUs the request launched are killed and its thread is interrupted. Closing the server
 * ends every request that way and removes the socket.
 */
final class RestoreServer implements AutoCloseable {
    /** A client sends its whole request at once; one that does not within this is dropped. */
    static final Duration REQUEST_TIMEOUT = Duration.ofSeconds(10);
    /** How long a request whose client went may take to end by its QEMUs' deaths before its thread is interrupted. */
    static final Duration INTERRUPT_GRACE = Duration.ofSeconds(2);
    private static final String SERVER_STOPPING = "the server is stopping";
    /** Output queued for a client beyond which more is dropped (about 15 minutes of a guest console's lines). */
    static final long OUTPUT_BUDGET_BYTES = 4L << 20;
    /** How long a request's end waits for its client to take the last frames. */
    static final Duration FINISH_TIMEOUT = Duration.ofSeconds(30);
    /** How long closing waits for the requests it ended. */
    private static final Duration CLOSE_TIMEOUT = Duration.ofSeconds(30);
    private static final org.slf4j.Logger log = org.slf4j.LoggerFactory.getLogger(RestoreServer.class);

    private final Path socket;
    private final ServerSocketChannel listener;
    private final Semaphore slots;
    private final int maxRequests;
    private final PrintStream events;
    private final ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor(
            Thread.ofPlatform().daemon().name("serve-timer").factory());
    private final Set<Request> running = ConcurrentHashMap.newKeySet();
    private final AtomicInteger requestCount = new AtomicInteger();
    private final Thread acceptor;
    private volatile boolean closed;

    private RestoreServer(Path socket, ServerSocketChannel listener, int maxRequests, PrintStream events) {
        this.socket = socket;
        this.listener = listener;
        this.maxRequests = maxRequests;
        this.slots = new Semaphore(maxRequests);
        this.events = events;
        this.acceptor = Thread.ofPlatform().name("serve-accept").start(this::accept);
    }

    /**
     * Listens on {@code socket} (its directory created owner-only; the socket owner-only): a stale socket no server answers on is
     * replaced, a live one is an error.
     *
     * @param events one line per request (what ran, its exit, its time)
     */
    static RestoreServer start(Path socket, int maxRequests, PrintStream events) throws IOException {
        if (maxRequests < 1) throw new IllegalArgumentException("--max-restores: expected at least 1, actual " + maxRequests);
        Path dir = socket.toAbsolutePath().getParent();
        if (!Files.isDirectory(dir)) {
            Files.createDirectories(dir, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
        }
        if (Files.exists(socket, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
            var attributes = Files.readAttributes(socket, java.nio.file.attribute.BasicFileAttributes.class,
                    java.nio.file.LinkOption.NOFOLLOW_LINKS);
            if (!attributes.isOther()) {
                throw new IOException("thaw serve: expected a socket or nothing at " + socket + ", actual a "
                        + (attributes.isDirectory() ? "directory" : attributes.isSymbolicLink() ? "symbolic link" : "regular file")
                        + " (give another --socket)");
            }
            try (SocketChannel probe = SocketChannel.open(UnixDomainSocketAddress.of(socket))) {
                throw new IOException("thaw serve: expected no server listening on " + socket + ", actual one that answers (pid unknown;"
                        + " stop it, or give another --socket)");
            } catch (IOException e) {
                if (e.getMessage() != null && e.getMessage().startsWith("thaw serve:")) throw e;
                Files.delete(socket); // nobody listens: a server that died left it
            }
        }
        // Bound in a directory only this user can enter, made owner-only there, then renamed into place: in a shared directory
        // the socket is never reachable with the umask's permissions.
        Path privateDir = Files.createTempDirectory(dir, ".thaw-serve-",
                PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
        Path bound = privateDir.resolve("s");
        ServerSocketChannel listener = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        try {
            listener.bind(UnixDomainSocketAddress.of(bound));
            Files.setPosixFilePermissions(bound, PosixFilePermissions.fromString("rw-------"));
            Files.move(bound, socket, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException | RuntimeException e) {
            listener.close();
            Files.deleteIfExists(bound);
            throw e;
        } finally {
            Files.deleteIfExists(privateDir);
        }
        return new RestoreServer(socket, listener, maxRequests, events);
    }

    Path socket() {
        return socket;
    }

    /** Requests being served now. */
    int runningCount() {
        return running.size();
    }

    private void accept() {
        while (!closed) {
            SocketChannel client;
            try {
                client = listener.accept();
            } catch (IOException e) {
                if (!closed) log.warn("thaw serve: accepting on {} failed: {}", socket, e.toString());
                return;
            }
            int number = requestCount.incrementAndGet();
            Thread.ofPlatform().name("serve-request-" + number).start(() -> serve(client, number));
        }
    }

    /** One client: its request read, checked, run, its exit code sent; the connection closed in every case. */
    private void serve(SocketChannel channel, int number) {
        try {
            if (!closed) serveOpen(channel, number);
        } catch (java.util.concurrent.RejectedExecutionException e) {
            // The server closed (its timer with it) while this connection was being taken: it ends unanswered.
        } finally {
            Closing.quietly(channel);
        }
    }

    private void serveOpen(SocketChannel channel, int number) {
        Output output = new Output(channel, "serve-write-" + number);
        // Ends a read that waits for a request that does not come: the read sees the end of the stream, and the refusal says why.
        java.util.concurrent.atomic.AtomicBoolean timedOut = new java.util.concurrent.atomic.AtomicBoolean();
        ScheduledFuture<?> deadline = timer.schedule(() -> {
            timedOut.set(true); // before the shutdown: a read that ends by it sees this
            try {
                channel.shutdownInput();
            } catch (IOException e) {
                Closing.quietly(channel);
            }
        }, REQUEST_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
        ServeWire.Request request;
        String late = "expected a whole request within " + REQUEST_TIMEOUT.toSeconds() + " s, actual ";
        try {
            request = ServeWire.readRequest(channel);
        } catch (IOException e) {
            deadline.cancel(false);
            String why = timedOut.get() ? late + "none" : e.getMessage();
            refuse(output, number, why, 2, "thaw serve: " + why);
            return;
        }
        deadline.cancel(false);
        if (timedOut.get()) { // the deadline shut the input as the request arrived: it cannot watch its client
            refuse(output, number, "late", 2, "thaw serve: " + late + "one that took longer");
            return;
        }
        // How long the client took to reach the server: its JVM's start, or a lighter client's (the launcher's Perl one).
        String reached = request.commandStart().map(st -> String.format(", received %.3f s after its client started",
                java.time.Duration.between(st, java.time.Instant.now()).toNanos() / 1e9)).orElse("");
        List<String> args = ServeWire.serverOption(request.args()).others();
        if (args.isEmpty() || !args.getFirst().equals("restore")) {
            refuse(output, number, args.isEmpty() ? "no command" : args.getFirst(), 2, "thaw serve: expected a restore (thaw serve runs restore only), actual "
                    + (args.isEmpty() ? "no command" : "'" + args.getFirst() + "'"));
            return;
        }
        if (closed || !slots.tryAcquire()) {
            refuse(output, number, "busy", 1, "thaw serve: " + (closed ? "expected a running server, actual one closing"
                    : "expected fewer than " + maxRequests + " restores at once, actual " + maxRequests + " running (--max-restores)"));
            return;
        }
        Request r = new Request(Thread.currentThread());
        long started = System.nanoTime();
        int exit;
        ScheduledFuture<?> heartbeat = null;
        Thread watcher = null;
        try {
            running.add(r);
            heartbeat = timer.scheduleAtFixedRate(output::heartbeat, ServeWire.HEARTBEAT.toMillis(), ServeWire.HEARTBEAT.toMillis(),
                    TimeUnit.MILLISECONDS);
            watcher = Thread.ofVirtual().name("serve-watch-" + number).start(() -> watch(channel, r));
            PrintStream out = new PrintStream(output.stream(ServeWire.Kind.OUT), true, StandardCharsets.UTF_8);
            PrintStream err = new PrintStream(output.stream(ServeWire.Kind.ERR), true, StandardCharsets.UTF_8);
            Invocation invocation = new Invocation(out, err, request.workingDirectory(), request.commandStart(), request.terminal());
            exit = QemuVm.tracking(r::launched, () -> runRestore(args.toArray(String[]::new), invocation));
            out.flush();
            err.flush();
        } catch (Exception | Error e) {
            exit = 1;
            output.write(errFrame("thaw serve: the restore failed: " + e));
        } finally {
            if (heartbeat != null) heartbeat.cancel(false);
            running.remove(r);
            slots.release();
        }
        java.util.Optional<String> ended = r.endedBecause();
        if (ended.isPresent() && ended.get().equals(SERVER_STOPPING)) {
            // What the restore printed may look like a guest that stopped by itself: say who ended it, and fail.
            output.write(errFrame("thaw serve: " + SERVER_STOPPING + ": this restore was ended, its QEMU killed"));
            exit = 1;
        }
        // The log's line before the exit frame: a client that has its exit code finds the line written.
        events.printf("request %d: %s -> exit %d after %.2f s%s%s%n", number, String.join(" ", args), exit, (System.nanoTime() - started) / 1e9,
                reached, ended.map(why -> " (ended: " + why + ")").orElse(""));
        Thread.interrupted(); // a cancel's interrupt that came as the command returned must not cut the wait below
        output.finish(exit);
        Closing.quietly(channel);
        if (watcher != null) watcher.interrupt();
    }

    /** {@code thaw restore ARGS} in this JVM, as {@code invocation} asked it: picocli's messages and the command's output there. */
    static int runRestore(String[] argv, Invocation invocation) {
        CommandLine commandLine = ThawCli.commandLine(argv);
        commandLine.setOut(new PrintWriter(invocation.out(), true));
        commandLine.setErr(new PrintWriter(invocation.err(), true));
        ((RestoreCommand) commandLine.getSubcommands().get("restore").getCommand()).invocation = invocation;
        return commandLine.execute(argv);
    }

    /** Waits for the client's end of the connection (it sends nothing after its request): then the request is ended. */
    private void watch(SocketChannel channel, Request r) {
        ByteBuffer sink = ByteBuffer.allocate(256);
        try {
            while (channel.read(sink.clear()) >= 0) {
                // A client sends nothing more; whatever it sends is ignored.
            }
        } catch (ClosedChannelException e) {
            return; // the request ended and closed it
        } catch (IOException e) {
            // The connection broke: the client is gone as surely as at its end.
        }
        if (running.contains(r)) cancel(r, "its client went");
    }

    /**
     * As a Ctrl-C of the restore's own process: its QEMUs killed (the restore then fails on its dead peer, or its attached phase
     * ends), and the thread interrupted after {@link #INTERRUPT_GRACE} if it is still at work (a wait that no QEMU ends: an
     * image still opening, a fetch).
     */
    private void cancel(Request r, String why) {
        r.cancel(why);
        try {
            timer.schedule(() -> {
                if (running.contains(r)) r.thread().interrupt();
            }, INTERRUPT_GRACE.toMillis(), TimeUnit.MILLISECONDS);
        } catch (java.util.concurrent.RejectedExecutionException e) {
            r.thread().interrupt(); // the server closed its timer: no grace left
        }
    }

    /**
     * Logs the refusal ({@code logged}: why, in the server's words), tells the client why and ends the connection. What it sent
     * and this server did not read is read first: closing a unix socket with unread bytes resets the connection, and the
     * client could then lose the refusal before it reads it. The log's line goes first, as for a request that ran.
     */
    private void refuse(Output output, int number, String logged, int exit, String message) {
        events.printf("request %d: refused: %s%n", number, logged);
        output.write(errFrame(message));
        output.finish(exit);
        SocketChannel channel = output.channel;
        ScheduledFuture<?> bound = timer.schedule(() -> Closing.quietly(channel), REQUEST_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
        try {
            channel.shutdownOutput();
            ByteBuffer sink = ByteBuffer.allocate(4096);
            while (channel.read(sink.clear()) >= 0) {
                // until the client closes, having read the refusal
            }
        } catch (IOException e) {
            // gone already, or the bound closed it
        } finally {
            bound.cancel(false);
            Closing.quietly(channel);
        }
    }

    /** A line of error output for the client. */
    private static ByteBuffer errFrame(String line) {
        byte[] b = (line + "\n").getBytes(StandardCharsets.UTF_8);
        return ServeWire.frame(ServeWire.Kind.ERR, b, 0, b.length);
    }

    /** Stops accepting, ends every running request (its QEMUs killed, its thread interrupted), waits for them, removes the socket. */
    @Override
    public void close() {
        if (closed) return;
        closed = true;
        Closing.quietly(listener);
        try {
            Files.deleteIfExists(socket);
        } catch (IOException e) {
            log.warn("thaw serve: cannot remove {}: {}", socket, e.toString());
        }
        List<Request> ending = List.copyOf(running);
        for (Request r : ending) cancel(r, SERVER_STOPPING);
        long deadline = System.nanoTime() + CLOSE_TIMEOUT.toNanos();
        try {
            for (Request r : ending) r.thread().join(Duration.ofNanos(Math.max(1, deadline - System.nanoTime())));
            acceptor.join(Duration.ofSeconds(5));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        timer.shutdownNow();
    }

    /** A request being served: its thread and the QEMUs it launched or attached to. */
    private static final class Request {
        private final Thread thread;
        private final List<QemuVm> qemus = new ArrayList<>();
        private String endedBecause;

        Request(Thread thread) {
            this.thread = thread;
        }

        Thread thread() {
            return thread;
        }

        /** Why the server ended it before it ended by itself, if it did. */
        synchronized java.util.Optional<String> endedBecause() {
            return java.util.Optional.ofNullable(endedBecause);
        }

        /** A QEMU of this request; one launched after its client went is killed at once. */
        void launched(QemuVm vm) {
            synchronized (this) {
                qemus.add(vm);
                if (endedBecause == null) return;
            }
            vm.kill();
        }

        void cancel(String why) {
            List<QemuVm> killing;
            synchronized (this) {
                if (endedBecause == null) endedBecause = why;
                killing = List.copyOf(qemus);
            }
            for (QemuVm vm : killing) vm.kill();
        }
    }

    /**
     * The connection's writing side: frames from the command's streams and the heartbeat are queued and written by a thread of
     * its own, so a client that stops reading (suspended, an unread pipe) never holds up its restore, whose progress and
     * console lines come from the restore's own threads: beyond {@link #OUTPUT_BUDGET_BYTES} queued, output is dropped and the
     * client told how much. The exit frame always goes, last.
     */
    static final class Output {
        private static final ByteBuffer END = ByteBuffer.allocate(0);
        private final SocketChannel channel;
        private final java.util.concurrent.LinkedBlockingQueue<ByteBuffer> queue = new java.util.concurrent.LinkedBlockingQueue<>();
        private final Thread writer;
        private long queuedBytes; // guarded by this
        private long droppedBytes; // guarded by this
        private boolean finished; // guarded by this
        private volatile boolean broken;

        Output(SocketChannel channel, String threadName) {
            this.channel = channel;
            this.writer = Thread.ofVirtual().name(threadName).start(this::drain);
        }

        private void drain() {
            try {
                for (ByteBuffer frame = queue.take(); frame != END; frame = queue.take()) {
                    int size = frame.remaining();
                    if (!broken) {
                        try {
                            while (frame.hasRemaining()) channel.write(frame);
                        } catch (IOException e) {
                            broken = true; // the client is gone: the watcher ends the request
                        }
                    }
                    synchronized (this) {
                        queuedBytes -= size;
                    }
                }
            } catch (InterruptedException e) {
                // not interrupted by this class: nothing more to write either way
            }
        }

        /** Queues a frame; never blocks. Dropped (and counted) beyond the budget, or once the client is gone. */
        synchronized void write(ByteBuffer frame) {
            if (finished || broken) return;
            if (queuedBytes + frame.remaining() > OUTPUT_BUDGET_BYTES) {
                droppedBytes += frame.remaining();
                return;
            }
            sayDropped();
            queuedBytes += frame.remaining();
            queue.add(frame);
        }

        /** A heartbeat when nothing else waits to go (any frame tells the client that the server lives). */
        synchronized void heartbeat() {
            if (queue.isEmpty()) write(ServeWire.frame(ServeWire.Kind.HEARTBEAT, new byte[0], 0, 0));
        }

        private void sayDropped() {
            if (droppedBytes == 0) return;
            ByteBuffer note = errFrame("[thaw serve: " + droppedBytes + " bytes of output dropped: the client did not read them]");
            droppedBytes = 0;
            queuedBytes += note.remaining();
            queue.add(note);
        }

        /** The exit frame after everything queued, then waits for the writer (a client that reads nothing: at most {@link #FINISH_TIMEOUT}). */
        void finish(int exit) {
            synchronized (this) {
                if (finished) return;
                finished = true;
                sayDropped();
                queue.add(ServeWire.exitFrame(exit));
                queue.add(END);
            }
            try {
                if (!writer.join(FINISH_TIMEOUT)) Closing.quietly(channel); // the blocked write fails, the writer ends
                writer.join(FINISH_TIMEOUT);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }

        OutputStream stream(ServeWire.Kind kind) {
            return new OutputStream() {
                @Override
                public void write(int b) {
                    write(new byte[] {(byte) b}, 0, 1);
                }

                @Override
                public void write(byte[] b, int off, int len) {
                    for (int at = off; at < off + len; at += ServeWire.MAX_FRAME_BYTES) {
                        Output.this.write(ServeWire.frame(kind, b, at, Math.min(ServeWire.MAX_FRAME_BYTES, off + len - at)));
                    }
                }
            };
        }
    }
}
