package dev.thaw.cli;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.cluster.live.ClusterStatus;
import dev.thaw.cluster.net.PairRecord;
import dev.thaw.cluster.net.PortStats;
import dev.thaw.guest.TcpStreamLine;
import java.nio.file.Path;
import java.time.Instant;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code thaw cluster status} on status files, and {@code thaw cluster up}'s option checks (no QEMU). */
class ClusterCommandTest {
    private static ClusterStatus status(long upPid, Instant at) {
        PortStats up = new PortStats("m1", true, false, 0, 0, 4096, 16 << 20, 2, 120, 8000, 3100, 4_600_000, 0, 0, 0, 0, 1, 0, 0);
        PortStats down = new PortStats("m2", false, false, 0, 0, 4096, 16 << 20, 1, 3100, 4_600_000, 120, 8000, 0, 5, 0, 0, 1, 0, 0);
        return new ClusterStatus(ClusterStatus.VERSION, at, upPid, "/tmp/c", List.of(
                new ClusterStatus.Member("m1", "10.0.3.1", "52:54:00:00:03:01", "server", "/tmp/v1/qmp-extra.sock", 11, true, "running", up,
                        new TcpStreamLine.Tick(TcpStreamLine.Direction.RX, 9, 1, 4_194_304, 0, "10.0.3.2"), null),
                new ClusterStatus.Member("m2", "10.0.3.2", "52:54:00:00:03:02", "client", "/tmp/v2/qmp-extra.sock", 12, false,
                        "QEMU pid 12 exited with status 137", down, null,
                        new TcpStreamLine.Done(TcpStreamLine.Direction.TX, 4_194_304, 0, "4c62a0daae7028cf", ""))),
                List.of(new PairRecord("m2", "m1", 3100, 4_600_000, at), new PairRecord("m1", "m2", 120, 8000, at)));
    }

    @Test
    void statusShowsMembersAndTrafficPerPair(@TempDir Path dir) throws Exception {
        status(ProcessHandle.current().pid(), Instant.now()).write(dir);
        ImageCommandsTest.Run run = ImageCommandsTest.run("cluster", "status", "--dir", dir.toString());
        assertThat(run.exit()).as(run.err()).isZero();
        assertThat(run.out()).doesNotContain("STALE");
        assertThat(run.out()).containsPattern("m1 +10\\.0\\.3\\.1 +server +running +up +120 +3100 +0 +4194304 rx");
        assertThat(run.out()).containsPattern("m2 +10\\.0\\.3\\.2 +client +EXITED +down +3100 +120 +5 +4194304 done, 0 bad, fnv 4c62a0daae7028cf");
        assertThat(run.out()).contains("QEMU pid 12 exited with status 137");
        assertThat(run.out()).containsPattern("m2 +-> m1 +3100 +4600000").containsPattern("m1 +-> m2 +120 +8000");
        assertThat(ImageCommandsTest.run("cluster", "status", "--dir", dir.toString(), "--json").out()).contains("\"upPid\"", "\"traffic\"");
    }

    @Test
    void aStatusWhoseWriterIsGoneIsStale(@TempDir Path dir) throws Exception {
        status(ProcessHandle.current().pid(), Instant.now().minusSeconds(60)).write(dir);
        ImageCommandsTest.Run run = ImageCommandsTest.run("cluster", "status", "--dir", dir.toString());
        assertThat(run.exit()).isEqualTo(3);
        assertThat(run.out()).contains("STALE: that process is gone or stopped");
    }

    @Test
    void statusWithoutAClusterAndBadUpOptionsFailNamingWhy(@TempDir Path dir) {
        ImageCommandsTest.Run none = ImageCommandsTest.run("cluster", "status", "--dir", dir.toString());
        assertThat(none.exit()).isEqualTo(1);
        assertThat(none.err()).contains("thaw cluster status: cluster status " + dir.resolve("status.json"), "no cluster runs there");
        ImageCommandsTest.Run zero = ImageCommandsTest.run("cluster", "up", "--members", "0");
        assertThat(zero.exit()).isEqualTo(1);
        assertThat(zero.err()).contains("thaw cluster up: members: expected 1 to 254, actual 0");
        ImageCommandsTest.Run small = ImageCommandsTest.run("cluster", "up", "--members", "2", "--memory-mib", "64");
        assertThat(small.err()).contains("expected at least 192 MiB, actual 64 MiB");
        ImageCommandsTest.Run bare = ImageCommandsTest.run("cluster");
        assertThat(bare.exit()).isEqualTo(2);
        assertThat(bare.err()).contains("expected a subcommand: up, status, save, restore, cohort, switch or demo");
    }

