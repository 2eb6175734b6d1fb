package dev.thaw.cli;

import java.io.IOException;
import java.io.PrintStream;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * {@code thaw restore --server SOCKET ...} (or {@code THAW_SERVER=SOCKET}): the restore is sent to {@code thaw serve}
 * ({@link RestoreServer}) and its output printed here as it comes, before picocli or anything else of a restore is loaded in
 * this JVM (that is the point: nothing here touches the logging, JSON or picocli classes). The exit code is the restore's. This process's end (Ctrl-C) closes the connection, which ends
 * the restore there. A server that sends nothing, not even its heartbeat, for {@link #SILENCE_TIMEOUT} is taken for hung.
 */
final class ServeClient {
    static final String ENVIRONMENT = "THAW_SERVER";
    static final Duration SILENCE_TIMEOUT = ServeWire.HEARTBEAT.multipliedBy(6);

    private ServeClient() {}

    /** The server a {@code thaw} command line asks for: only a restore's, by its {@code --server} or the environment's. */
    static Optional<Path> serverOf(String[] args, Map<String, String> environment) {
        if (args.length == 0 || !args[0].equals("restore")) return Optional.empty();
        Optional<String> given = ServeWire.serverOption(List.of(args)).server();
        if (given.isPresent()) return given.map(Path::of);
        String fromEnvironment = environment.get(ENVIRONMENT);
        return fromEnvironment == null || fromEnvironment.isBlank() ? Optional.empty() : Optional.of(Path.of(fromEnvironment));
    }

    /** Sends {@code args} (without {@code --server}) to the server at {@code socket}; prints its output; returns its exit code. */
    static int run(Path socket, String[] args, PrintStream out, PrintStream err) {
        List<String> forwarded = ServeWire.serverOption(List.of(args)).others();
        ServeWire.Request request = new ServeWire.Request(forwarded, Path.of("").toAbsolutePath(),
                dev.thaw.util.ProcessStart.self(), Invocation.consoleIsTerminal());
        SocketChannel channel;
        try {
            channel = SocketChannel.open(UnixDomainSocketAddress.of(socket));
        } catch (IOException e) {
            err.println("thaw restore --server " + socket + ": expected a restore server there (thaw serve --socket " + socket
                    + "), actual " + e);
            return 1;
        }
        Silence silence = new Silence(channel);
        try (channel) {
            var encoded = ServeWire.encode(request);
            while (encoded.hasRemaining()) channel.write(encoded);
            ServeWire.FrameReader frames = new ServeWire.FrameReader(channel);
            while (true) {
                Optional<ServeWire.Frame> f = frames.next();
                silence.heard();
                if (f.isEmpty()) {
                    err.println("thaw restore --server " + socket + ": expected the restore's exit code, actual the end of the connection"
                            + " after " + frames.offset() + " bytes (the server ended)");
                    return 1;
                }
                switch (f.get().kind()) {
                    case OUT -> silence.whileWritingHere(() -> {
                        out.write(f.get().payload(), 0, f.get().payload().length);
                        out.flush();
                    });
                    case ERR -> silence.whileWritingHere(() -> {
                        err.write(f.get().payload(), 0, f.get().payload().length);
                        err.flush();
                    });
                    case EXIT -> {
                        return f.get().exitCode();
                    }
                    case HEARTBEAT -> { }
                    case INVALID -> throw new IllegalStateException("ServeWire.Kind.of never returns INVALID");
                }
            }
        } catch (IOException e) {
            err.println("thaw restore --server " + socket + ": " + (silence.timedOut()
                    ? "expected a frame at least every " + ServeWire.HEARTBEAT.toSeconds() + " s, actual none for "
                    + SILENCE_TIMEOUT.toSeconds() + " s (the server is hung)" : e.getMessage() == null ? e.toString() : e.getMessage()));
            return 1;
        } finally {
            silence.stop();
        }
    }

    /**
     * Closes the connection when the server has been silent too long: the blocked read then fails. Only the server's silence
     * counts: time spent writing here (a pipe nobody reads yet, a suspended terminal) does not.
     */
    private static final class Silence {
        private final SocketChannel channel;
        private final Thread watchdog;
        private volatile long lastHeardNanos = System.nanoTime();
        private volatile boolean timedOut;

        Silence(SocketChannel channel) {
            this.channel = channel;
            this.watchdog = Thread.ofPlatform().daemon().name("serve-client-watchdog").start(this::watch);
        }

        private volatile boolean writingHere;

        void heard() {
            lastHeardNanos = System.nanoTime();
        }

        void whileWritingHere(Runnable write) {
            writingHere = true;
            try {
                write.run();
            } finally {
                writingHere = false;
                heard();
            }
        }

        boolean timedOut() {
            return timedOut;
        }

        void stop() {
            watchdog.interrupt();
        }

        private void watch() {
            try {
                while (writingHere || System.nanoTime() - lastHeardNanos < SILENCE_TIMEOUT.toNanos()) Thread.sleep(1000);
                timedOut = true;
                channel.close();
            } catch (InterruptedException | IOException e) {
                // stopped: the exchange ended
            }
        }
    }
}
