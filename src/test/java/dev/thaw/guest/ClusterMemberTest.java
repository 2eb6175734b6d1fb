package dev.thaw.guest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.qemu.Accel;
import dev.thaw.qemu.QemuVersion;
import dev.thaw.qemu.VmConfig;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;

/** A cluster member's kernel command line and QEMU configuration, and the lines its workload prints. */
class ClusterMemberTest {
    private static final GuestImage GUEST = new GuestImage("k", Path.of("/g"), Path.of("/g/vmlinuz"), Path.of("/g/initrd.img"), "6.1", "linux");

    @Test
    void aStarHasOneServerAndClientsStreamingToIt() {
        List<ClusterMember> star = ClusterMember.starOf(3, 256, 1 << 20);
        assertThat(star).extracting(ClusterMember::name).containsExactly("m1", "m2", "m3");
        assertThat(star).extracting(ClusterMember::role).containsExactly(ClusterMember.Role.SERVER, ClusterMember.Role.CLIENT,
                ClusterMember.Role.CLIENT);
        assertThat(star.get(0).kernelCommandLine()).endsWith(" thaw.net=10.0.3.1/24 thaw.stream=server");
        assertThat(star.get(2).kernelCommandLine()).endsWith(" thaw.net=10.0.3.3/24 thaw.stream=client:10.0.3.1 thaw.stream.bytes=1048576");
        assertThat(star.get(2).mac()).isEqualTo("52:54:00:00:03:03");
        assertThat(ClusterMember.starOf(1, 256, 0).getFirst().kernelCommandLine()).endsWith("thaw.net=10.0.3.1/24");
    }

    @Test
    void memholdGrowsTheMemberByItsWorkingSetAndIsOnItsCommandLine() {
        ClusterMember m = ClusterMember.starOf(2, 256, 0).getFirst().withMemhold(512);
        assertThat(m.memoryMiB()).isEqualTo(768);
        assertThat(m.kernelCommandLine()).endsWith(" thaw.stream=server thaw.memhold_mib=512");
        assertThat(m.withMemhold(64).memoryMiB()).isEqualTo(320);
        assertThat(m.withMemhold(0).kernelCommandLine()).doesNotContain("memhold");
        assertThatThrownBy(() -> new ClusterMember("m1", 1, 256, ClusterMember.Role.IDLE, 0, 0, 65))
                .hasMessageContaining("expected a working set (memhold) of 0 to 64 MiB").hasMessageContaining("actual 65 MiB");
        assertThatThrownBy(() -> new ClusterMember("m1", 1, 256, ClusterMember.Role.IDLE, 0, 0, -1)).hasMessageContaining("actual -1 MiB");
    }

    @Test
    void itsConfigurationPassesTheAllowlistWithItsSocketInTheClustersDirectory() {
        ClusterMember m = ClusterMember.starOf(2, 256, 0).get(1);
        VmConfig config = m.vmConfig(GUEST, QemuVersion.MINIMUM, Accel.TCG, Path.of("/tmp/thaw-cluster-x/m2.sock"));
        assertThat(config.extraArgs()).containsExactly("-netdev", "stream,id=net0,server=off,addr.type=unix,addr.path=/tmp/thaw-cluster-x/m2.sock",
                "-device", "virtio-net-pci,netdev=net0,mac=52:54:00:00:03:02", "-device", "vmgenid");
        assertThat(config.requireClusterSocketsIn(List.of(Path.of("/tmp/thaw-cluster-x")))).isSameAs(config);
        assertThat(config.memoryMiB()).isEqualTo(256);
    }

    @Test
    void refusesMembersTheGuestCannotRun() {
        assertThatThrownBy(() -> new ClusterMember("m1", 0, 256, ClusterMember.Role.IDLE, 0, 0)).hasMessageContaining("expected 1 to 254, actual 0");
        assertThatThrownBy(() -> new ClusterMember("m,1", 1, 256, ClusterMember.Role.IDLE, 0, 0)).hasMessageContaining("actual 'm,1'");
        assertThatThrownBy(() -> new ClusterMember("m1", 1, 128, ClusterMember.Role.IDLE, 0, 0)).hasMessageContaining("actual 128 MiB");
        assertThatThrownBy(() -> new ClusterMember("m1", 1, 256, ClusterMember.Role.CLIENT, 1, 0)).hasMessageContaining("other than its own");
        assertThatThrownBy(() -> new ClusterMember("m2", 2, 256, ClusterMember.Role.CLIENT, 1, 12)).hasMessageContaining("multiple of 8");
        assertThatThrownBy(() -> new ClusterMember("m1", 1, 256, ClusterMember.Role.SERVER, 0, 8)).hasMessageContaining("for a client only");
        assertThatThrownBy(() -> ClusterMember.starOf(255, 256, 0)).hasMessageContaining("expected 1 to 254, actual 255");
    }

    @Test
    void parsesEveryLineTcpstreamPrints() {
        assertThat(TcpStreamLine.parse("tcpstream server listening 7000")).contains(new TcpStreamLine.Listening(7000));
        assertThat(TcpStreamLine.parse("tcpstream client connected 10.0.3.1:7000")).contains(new TcpStreamLine.Connected("10.0.3.1:7000"));
        assertThat(TcpStreamLine.parse("tcpstream tx tick 3 123456789 65536"))
                .contains(new TcpStreamLine.Tick(TcpStreamLine.Direction.TX, 3, 123456789, 65536, 0, ""));
        assertThat(TcpStreamLine.parse("tcpstream rx tick 4 99 4096 2 10.0.3.2"))
                .contains(new TcpStreamLine.Tick(TcpStreamLine.Direction.RX, 4, 99, 4096, 2, "10.0.3.2"));
        assertThat(TcpStreamLine.parse("tcpstream tx done 104857600 4c62a0daae7028cf"))
                .contains(new TcpStreamLine.Done(TcpStreamLine.Direction.TX, 104857600, 0, "4c62a0daae7028cf", ""));
        assertThat(TcpStreamLine.parse("tcpstream rx done 104857600 0 4c62a0daae7028cf 10.0.3.2"))
                .contains(new TcpStreamLine.Done(TcpStreamLine.Direction.RX, 104857600, 0, "4c62a0daae7028cf", "10.0.3.2"));
        assertThat(TcpStreamLine.parse("tcpstream error write: Connection reset by peer"))
                .contains(new TcpStreamLine.Failed("tcpstream error write: Connection reset by peer"));
        // Other lines, and tcpstream lines cut short or garbled (the console shares ttyS0 with the kernel), mean nothing.
        assertThat(TcpStreamLine.parse("thaw-init net eth0 10.0.3.1/24")).isEmpty();
        assertThat(TcpStreamLine.parse("tcpstream client waiting for 10.0.3.1:7000 (Connection refused)")).isEmpty();
        assertThat(TcpStreamLine.parse("tcpstream rx tick 4 99 40x6 0 10.0.3.2")).isEmpty();
        assertThat(TcpStreamLine.parse("tcpstream tx tick 3 1234")).isEmpty();
        assertThat(TcpStreamLine.parse("tcpstream")).isEmpty();
    }
}
