package dev.thaw.cluster.net;

import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * The test's side of a member: speaks QEMU 7.2's stream netdev framing (a 4-byte big-endian length,
 * then the frame) on the member's unix socket, as {@code -netdev stream,server=off} does.
 */
final class QemuStreamPeer implements AutoCloseable {
    /** A received frame, or the end of the connection (data null). */
    record Received(byte[] data) {}

    private final SocketChannel channel;
    private final LinkedBlockingQueue<Received> received = new LinkedBlockingQueue<>();

    QemuStreamPeer(Path socket) throws IOException {
        channel = SocketChannel.open(StandardProtocolFamily.UNIX);
        channel.connect(UnixDomainSocketAddress.of(socket));
        Thread.ofVirtual().name("peer-reader-" + socket.getFileName()).start(this::readLoop);
    }

    private void readLoop() {
        ByteBuffer length = ByteBuffer.allocate(4);
        try {
            while (true) {
                length.clear();
                if (!readFully(length)) break;
                ByteBuffer data = ByteBuffer.allocate(length.getInt(0));
                if (!readFully(data)) break;
                received.add(new Received(data.array()));
            }
        } catch (IOException e) {
            // the connection ended
        }
        received.add(new Received(null));
    }

    private boolean readFully(ByteBuffer b) throws IOException {
        while (b.hasRemaining()) {
            if (channel.read(b) < 0) return false;
        }
        return true;
    }

    /** Sends one frame with its length prefix, in one write. */
    void send(byte[] frame) throws IOException {
        sendRaw(ByteBuffer.allocate(4 + frame.length).putInt(frame.length).put(frame).flip());
    }

    void sendRaw(ByteBuffer bytes) throws IOException {
        while (bytes.hasRemaining()) channel.write(bytes);
    }

    /** The next frame within {@code timeout}, or null if none came (or the connection ended). */
    byte[] receive(Duration timeout) throws InterruptedException {
        Received r = received.poll(timeout.toMillis(), TimeUnit.MILLISECONDS);
        return r == null ? null : r.data();
    }

    /** Whether the switch ended the connection within {@code timeout} (frames before the end are skipped). */
    boolean endedWithin(Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (System.nanoTime() < deadline) {
            Received r = received.poll(Math.max(1, (deadline - System.nanoTime()) / 1_000_000), TimeUnit.MILLISECONDS);
            if (r != null && r.data() == null) return true;
        }
        return false;
    }

    @Override
    public void close() throws IOException {
        channel.close();
    }
}
