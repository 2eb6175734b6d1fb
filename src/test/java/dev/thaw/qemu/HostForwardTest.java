package dev.thaw.qemu;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

/** HMP's info usernet, as QEMU 7.2 with libslirp 4.7 prints it. */
class HostForwardTest {
    @Test
    void readsEachForwardAsBoundAndSkipsConnections() {
        // Captured from qemu-system-x86_64 7.2 with -netdev user,id=n0,hostfwd=tcp:127.0.0.1:0-:5000,hostfwd=tcp:127.0.0.1:0-:22
        // (a TCP connection row and a UDP forward added).
        String out = "Hub -1 (n0):\r\n  Protocol[State]    FD  Source Address  Port   Dest. Address  Port RecvQ SendQ\r\n"
                + "  TCP[HOST_FORWARD]   9       127.0.0.1 44177       10.0.2.15  5000     0     0\r\n"
                + "  TCP[HOST_FORWARD]   4       127.0.0.1 45579       10.0.2.15    22     0     0\r\n"
                + "  TCP[ESTABLISHED]   12       127.0.0.1 50000       10.0.2.15  5000     0     0\r\n"
                + "  UDP[HOST_FORWARD]  -1       127.0.0.1  5353       10.0.2.15    53     0     0\r\n";
        assertThat(HostForward.parse(out)).containsExactly(new HostForward("tcp", "127.0.0.1", 44177, "10.0.2.15", 5000),
                new HostForward("tcp", "127.0.0.1", 45579, "10.0.2.15", 22), new HostForward("udp", "127.0.0.1", 5353, "10.0.2.15", 53));
        assertThat(HostForward.parse("")).isEmpty();
        assertThat(HostForward.parse(out).getFirst()).hasToString("tcp:127.0.0.1:44177 -> 10.0.2.15:5000");
    }

    @Test
    void refusesARowOfAnotherShape() {
        assertThatThrownBy(() -> HostForward.parse("  TCP[HOST_FORWARD] 9 127.0.0.1 port 10.0.2.15 22 0 0"))
                .hasMessageStartingWith("info usernet: expected 'TCP|UDP[HOST_FORWARD] FD SRC-ADDR PORT DEST-ADDR PORT RECVQ SENDQ',")
                .hasMessageEndingWith("actual 'TCP[HOST_FORWARD] 9 127.0.0.1 port 10.0.2.15 22 0 0'");
    }
}
