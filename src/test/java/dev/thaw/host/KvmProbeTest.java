package dev.thaw.host;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.testing.TestHost;
import dev.thaw.util.ThawPaths;
import org.junit.jupiter.api.Test;

class KvmProbeTest {
    @Test
    void bootSectorIsAValidMbr() {
        byte[] sector = KvmProbe.bootSector();
        assertThat(sector).hasSize(512);
        assertThat(sector[510]).isEqualTo((byte) 0x55);
        assertThat(sector[511]).isEqualTo((byte) 0xAA);
    }

    @Test
    void verdictIsCachedAndConsistent() {
        KvmProbe.Verdict first = TestHost.report().kvm().orElseThrow();
        KvmProbe.Verdict again = KvmProbe.probe(HostDoctor.QEMU_BINARY, TestHost.qemu(), TestHost.guest(), ThawPaths.cacheDir());
        assertThat(again.fromCache()).isTrue();
        assertThat(again.usable()).isEqualTo(first.usable());
        assertThat(again.reason()).isEqualTo(first.reason()).isNotBlank();
        assertThat(TestHost.accel()).isEqualTo(first.accel());
    }
}
