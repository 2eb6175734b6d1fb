package dev.thaw.measure;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.time.Duration;
import java.util.Arrays;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The relay with real sockets: an echo server behind it on loopback. */
@Timeout(60)
class DelayingRelayTest {
    private static final Duration IDLE = Duration.ofSeconds(10);

    /** A server that echoes every byte of each connection until its peer closes. */
    private static final class Echo implements AutoCloseable {
        final ServerSocket server = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());

        Echo() throws IOException {
            Thread.ofPlatform().daemon().start(() -> {
                while (true) {
                    Socket s;
                    try {
                        s = server.accept();
                    } catch (IOException e) {
                        return;
                    }
                    Thread.ofPlatform().daemon().start(() -> {
                        try (s; InputStream in = s.getInputStream(); OutputStream out = s.getOutputStream()) {
                            s.setTcpNoDelay(true);
                            in.transferTo(out);
                        } catch (IOException e) {
                            // the peer went
                        }
                    });
                }
            });
        }

        InetSocketAddress address() {
            return new InetSocketAddress(server.getInetAddress(), server.getLocalPort());
        }

        @Override
        public void close() throws IOException {
            server.close();
        }
    }

    private static Socket connect(InetSocketAddress to) throws IOException {
        Socket s = new Socket();
        s.connect(to, 5000);
        s.setTcpNoDelay(true);
        s.setSoTimeout(10_000); // every read in these tests is bounded
        return s;
    }

    @Test
    void bytesArriveIntactBothWays() throws Exception {
        byte[] sent = new byte[4 << 20];
        new Random(17).nextBytes(sent);
        try (Echo echo = new Echo(); DelayingRelay relay = new DelayingRelay(echo.address(), Duration.ofMillis(2), IDLE);
             Socket s = connect(relay.address())) {
            CompletableFuture<Void> writing = CompletableFuture.runAsync(() -> {
                try {
                    OutputStream out = s.getOutputStream();
                    for (int at = 0; at < sent.length; at += 10_000) out.write(sent, at, Math.min(10_000, sent.length - at));
                    out.flush();
                } catch (IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            });
            byte[] got = new byte[sent.length];
            new DataInputStream(s.getInputStream()).readFully(got);
            writing.get(30, TimeUnit.SECONDS);
            assertArrayEquals(sent, got, "the bytes echoed through the relay, both directions");
        }
    }

    /** Median of round trips of one byte, through the relay and directly: the difference is the added round-trip time. */
    @Test
    void addsTheRoundTripTimeItWasGiven() throws Exception {
        try (Echo echo = new Echo()) {
            double direct = medianRoundTripMillis(echo.address());
            for (int addedMillis : new int[] {10, 40}) {
                try (DelayingRelay relay = new DelayingRelay(echo.address(), Duration.ofMillis(addedMillis), IDLE)) {
                    assertEquals(Duration.ofMillis(addedMillis), relay.addedRoundTrip());
                    double through = medianRoundTripMillis(relay.address());
                    double added = through - direct;
                    // Never less than asked (the writer sleeps until the due time); at most 10 ms more: four thread hand-offs per
                    // round trip on a 2-core host that CI keeps busy.
                    assertTrue(added >= addedMillis - 0.5 && added <= addedMillis + 10,
                            "added round trip: expected " + addedMillis + " ms (+10 at most), actual " + added + " ms (direct " + direct + " ms)");
                }
            }
            try (DelayingRelay relay = new DelayingRelay(echo.address(), Duration.ZERO, IDLE)) {
                double added = medianRoundTripMillis(relay.address()) - direct;
                assertTrue(added < 5, "no added round trip: expected under 5 ms more than direct, actual " + added + " ms");
            }
        }
    }

    private static double medianRoundTripMillis(InetSocketAddress to) throws IOException {
        try (Socket s = connect(to)) {
            double[] ms = new double[21];
            for (int i = 0; i < ms.length; i++) {
                long start = System.nanoTime();
                s.getOutputStream().write(i);
                assertEquals(i, s.getInputStream().read());
                ms[i] = (System.nanoTime() - start) / 1e6;
            }
            Arrays.sort(ms);
            return ms[ms.length / 2];
        }
    }

    @Test
    void aPeerClosingEndsBothSides() throws Exception {
        try (ServerSocket server = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
             DelayingRelay relay = new DelayingRelay(new InetSocketAddress(server.getInetAddress(), server.getLocalPort()), Duration.ofMillis(20), IDLE)) {
            server.setSoTimeout(10_000);
            // The server closes: the client reads its last bytes, then the end.
            try (Socket client = connect(relay.address()); Socket accepted = server.accept()) {
                accepted.getOutputStream().write(new byte[] {1, 2, 3});
                accepted.close();
                InputStream in = client.getInputStream();
                assertArrayEquals(new byte[] {1, 2, 3}, in.readNBytes(3));
                long start = System.nanoTime();
                assertEquals(-1, in.read(), "the client sees the end once the server closed");
                assertTrue((System.nanoTime() - start) / 1e9 < 5);
            }
            // The client closes: the server reads the end.
            try (Socket client = connect(relay.address()); Socket accepted = server.accept()) {
                accepted.setSoTimeout(10_000);
                client.getOutputStream().write(7);
                client.close();
                InputStream in = accepted.getInputStream();
                assertEquals(7, in.read());
                assertEquals(-1, in.read(), "the server sees the end once the client closed");
            }
        }
    }

    @Test
    void anIdleConnectionAndTheRelayItselfEndWithinTheirBounds() throws Exception {
        try (Echo echo = new Echo()) {
            try (DelayingRelay relay = new DelayingRelay(echo.address(), Duration.ZERO, Duration.ofMillis(300));
                 Socket s = connect(relay.address())) {
                long start = System.nanoTime();
                assertEquals(-1, s.getInputStream().read(), "an idle connection is closed");
                double seconds = (System.nanoTime() - start) / 1e9;
                assertTrue(seconds >= 0.25 && seconds < 3, "closed after its idle bound (0.3 s): actual " + seconds + " s");
            }
            DelayingRelay relay = new DelayingRelay(echo.address(), Duration.ZERO, IDLE);
            try (Socket s = connect(relay.address())) {
                s.getOutputStream().write(5);
                assertEquals(5, s.getInputStream().read());
                relay.close();
                assertEquals(-1, s.getInputStream().read(), "closing the relay ends its connections");
                assertThrows(IOException.class, () -> connect(relay.address()), "and it accepts no more");
            }
        }
        assertThrows(IllegalArgumentException.class, () -> new DelayingRelay(new InetSocketAddress(1), Duration.ofMillis(-1), IDLE));
    }
}
