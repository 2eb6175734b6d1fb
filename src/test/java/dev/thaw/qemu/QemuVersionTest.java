package dev.thaw.qemu;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

class QemuVersionTest {
    @Test
    void parsesDebiansVersionLine() {
        QemuVersion v = QemuVersion.parse("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright (c) 2003-2022");
        assertThat(v.major()).isEqualTo(7);
        assertThat(v.minor()).isEqualTo(2);
        assertThat(v.micro()).isEqualTo(22);
        assertThat(v.i440fxMachineType()).isEqualTo("pc-i440fx-7.2");
        assertThat(v.atLeast(QemuVersion.MINIMUM)).isTrue();
    }

    @Test
    void ordersVersions() {
        assertThat(QemuVersion.parse("QEMU emulator version 7.1.0").atLeast(QemuVersion.MINIMUM)).isFalse();
        assertThat(QemuVersion.parse("QEMU emulator version 10.0").atLeast(QemuVersion.MINIMUM)).isTrue();
    }

    @Test
    void rejectsOtherOutput() {
        assertThatThrownBy(() -> QemuVersion.parse("bash: qemu: not found"))
                .hasMessageContaining("expected 'QEMU emulator version X.Y.Z'")
                .hasMessageContaining("actual 'bash: qemu: not found'");
    }
}
