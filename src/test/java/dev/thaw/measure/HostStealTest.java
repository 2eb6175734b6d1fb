package dev.thaw.measure;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.List;
import org.junit.jupiter.api.Test;

class HostStealTest {
    @Test
    void parsesTheFirstLineAndTakesTheShareBetweenTwoReadings() {
        HostSteal.Ticks a = HostSteal.parse(List.of("cpu  100 0 50 800 10 0 5 20 7 0", "cpu0 50 0 25 400 5 0 2 10 3 0"));
        assertThat(a).isEqualTo(new HostSteal.Ticks(20, 985)); // guest (7) is part of user already
        HostSteal.Ticks b = new HostSteal.Ticks(30, 1085);
        assertThat(b.shareSince(a)).isEqualTo(0.1);
        assertThat(a.shareSince(b)).as("no time passed").isEqualTo(-1);
        assertThat(b.shareSince(new HostSteal.Ticks(-1, -1))).isEqualTo(-1);
    }

    @Test
    void refusesAStatWithoutTheCpuLine() {
        assertThatThrownBy(() -> HostSteal.parse(List.of("intr 1 2 3"))).hasMessageContaining("expected a first line 'cpu'")
                .hasMessageContaining("actual 'intr 1 2 3'");
        assertThat(HostSteal.now().total()).as("this Linux host says").isPositive();
    }
}
