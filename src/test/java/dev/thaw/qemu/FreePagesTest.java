package dev.thaw.qemu;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.List;
import org.junit.jupiter.api.Test;

/** The balloon's free-page options: what Thaw's guests get, and what a recorded configuration says. */
class FreePagesTest {
    @Test
    void eachChoiceIsAdmittedByTheAllowlistAndReadBackFromIt() {
        for (FreePages choice : List.of(FreePages.NONE, FreePages.REPORTING, FreePages.REPORTING_AND_HINT)) {
            assertThat(FreePages.of(QemuOption.parse(choice.arguments()))).as(choice.describe()).isEqualTo(choice);
        }
        assertThat(FreePages.NONE.arguments()).isEmpty();
        assertThat(FreePages.REPORTING.arguments()).containsExactly("-device", "virtio-balloon-pci,free-page-reporting=on");
        // QEMU refuses free-page-hint=on without an iothread.
        assertThat(FreePages.REPORTING_AND_HINT.arguments()).containsExactly("-object", "iothread,id=thaw-balloon-io",
                "-device", "virtio-balloon-pci,free-page-reporting=on,free-page-hint=on,iothread=thaw-balloon-io");
    }

    @Test
    void readsWhatAForeignGuestHas() {
        assertThat(FreePages.of(QemuOption.parse(List.of("-device", "virtio-balloon-pci,addr=06"))))
                .isEqualTo(new FreePages(true, false, false));
        assertThat(FreePages.of(QemuOption.parse(List.of("-device", "virtio-balloon-pci,addr=06,free-page-reporting=off"))).describe())
                .isEqualTo("balloon without free-page reporting or hinting");
        assertThat(FreePages.of(QemuOption.parse(List.of("-object", "iothread,id=io0", "-device",
                "virtio-balloon-pci,free-page-hint=on,iothread=io0")))).isEqualTo(new FreePages(true, false, true));
        assertThat(FreePages.of(QemuOption.parse(List.of("-device", "vmgenid"))).describe()).isEqualTo("no balloon");
    }

    @Test
    void readsAManifestsRecordedConfiguration() throws Exception {
        com.fasterxml.jackson.databind.ObjectMapper json = new com.fasterxml.jackson.databind.ObjectMapper();
        assertThat(FreePages.ofRecorded(json.readTree("{\"extraArgs\":[\"-device\",\"virtio-balloon-pci,free-page-reporting=on\"]}")))
                .contains(FreePages.REPORTING);
        assertThat(FreePages.ofRecorded(json.readTree("{\"extraArgs\":[]}"))).contains(FreePages.NONE);
        assertThat(FreePages.ofRecorded(null)).isEmpty();
        assertThat(FreePages.ofRecorded(json.readTree("null"))).isEmpty();
        assertThat(FreePages.ofRecorded(json.readTree("{\"extraArgs\":[\"-drive\",\"file=/x\"]}"))).as("refused options").isEmpty();
    }

    @Test
    void parsesTheChoicesAndRefusesOthers() {
        assertThat(FreePages.parse("none")).isEqualTo(FreePages.NONE);
        assertThat(FreePages.parse("report")).isEqualTo(FreePages.REPORTING);
        assertThat(FreePages.parse(" Report,Hint ")).isEqualTo(FreePages.REPORTING_AND_HINT);
        assertThatThrownBy(() -> FreePages.parse("hint")).hasMessage("free pages: expected none, report or report,hint, actual 'hint'");
        assertThatThrownBy(() -> new FreePages(false, true, false)).hasMessageContaining("expected a balloon");
    }

    @Test
    void theAllowlistChecksTheBalloonsAndTheIothreadsProperties() {
        assertThatThrownBy(() -> QemuOption.parse(List.of("-device", "virtio-balloon-pci,free-page-reporting=yes")))
                .hasMessageContaining("expected free-page-reporting to match on|off, actual 'yes'");
        assertThatThrownBy(() -> QemuOption.parse(List.of("-object", "iothread"))).hasMessageContaining("expected the properties [id]");
        assertThatThrownBy(() -> QemuOption.parse(List.of("-object", "iothread,id=io0,poll-max-ns=0")))
                .hasMessageContaining("expected key=value with a key among [id]");
        assertThatThrownBy(() -> QemuOption.parse(List.of("-object", "memory-backend-file,id=m")))
                .hasMessageContaining("expected one of [iothread] as its type");
    }
}
