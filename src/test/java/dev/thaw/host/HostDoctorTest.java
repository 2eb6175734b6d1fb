package dev.thaw.host;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.testing.TestHost;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;

class HostDoctorTest {
    @Test
    void hostIsReadyAfterTheDoctor() {
        HostDoctor.Report report = TestHost.report();
        assertThat(report.ready()).isTrue();
        assertThat(report.checks()).extracting(HostDoctor.Check::name)
                .contains("qemu", "busybox (static)", "cpio", "gcc", "userfaultfd");
        assertThat(report.qemuVersion()).hasValueSatisfying(v -> assertThat(v.atLeast(dev.thaw.qemu.QemuVersion.MINIMUM)).isTrue());
        assertThat(report.render()).contains("accelerator");
    }

    @Test
    void aRestoreChecksOnlyQemuAndUserfaultfd() {
        // Neither the demo guest nor the KVM probe: a restore's guest runs as its image's saved configuration says.
        HostDoctor.Report report = HostDoctor.ensureCanRestore(System.err);
        assertThat(report.checks()).extracting(HostDoctor.Check::name).containsExactly("qemu", "userfaultfd");
        assertThat(report.guest()).isEmpty();
        assertThat(report.kvm()).isEmpty();
    }

    @Test
    void remedyNamesTheExactPackagesToInstall() {
        HostDoctor.Report broken = new HostDoctor.Report(List.of(
                new HostDoctor.Check("qemu", false, "qemu-system-x86_64 not found", "qemu-system-x86"),
                new HostDoctor.Check("cpio", false, "not found on PATH", "cpio"),
                new HostDoctor.Check("userfaultfd", false, "run sysctl", null)),
                List.of(), Optional.empty(), Optional.empty(), Optional.empty(), false, "available");
        assertThat(broken.ready()).isFalse();
        assertThat(broken.remedy()).contains("apt-get install -y --no-install-recommends qemu-system-x86 cpio")
                .contains("userfaultfd: run sysctl");
        assertThat(new HostDoctor.HostNotReadyException(broken)).hasMessageContaining("cannot run Thaw");
    }
}
