package dev.thaw.host;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

class PageTouchProbeTest {
    @Test
    void timesBothKindsOfPageAndSaysWhich() {
        PageTouchProbe.Result r = PageTouchProbe.measure(8L << 20);
        System.err.println("page touch probe: " + r.describe());
        assertThat(r.pageCount()).isEqualTo(2048);
        assertThat(r.fourKiBMicrosPerPage()).isPositive().isFinite();
        assertThat(r.hugeMicrosPerPage()).isPositive().isFinite();
        assertThat(r.describe()).contains("4 KiB page").contains("2048 pages");
    }

    @Test
    void theVerdictNeedsBothACostlyTouchAndAHugePageThatIsNot() {
        assertThat(new PageTouchProbe.Result(1, 9.0, 0.05).fourKiBCostly()).isTrue();
        assertThat(new PageTouchProbe.Result(1, 0.3, 0.02).fourKiBCostly()).as("bare metal").isFalse();
        assertThat(new PageTouchProbe.Result(1, 9.0, 5.0).fourKiBCostly()).as("huge pages as costly: no remedy").isFalse();
    }

    @Test
    void aSizeNotInWholeHugePagesIsRefused() {
        assertThatThrownBy(() -> PageTouchProbe.measure(4096)).hasMessageContaining("expected a positive multiple of 2 MiB, actual 4096");
    }
}
