package dev.thaw.measure;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.cluster.checkpoint.Strategy;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The demo's options are checked where they become its configuration, each with what was expected and what was given. */
class ClusterDemoConfigTest {
    private static ClusterDemo.Config config(int members, long memoryMiB, int repetitions, long warmUpSeconds, long beforeSeconds,
                                             long observeSeconds, List<Strategy> strategies) {
        return new ClusterDemo.Config(members, memoryMiB, repetitions, Duration.ofSeconds(warmUpSeconds), Duration.ofSeconds(beforeSeconds),
                Duration.ofSeconds(observeSeconds), strategies, null);
    }

    private static final List<Strategy> ALL = List.of(Strategy.INDEPENDENT, Strategy.RESTORE_LINE, Strategy.HELD);

    @Test
    void theSmallestAndTheDefaultsAreTaken() {
        assertThat(config(2, 192, 1, 0, 1, 2, List.of(Strategy.HELD)).warmUp()).isEqualTo(Duration.ZERO);
        assertThat(config(254, 192, 1, 0, 1, 2, List.of(Strategy.HELD)).members()).isEqualTo(254);
        assertThat(config(3, 192, 2, 3, 5, 10, ALL).strategies()).containsExactlyElementsOf(ALL);
    }

    @Test
    void everyBadOptionIsNamedWithWhatWasExpectedAndGiven() {
        assertThatThrownBy(() -> config(1, 192, 1, 3, 5, 10, ALL))
                .hasMessage("--members: expected 2 (a server and a client) to 254, actual 1");
        assertThatThrownBy(() -> config(255, 192, 1, 3, 5, 10, ALL))
                .hasMessage("--members: expected 2 (a server and a client) to 254, actual 255");
        assertThatThrownBy(() -> config(3, 191, 1, 3, 5, 10, ALL))
                .hasMessage("--memory-mib: expected at least 192 (a cluster member's least), actual 191");
        assertThatThrownBy(() -> config(3, 192, 0, 3, 5, 10, ALL)).hasMessage("--repeat: expected at least 1, actual 0");
        assertThatThrownBy(() -> config(3, 192, 1, -1, 5, 10, ALL)).hasMessage("--warm-up-seconds: expected 0 or more, actual -1");
        assertThatThrownBy(() -> config(3, 192, 1, 3, 0, 10, ALL)).hasMessage("--before-seconds: expected at least 1, actual 0");
        assertThatThrownBy(() -> config(3, 192, 1, 3, 5, 1, ALL))
                .hasMessage("--observe-seconds: expected at least 2 (TTR's 1 s window must fit), actual 1");
        assertThatThrownBy(() -> config(3, 192, 1, 3, 5, 10, List.of())).hasMessage("--strategies: expected at least one, actual none");
    }

    @Test
    void memholdGrowsEachMemberItNamesAndProbesAreZeroOrAtLeastASecond() {
        ClusterDemo.Config c = new ClusterDemo.Config(3, 192, 1, Duration.ZERO, Duration.ofSeconds(1), Duration.ofSeconds(2), ALL, null,
                List.of(1024L, 0L), Duration.ofSeconds(3));
        assertThat(c.cluster()).extracting(dev.thaw.guest.ClusterMember::memoryMiB).containsExactly(1216L, 192L, 192L);
        assertThat(c.cluster()).extracting(dev.thaw.guest.ClusterMember::memholdMiB).containsExactly(1024L, 0L, 0L);
        assertThat(config(3, 192, 1, 3, 5, 10, ALL).probeLimit()).isZero();
        assertThatThrownBy(() -> new ClusterDemo.Config(2, 192, 1, Duration.ZERO, Duration.ofSeconds(1), Duration.ofSeconds(2), ALL, null,
                List.of(1L, 2L, 3L), Duration.ZERO)).hasMessage("--memhold-mib: expected at most one size per member (2), actual 3");
        assertThatThrownBy(() -> new ClusterDemo.Config(2, 192, 1, Duration.ZERO, Duration.ofSeconds(1), Duration.ofSeconds(2), ALL, null,
                List.of(-1L), Duration.ZERO)).hasMessage("--memhold-mib: expected sizes of 0 or more MiB, actual -1");
        assertThatThrownBy(() -> new ClusterDemo.Config(2, 192, 1, Duration.ZERO, Duration.ofSeconds(1), Duration.ofSeconds(2), ALL, null,
                List.of(), Duration.ofMillis(500))).hasMessage("--probe-seconds: expected 0 (no estimate) or at least 1, actual 0.5");
    }
}
