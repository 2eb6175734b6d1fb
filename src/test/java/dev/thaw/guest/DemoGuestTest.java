package dev.thaw.guest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

class DemoGuestTest {
    @Test
    void leavesTheKernelRoom() {
        assertThatThrownBy(() -> new DemoGuest(1024, 900, 64))
                .hasMessageContaining("expected T <= RAM - 300 MiB = 724 MiB")
                .hasMessageContaining("actual T=900 MiB");
    }

    @Test
    void workingSetMustFitTheRegion() {
        assertThatThrownBy(() -> new DemoGuest(1024, 100, 200)).hasMessageContaining("expected 0 < W <= T");
    }

    @Test
    void commandLineCarriesTheShape() {
        assertThat(new DemoGuest(1024, 700, 64).kernelCommandLine())
                .contains("console=ttyS0", "wsbench.total_mib=700", "wsbench.ws_mib=64", "wsbench.layout=contiguous");
        assertThat(new DemoGuest(1024, 700, 64, DemoGuest.Layout.SCATTERED).kernelCommandLine()).contains("wsbench.layout=scattered");
    }

    @Test
    void layoutsAreNamedAsWsbenchReadsThem() {
        assertThat(DemoGuest.Layout.parse("scattered")).isEqualTo(DemoGuest.Layout.SCATTERED);
        assertThatThrownBy(() -> DemoGuest.Layout.parse("random"))
                .hasMessageContaining("expected one of [contiguous, scattered], actual 'random'");
    }
}
