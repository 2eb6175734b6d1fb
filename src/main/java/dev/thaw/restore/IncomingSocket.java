package dev.thaw.restore;

import dev.thaw.qemu.QemuVm;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;
import java.time.Duration;

/** Connects to the socket a destination QEMU listens on after {@code migrate-incoming}. */
final class IncomingSocket {
    private IncomingSocket() {}

    /** Retries until QEMU has created the socket; gives up at the deadline or when QEMU has exited. */
    static SocketChannel connect(Path socket, QemuVm vm, Duration timeout) throws IOException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            SocketChannel channel = SocketChannel.open(StandardProtocolFamily.UNIX);
            try {
                channel.connect(UnixDomainSocketAddress.of(socket));
                return channel;
            } catch (IOException e) {
                channel.close();
                if (!vm.isAlive() || System.nanoTime() > deadline) {
                    throw new IOException("cannot connect to the incoming socket " + socket + ": " + e.getMessage(), e);
                }
                try {
                    Thread.sleep(10);
                } catch (InterruptedException ie) {
                    Thread.currentThread().interrupt();
                    throw new IOException("interrupted", ie);
                }
            }
        }
    }
}
