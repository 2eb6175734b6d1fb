package dev.thaw.util;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The bytes a unix socket's peer has not read, from ss's output and from the kernel itself. */
class UnixSocketQueuesTest {
    @Test
    void sendQueuesOfTheSocketsAcceptedOnAPathAreSummedAndOthersIgnored() {
        String ss = """
                u_str LISTEN 0      4096   /tmp/c/m1.sock 2366100            * 0
                u_str ESTAB  0      214272 /tmp/c/m1.sock 2367320            * 2367321
                u_str ESTAB  5000   0      * 2367321            * 2367320
                u_str ESTAB  0      768    * 2366108            * 2367315
                u_str ESTAB  0      0      /tmp/c/m2.sock 2367330            * 2367331
                u_str ESTAB  0      0      * 2367331            * 2367330
                u_dgr UNCONN 0      0      /run/systemd/notify 1 * 0
                """;
        Path m1 = Path.of("/tmp/c/m1.sock");
        Path m2 = Path.of("/tmp/c/m2.sock");
        Path m3 = Path.of("/tmp/c/m3.sock");
        assertThat(UnixSocketQueues.unreadByPeers(ss, List.of(m1, m2, m3))).as("the peer's Recv-Q, in bytes")
                .isEqualTo(Map.of(m1, 5000L, m2, 0L, m3, 0L));
        assertThatThrownBy(() -> UnixSocketQueues.unreadByPeers("u_str ESTAB lots 0 /tmp/c/m1.sock 1 * 2", List.of(m1)))
                .hasMessageContaining("expected a Recv-Q count, actual 'lots'");
    }

    @Test
    void whatAPeerHasNotReadIsSeenAndGoesOnceItReads(@TempDir Path dir) throws IOException {
        Path path = dir.resolve("s.sock");
        try (ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            server.bind(UnixDomainSocketAddress.of(path));
            try (SocketChannel client = SocketChannel.open(UnixDomainSocketAddress.of(path)); SocketChannel accepted = server.accept()) {
                accepted.write(ByteBuffer.wrap(new byte[1000]));
                assertThat(UnixSocketQueues.unreadByPeers(List.of(path)).orElseThrow()).containsEntry(path, 1000L);
                client.read(ByteBuffer.allocate(4096));
                assertThat(UnixSocketQueues.unreadByPeers(List.of(path)).orElseThrow()).containsEntry(path, 0L);
            }
        }
    }
}
