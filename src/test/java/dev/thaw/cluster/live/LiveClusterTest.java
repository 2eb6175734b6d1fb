package dev.thaw.cluster.live;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.cluster.net.PairRecord;
import dev.thaw.cluster.net.PortStats;
import dev.thaw.guest.ClusterMember;
import dev.thaw.guest.TcpStreamLine;
import dev.thaw.testing.TcpStreams;
import dev.thaw.testing.TestHost;
import dev.thaw.guest.GuestImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Real QEMU members on the cluster switch: a TCP stream between two of them, and a member that dies. */
class LiveClusterTest {
    private static final long MEMBER_MIB = 256;
    private static final long STREAM_BYTES = 8L << 20;
    private static final Duration STREAM_TIMEOUT = Duration.ofSeconds(90);

    @Test
    void twoMembersStreamIntactBytesThroughTheSwitchAndLeaveNothingBehind() throws IOException, InterruptedException {
        long started = System.nanoTime();
        Path dir;
        List<Long> pids;
        try (LiveCluster cluster = up(ClusterMember.starOf(2, MEMBER_MIB, STREAM_BYTES))) {
            dir = cluster.directory();
            pids = cluster.members().stream().map(m -> cluster.vm(m.name()).pid()).toList();
            assertThat(dir.resolve("m1.sock")).exists();
            System.err.printf("cluster of 2 up %.1f s after the start%n", (System.nanoTime() - started) / 1e9);

            var tx = (TcpStreamLine.Done) cluster.awaitStream("m2", l -> l instanceof TcpStreamLine.Done, STREAM_TIMEOUT);
            var rx = (TcpStreamLine.Done) cluster.awaitStream("m1", l -> l instanceof TcpStreamLine.Done, Duration.ofSeconds(10));
            System.err.printf("stream of %d MiB done %.1f s after the start%n", STREAM_BYTES >> 20, (System.nanoTime() - started) / 1e9);
            // Both ends agree with each other and with the stream as defined (guest/src/tcpstream.c), computed here.
            assertThat(tx.bytes()).isEqualTo(STREAM_BYTES);
            assertThat(rx).isEqualTo(new TcpStreamLine.Done(TcpStreamLine.Direction.RX, STREAM_BYTES, 0, TcpStreams.expectedFnv(STREAM_BYTES), "10.0.3.2"));
            assertThat(tx.fnv()).isEqualTo(rx.fnv());

            // The switch saw the stream one way and its acks the other.
            PairRecord data = pair(cluster.traffic(), "m2", "m1");
            PairRecord acks = pair(cluster.traffic(), "m1", "m2");
            assertThat(data.bytes()).isGreaterThan(STREAM_BYTES);
            assertThat(acks.frames()).isPositive();
            assertThat(acks.bytes()).isPositive().isLessThan(data.bytes() / 4);
            for (String m : List.of("m1", "m2")) {
                PortStats port = cluster.port(m);
                assertThat(port.connected()).isTrue();
                assertThat(port.droppedQueueFull() + port.droppedUnconnected() + port.malformedFrames() + port.protocolViolations()).isZero();
            }
            ClusterStatus status = cluster.status();
            assertThat(status.members()).extracting(ClusterStatus.Member::alive).containsExactly(true, true);
            assertThat(status.members().get(0).done()).isEqualTo(rx);
            // The same record, or a later one: a frame may still pass after the stream is done (an ACK, a FIN), as one CI run saw
            // between the two readings (5,799 then 5,800 frames).
            PairRecord dataInStatus = pair(status.traffic(), "m2", "m1");
            assertThat(dataInStatus.frames()).isGreaterThanOrEqualTo(data.frames());
            assertThat(dataInStatus.bytes()).isGreaterThanOrEqualTo(data.bytes()).isLessThan(data.bytes() + (64 << 10));
            assertThat(dataInStatus.last()).isAfterOrEqualTo(data.last());
            cluster.writeStatus();
            assertThat(ClusterStatus.read(dir).members()).hasSize(2);
        }
        for (long pid : pids) assertThat(ProcessHandle.of(pid).filter(ProcessHandle::isAlive)).as("QEMU pid " + pid).isEmpty();
        assertThat(dir).doesNotExist(); // no socket, no status file
        System.err.printf("whole test %.1f s%n", (System.nanoTime() - started) / 1e9);
    }

