package dev.thaw.guest;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.qemu.ConsoleLine;
import org.junit.jupiter.api.Test;

class WsbenchTickTest {
    @Test
    void parsesATickAnywhereInTheLine() {
        assertThat(WsbenchTick.parse(new ConsoleLine(7, "[  1.2] random: crng init done wsbench tick 12 3400000000 25000")))
                .contains(new WsbenchTick(7, 12, 3_400_000_000L, 25_000, WsbenchTick.NOT_REPORTED));
    }

    @Test
    void readsTheStalledTimeWhereTheGuestReportsIt() {
        assertThat(WsbenchTick.parse(new ConsoleLine(7, "wsbench tick 12 3400000000 25000 61000")))
                .contains(new WsbenchTick(7, 12, 3_400_000_000L, 25_000, 61_000));
        assertThat(WsbenchTick.stallsReported(java.util.List.of(new WsbenchTick(1, 1, 1, 1, 0), new WsbenchTick(2, 2, 2, 2, 5)))).isTrue();
        assertThat(WsbenchTick.stallsReported(java.util.List.of(new WsbenchTick(1, 1, 1, 1, 0), new WsbenchTick(2, 2, 2, 2)))).isFalse();
    }

    @Test
    void ignoresOtherLines() {
        assertThat(WsbenchTick.parse(new ConsoleLine(1, "wsbench ready fill_ms=120"))).isEmpty();
        assertThat(WsbenchTick.parse(new ConsoleLine(1, "wsbench tick x 1 2"))).isEmpty();
    }
}
