package dev.thaw.cluster.net;

import static dev.thaw.cluster.net.ClusterSwitchTest.frame;
import static dev.thaw.cluster.net.ClusterSwitchTest.macOf;
import static dev.thaw.cluster.net.ClusterSwitchTest.payload;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.DatagramChannel;
import java.nio.file.Path;
import java.time.Duration;
import java.time.InstantSource;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Predicate;
import java.util.function.Supplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Two switches in this JVM, "host A" with members a1 and a2 and "host B" with b1, joined by a real UDP tunnel on 127.0.0.1: the
 * test speaks QEMU's stream framing as each member.
 */
class TunnelSwitchTest {
    private static final Duration WAIT = Duration.ofSeconds(5);
    private static final Duration QUIET = Duration.ofMillis(300);
    private static final byte[] BROADCAST = ClusterSwitchTest.mac(0xff, 0xff, 0xff, 0xff, 0xff, 0xff);

    @TempDir
    Path dir;
    private final List<AutoCloseable> open = new ArrayList<>();
    private ClusterSwitch a;
    private ClusterSwitch b;
    private InetSocketAddress aEnd;
    private InetSocketAddress bEnd;

    @AfterEach
    void closeAll() throws Exception {
        for (AutoCloseable c : open.reversed()) c.close();
    }

    private void openBoth() throws Exception {
        aEnd = new InetSocketAddress(InetAddress.getLoopbackAddress(), freeUdpPort());
        bEnd = new InetSocketAddress(InetAddress.getLoopbackAddress(), freeUdpPort());
        a = ClusterSwitch.open(dir.resolve("a"), List.of("a1", "a2"), ClusterSwitch.Options.DEFAULT, InstantSource.system(),
                new ClusterSwitch.Tunnel(aEnd, bEnd, List.of("b1")));
        open.add(a);
        b = ClusterSwitch.open(dir.resolve("b"), List.of("b1"), ClusterSwitch.Options.DEFAULT, InstantSource.system(),
                new ClusterSwitch.Tunnel(bEnd, aEnd, List.of("a1", "a2")));
        open.add(b);
    }

    private static int freeUdpPort() throws Exception {
        try (DatagramChannel c = DatagramChannel.open()) {
            c.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
            return ((InetSocketAddress) c.getLocalAddress()).getPort();
        }
    }

    private QemuStreamPeer connect(ClusterSwitch sw, String member) throws Exception {
        QemuStreamPeer p = new QemuStreamPeer(sw.socket(member));
        open.add(p);
        await(() -> sw.stats(member), PortStats::connected);
        return p;
    }

    private static <T> T await(Supplier<T> what, Predicate<T> condition) throws InterruptedException {
        long deadline = System.nanoTime() + WAIT.toNanos();
        T v;
        while (!condition.test(v = what.get())) {
            if (System.nanoTime() > deadline) throw new AssertionError("within " + WAIT + ": " + v);
            Thread.sleep(5);
        }
        return v;
    }

    @Test
    void framesCrossBothWaysAndABroadcastCrossesOncePerRemoteMemberWithoutComingBack() throws Exception {
        openBoth();
        QemuStreamPeer a1 = connect(a, "a1");
        QemuStreamPeer a2 = connect(a, "a2");
        QemuStreamPeer b1 = connect(b, "b1");
        byte[] arp = frame(BROADCAST, macOf(1), "who-has b1");
        a1.send(arp);
        assertThat(a2.receive(WAIT)).isEqualTo(arp);
        assertThat(b1.receive(WAIT)).as("across the tunnel").isEqualTo(arp);
        assertThat(b1.receive(QUIET)).as("once").isNull();
        assertThat(a1.receive(QUIET)).as("never back to its sender, through the tunnel or not").isNull();
        assertThat(b.macTable()).containsEntry("52:54:00:12:34:01", "a1");

        byte[] reply = frame(macOf(1), macOf(3), "is-at");
        b1.send(reply);
        assertThat(a1.receive(WAIT)).isEqualTo(reply);
        assertThat(a2.receive(QUIET)).as("a1's MAC was learned on b's side: the datagram names a1 only").isNull();
        assertThat(a.macTable()).containsEntry("52:54:00:12:34:03", "b1");

        byte[] unicast = frame(macOf(3), macOf(2), "to b1");
        a2.send(unicast);
        assertThat(b1.receive(WAIT)).isEqualTo(unicast);
        assertThat(a1.receive(QUIET)).as("b1's MAC was learned from the tunnel: unicast into it only").isNull();

        var ta = a.tunnelStats();
        var tb = b.tunnelStats();
        assertThat(ta.datagramsOut()).isEqualTo(2);
        assertThat(tb.datagramsIn()).isEqualTo(2);
        assertThat(tb.datagramsOut()).isEqualTo(1);
        assertThat(ta.datagramsIn()).isEqualTo(1);
        assertThat(ta.clean() && tb.clean()).as(ta + " " + tb).isTrue();
        assertThat(a.traffic()).anySatisfy(r -> assertThat(r.from() + ">" + r.to() + " " + r.frames()).isEqualTo("b1>a1 1"));
        assertThat(a.stats("b1").framesOut()).isEqualTo(2);
    }

