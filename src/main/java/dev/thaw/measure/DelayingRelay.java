package dev.thaw.measure;

import dev.thaw.util.Closing;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketException;
import java.net.SocketTimeoutException;
import java.net.URI;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * A TCP relay on 127.0.0.1 that adds round-trip time in front of a server (this host's kernel has no {@code netem}): every
 * byte read from one side is written to the other {@code roundTrip / 2} after it was read, in both directions, so a request
 * and its response each take half of the added time. Bandwidth is not limited (the bytes of one read travel together, a
 * stream of reads is delayed as a whole, not throttled), nor is TCP's window: a model of latency only.
 *
 * <p>Each accepted connection opens one to the target (at most {@link #CONNECT_TIMEOUT}); two threads per direction, a
 * reader queueing what it read with its due time and a writer sending it then. When either side ends (end of stream, an
 * error, or {@code idle} without a byte read on a side), what was read before is still delivered at its time, then both
 * sockets close. {@link #close} ends every connection and the acceptor.
 */
public final class DelayingRelay implements AutoCloseable {
    static final Duration CONNECT_TIMEOUT = Duration.ofSeconds(5);
    private static final int BUFFER_BYTES = 64 << 10;

    private final ServerSocket server;
    private final InetSocketAddress target;
    private final long oneWayNanos;
    private final int idleMillis;
    private final List<Socket> open = new CopyOnWriteArrayList<>();
    private final Thread acceptor;
    private volatile boolean closed;

    /**
     * @param roundTrip the round-trip time added (each direction gets half of it); zero relays without delay
     * @param idle      how long a side may send nothing before the connection is closed
     */
    public DelayingRelay(InetSocketAddress target, Duration roundTrip, Duration idle) throws IOException {
        if (roundTrip.isNegative()) throw new IllegalArgumentException("added round-trip time: expected >= 0, actual " + roundTrip);
        if (idle.isNegative() || idle.isZero() || idle.toMillis() > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("idle timeout: expected a positive number of milliseconds, actual " + idle);
        }
        this.target = target;
        this.oneWayNanos = roundTrip.toNanos() / 2;
        this.idleMillis = (int) idle.toMillis();
        this.server = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        this.acceptor = Thread.ofPlatform().name("relay-accept-" + server.getLocalPort()).daemon().start(this::accept);
    }

    /** Where clients connect: 127.0.0.1 and this relay's port. */
    public InetSocketAddress address() {
        return new InetSocketAddress(server.getInetAddress(), server.getLocalPort());
    }

    /** An HTTP endpoint through this relay. */
    public URI httpEndpoint() {
        return URI.create("http://127.0.0.1:" + server.getLocalPort());
    }

    /** The round-trip time added. */
    public Duration addedRoundTrip() {
        return Duration.ofNanos(oneWayNanos * 2);
    }

    private void accept() {
        while (!closed) {
            Socket client;
            try {
                client = server.accept();
            } catch (IOException e) {
                return; // closed
            }
            Socket upstream = new Socket();
            try {
                upstream.connect(target, (int) CONNECT_TIMEOUT.toMillis());
                for (Socket s : List.of(client, upstream)) {
                    s.setTcpNoDelay(true);
                    s.setSoTimeout(idleMillis);
                }
            } catch (IOException e) {
                Closing.quietly(client);
                Closing.quietly(upstream);
                continue;
            }
            open.add(client);
            open.add(upstream);
            Pair pair = new Pair(client, upstream);
            String name = "relay-" + server.getLocalPort() + "-" + client.getPort();
            pair.start(client, upstream, name + "-up");
            pair.start(upstream, client, name + "-down");
        }
    }

    /** One connection's two sockets: closed together once either side ended. */
    private final class Pair {
        final Socket a;
        final Socket b;
        volatile boolean ended;

        Pair(Socket a, Socket b) {
            this.a = a;
            this.b = b;
        }

        void start(Socket from, Socket to, String name) {
            BlockingQueue<Chunk> queue = new LinkedBlockingQueue<>();
            Thread.ofPlatform().name(name + "-read").daemon().start(() -> read(from, queue));
            Thread.ofPlatform().name(name + "-write").daemon().start(() -> write(to, queue));
        }

        private void read(Socket from, BlockingQueue<Chunk> queue) {
            byte[] buffer = new byte[BUFFER_BYTES];
            try {
                InputStream in = from.getInputStream(); // not closed here: that would close the socket before the writer delivered
                for (int n; (n = in.read(buffer)) > 0; ) queue.add(new Chunk(System.nanoTime() + oneWayNanos, Arrays.copyOf(buffer, n)));
            } catch (SocketTimeoutException | SocketException e) {
                // idle too long, or closed by the other direction
            } catch (IOException e) {
                // a broken connection ends it like an end of stream
            }
            queue.add(new Chunk(System.nanoTime() + oneWayNanos, null));
        }

        private void write(Socket to, BlockingQueue<Chunk> queue) {
            try {
                OutputStream out = to.getOutputStream();
                while (!ended) {
                    Chunk c = queue.poll(1, TimeUnit.SECONDS); // bounded: rechecks whether the pair was closed meanwhile
                    if (c == null) continue;
                    long wait = c.dueNanos() - System.nanoTime();
                    if (wait > 0) TimeUnit.NANOSECONDS.sleep(wait);
                    if (c.bytes() == null) break;
                    out.write(c.bytes());
                    out.flush();
                }
            } catch (IOException | InterruptedException e) {
                // the other side is gone: close both
            } finally {
                ended = true;
                Closing.quietly(a);
                Closing.quietly(b);
                open.remove(a);
                open.remove(b);
            }
        }
    }

    /** Bytes read at one time and when they are due on the other side; null bytes: that side ended. */
    private record Chunk(long dueNanos, byte[] bytes) {}

    @Override
    public void close() {
        closed = true;
        try {
            server.close();
        } catch (IOException e) {
            throw new UncheckedIOException("closing the relay on port " + server.getLocalPort() + ": " + e.getMessage(), e);
        } finally {
            for (Socket s : open) Closing.quietly(s);
            open.clear();
            try {
                acceptor.join(Duration.ofSeconds(5));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }
}
