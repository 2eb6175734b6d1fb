package dev.thaw.guest;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.qemu.ConsoleLine;
import org.junit.jupiter.api.Test;

class WsbenchTickTest {
    @Test
    void parsesATickAnywhereInTheLine() {
        assertThat(WsbenchTick.parse(new ConsoleLine(7, "[  1.2] random: crng init done wsbench tick 12 3400000000 25000")))
                .contains(new WsbenchTick(7, 12, 3_400_000_000L, 25_000));
    }

    @Test
    void ignoresOtherLines() {
        assertThat(WsbenchTick.parse(new ConsoleLine(1, "wsbench ready fill_ms=120"))).isEmpty();
        assertThat(WsbenchTick.parse(new ConsoleLine(1, "wsbench tick x 1 2"))).isEmpty();
    }
}