    @Test
    void framesHeldForARemoteMemberCrossInOrderOnlyOnceReleased() throws Exception {
        openBoth();
        a.hold("b1");
        List<Frame> saved = new ArrayList<>();
        for (int i = 0; i < 300; i++) saved.add(new Frame(10 + i, "a1", "b1", frame(macOf(3), macOf(1), "saved " + i + " " + "x".repeat(1400))));
        a.preload(saved);
        QemuStreamPeer a1 = connect(a, "a1");
        QemuStreamPeer b1 = connect(b, "b1");
        a1.send(frame(macOf(3), macOf(1), "new"));
        await(() -> a.stats("b1"), s -> s.queuedFrames() == 301);
        assertThat(b1.receive(QUIET)).as("held on a's side").isNull();
        assertThat(a.tunnelStats().datagramsOut()).isZero();
        a.release("b1");
        for (int i = 0; i < 300; i++) assertThat(payload(b1.receive(WAIT))).startsWith("saved " + i + " ");
        assertThat(payload(b1.receive(WAIT))).isEqualTo("new");
        assertThat(a.stats("b1").preloadedFramesOut()).isEqualTo(300);
        assertThat(b.stats("b1").framesOut()).isEqualTo(301);
        assertThat(b.tunnelStats().clean()).as(b.tunnelStats().toString()).isTrue();
        assertThat(b.tunnelStats().outOfOrder()).isZero();
    }

    @Test
    void aLocalMemberHeldUntilConnectedGetsWhatCameBeforeItsQemu() throws Exception {
        openBoth();
        b.holdUntilConnected("b1");
        QemuStreamPeer a1 = connect(a, "a1");
        a1.send(frame(macOf(3), macOf(1), "early"));
        await(() -> b.stats("b1"), s -> s.queuedFrames() == 1);
        QemuStreamPeer b1 = connect(b, "b1");
        assertThat(payload(b1.receive(WAIT))).isEqualTo("early");
        assertThat(b.stats("b1").droppedUnconnected()).isZero();
        assertThat(b.stats("b1").held()).isFalse();
    }

    @Test
    void aBadDatagramOrOneFromAnotherAddressIsDroppedCountedAndSaysWhy() throws Exception {
        openBoth();
        QemuStreamPeer b1 = connect(b, "b1");
        try (DatagramChannel stranger = DatagramChannel.open()) {
            stranger.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
            stranger.send(ByteBuffer.wrap(new TunnelDatagram(1, "a1", "b1", frame(macOf(3), macOf(1), "x")).encode()), bEnd);
            await(() -> b.tunnelStats(), t -> t.malformed() == 1);
            assertThat(b.tunnelStats().lastMalformed()).contains("expected one from the peer " + aEnd + ", actual another address");
        }
        // From the peer's own address: a sender that is not behind the tunnel, then garbage.
        try (DatagramChannel peer = DatagramChannel.open()) {
            a.close(); // frees a's end, so that the test can speak from it
            peer.bind(aEnd);
            peer.send(ByteBuffer.wrap(new TunnelDatagram(1, "b1", "a1", frame(macOf(3), macOf(1), "x")).encode()), bEnd);
            await(() -> b.tunnelStats(), t -> t.malformed() == 2);
            assertThat(b.tunnelStats().lastMalformed()).contains("expected a sender behind the tunnel [a1, a2], actual b1");
            peer.send(ByteBuffer.wrap("THTU\u0001\u0001".getBytes(java.nio.charset.StandardCharsets.ISO_8859_1)), bEnd);
            await(() -> b.tunnelStats(), t -> t.malformed() == 3);
            assertThat(b.tunnelStats().lastMalformed()).contains("expected a header of 16 bytes, actual 6 bytes in all");
            // A gap in the peer's sequence is counted as lost.
            peer.send(ByteBuffer.wrap(new TunnelDatagram(5, "a1", "b1", frame(macOf(3), macOf(1), "fifth")).encode()), bEnd);
            assertThat(payload(b1.receive(WAIT))).isEqualTo("fifth");
            assertThat(b.tunnelStats().lost()).isEqualTo(4);
        }
        assertThat(b1.receive(QUIET)).as("nothing malformed delivered").isNull();
    }

    @Test
    void aMemberBothHereAndBehindTheTunnelIsRefused() {
        InetSocketAddress x = new InetSocketAddress(InetAddress.getLoopbackAddress(), 1);
        assertThatThrownBy(() -> ClusterSwitch.open(dir.resolve("c"), List.of("m1"), ClusterSwitch.Options.DEFAULT, InstantSource.system(),
                new ClusterSwitch.Tunnel(x, x, List.of("m1")))).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("expected m1 either here or behind the tunnel, actual both");
        assertThatThrownBy(() -> ClusterSwitch.Tunnel.parse("10.0.0.1:7300", List.of("m2"))).hasMessageContaining(
                "expected LOCAL_IP:PORT=PEER_IP:PORT, actual '10.0.0.1:7300'");
        assertThatThrownBy(() -> ClusterSwitch.Tunnel.parse("10.0.0.1:7300=host:7300", List.of("m2"))).hasMessageContaining(
                "expected the peer end as IPV4:PORT, actual 'host:7300'");
        assertThat(ClusterSwitch.Tunnel.parse("10.0.0.1:7300=10.0.0.2:7301", List.of("m2")).peer().getPort()).isEqualTo(7301);
    }
}