    @Test
    void aTunnelNeedsZooKeeperAndRemoteMembersAndWellFormedEnds(@TempDir Path dir) {
        ImageCommandsTest.Run noZk = ImageCommandsTest.run("cluster", "restore", dir.toString(), "--tunnel", "10.0.0.1:1=10.0.0.2:1", "--remote", "m2");
        assertThat(noZk.exit()).isEqualTo(2);
        assertThat(noZk.err()).contains("expected --tunnel and --remote together, with --zk, actual a --tunnel, a --remote and no --zk");
        ImageCommandsTest.Run bad = ImageCommandsTest.run("cluster", "restore", dir.toString(), "--zk", "127.0.0.1:1", "--tunnel", "10.0.0.1:1",
                "--remote", "m2");
        assertThat(bad.exit()).isEqualTo(2);
        assertThat(bad.err()).contains("thaw cluster restore: tunnel: expected LOCAL_IP:PORT=PEER_IP:PORT, actual '10.0.0.1:1'");
        ImageCommandsTest.Run sw = ImageCommandsTest.run("cluster", "switch", "--dir", dir.resolve("s").toString(), "--local", "m1", "--remote", "m1",
                "--tunnel", "127.0.0.1:0=127.0.0.1:1");
        assertThat(sw.exit()).isEqualTo(1);
        assertThat(sw.err()).contains("thaw cluster switch: switch: expected m1 either here or behind the tunnel, actual both (or twice)");
        ImageCommandsTest.Run zk = ImageCommandsTest.run("zookeeper", "--bind", "no-such-host.invalid", "--port", "0");
        assertThat(zk.exit()).isEqualTo(2);
        assertThat(zk.err()).contains("thaw zookeeper: --bind: expected an address, actual 'no-such-host.invalid'");
    }

    @Test
    void saveAndRestoreRefuseWhatTheyCannotUseBeforeAnyQemu(@TempDir Path dir) throws Exception {
        ImageCommandsTest.Run strategy = ImageCommandsTest.run("cluster", "restore", dir.toString(), "--strategy", "eager");
        assertThat(strategy.exit()).isEqualTo(1);
        assertThat(strategy.err()).contains("thaw cluster restore: --strategy: expected independent, restore-line or held, actual 'eager'");
        ImageCommandsTest.Run none = ImageCommandsTest.run("cluster", "restore", dir.toString());
        assertThat(none.exit()).isEqualTo(1);
        assertThat(none.err()).contains(dir.resolve("cluster.thaw").toString(), "is missing");
        ImageCommandsTest.Run trace = ImageCommandsTest.run("cluster", "save", "--dir", dir.toString(), "--out", dir.resolve("cp").toString(),
                "--estimator", "trace");
        assertThat(trace.exit()).isEqualTo(1);
        assertThat(trace.err()).contains("thaw cluster save --estimator: expected none or dirty, actual 'trace'");
        ImageCommandsTest.Run noLive = ImageCommandsTest.run("cluster", "save", "--dir", dir.toString(), "--out", dir.resolve("cp").toString(),
                "--estimator", "dirty", "--live-seconds", "0");
        assertThat(noLive.exit()).isEqualTo(1);
        assertThat(noLive.err()).contains("thaw cluster save --live-seconds: expected > 0, actual 0");
        ImageCommandsTest.Run noCluster = ImageCommandsTest.run("cluster", "save", "--dir", dir.toString(), "--out", dir.resolve("cp").toString());
        assertThat(noCluster.exit()).isEqualTo(1);
        assertThat(noCluster.err()).contains("no cluster runs there");
        status(ProcessHandle.current().pid(), Instant.now().minusSeconds(60)).write(dir);
        ImageCommandsTest.Run stale = ImageCommandsTest.run("cluster", "save", "--dir", dir.toString(), "--out", dir.resolve("cp").toString());
        assertThat(stale.exit()).isEqualTo(1);
        assertThat(stale.err()).contains("expected a cluster running in " + dir + ", actual a stale status");
        assertThat(dir.resolve("save-request.json")).doesNotExist();
    }
}