    @Test
    void aMemberWhoseQemuDiesIsReportedNotWaitedFor() throws IOException, InterruptedException {
        try (LiveCluster cluster = up(ClusterMember.starOf(2, MEMBER_MIB, 0))) {
            cluster.awaitStream("m2", l -> l instanceof TcpStreamLine.Tick, STREAM_TIMEOUT);
            cluster.check();
            assertThat(ProcessHandle.of(cluster.vm("m2").pid()).orElseThrow().destroyForcibly()).isTrue();

            long waiting = System.nanoTime();
            assertThatThrownBy(() -> cluster.awaitStream("m2", l -> l instanceof TcpStreamLine.Done, STREAM_TIMEOUT))
                    .isInstanceOf(ClusterException.MemberDied.class)
                    .hasMessageContaining("cluster member m2: expected its QEMU running, actual QEMU pid")
                    .hasMessageContaining("exited with status 137");
            assertThat(Duration.ofNanos(System.nanoTime() - waiting)).isLessThan(Duration.ofSeconds(10));
            assertThatThrownBy(cluster::check).isInstanceOf(ClusterException.MemberDied.class).hasMessageContaining("member m2");

            ClusterStatus status = cluster.status();
            assertThat(status.members()).extracting(ClusterStatus.Member::alive).containsExactly(true, false);
            assertThat(status.members().get(1).qemu()).contains("exited with status 137");
            // The switch notices the closed connection on its next read.
            long deadline = System.nanoTime() + Duration.ofSeconds(5).toNanos();
            while (cluster.port("m2").connected() && System.nanoTime() < deadline) Thread.sleep(50);
            assertThat(cluster.port("m2").connected()).isFalse();
            assertThat(cluster.vm("m1").isAlive()).isTrue();
        }
    }

    @Test
    void aMemberWhoseQemuDiesWhileStartingFailsUpAndLeavesNothing(@TempDir Path guestDir) throws IOException {
        // Not a kernel: QEMU exits at once, before its QMP socket answers.
        Path kernel = Files.writeString(guestDir.resolve("vmlinuz"), "not a kernel");
        GuestImage broken = new GuestImage("broken", guestDir, kernel, Files.writeString(guestDir.resolve("initrd.img"), "x"), "-", "-");
        Path dir = guestDir.resolve("cluster");
        long started = System.nanoTime();
        assertThatThrownBy(() -> LiveCluster.up(dir, ClusterMember.starOf(2, MEMBER_MIB, 0), broken, TestHost.qemu(), TestHost.accel(),
                LiveCluster.CONNECT_TIMEOUT))
                .isInstanceOf(ClusterException.MemberDied.class)
                .hasMessageContaining("cluster member m1: expected its QEMU running, actual QEMU for m1 did not come up");
        assertThat(Duration.ofNanos(System.nanoTime() - started)).isLessThan(Duration.ofSeconds(20));
        assertThat(dir).doesNotExist(); // up made it, so up removed it, sockets and all
        assertThat(ProcessHandle.allProcesses().filter(p -> p.info().commandLine().orElse("").contains(kernel.toString()))).isEmpty();
    }

    @Test
    void aDirectoryItCannotUseFailsUpBeforeAnyQemuAndIsKept(@TempDir Path dir) throws IOException {
        Files.writeString(dir.resolve("m2.sock"), "someone's file");
        assertThatThrownBy(() -> up(dir, ClusterMember.starOf(2, MEMBER_MIB, 0))).hasMessageContaining("m2.sock");
        try (var files = Files.list(dir)) {
            assertThat(files.map(p -> p.getFileName().toString())).containsExactly("m2.sock");
        }
        assertThat(Files.readString(dir.resolve("m2.sock"))).isEqualTo("someone's file");
    }

    private static LiveCluster up(List<ClusterMember> members) throws IOException {
        return up(null, members);
    }

    private static LiveCluster up(Path dir, List<ClusterMember> members) throws IOException {
        return LiveCluster.up(dir, members, TestHost.guest(), TestHost.qemu(), TestHost.accel(), LiveCluster.CONNECT_TIMEOUT);
    }

    private static PairRecord pair(List<PairRecord> traffic, String from, String to) {
        return traffic.stream().filter(r -> r.from().equals(from) && r.to().equals(to)).findFirst()
                .orElseThrow(() -> new AssertionError("expected a traffic record " + from + " -> " + to + ", actual " + traffic));
    }
}
