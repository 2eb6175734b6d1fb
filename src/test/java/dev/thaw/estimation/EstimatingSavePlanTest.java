package dev.thaw.estimation;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.estimate.Estimator;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** What {@code thaw save --estimator} refuses before anything touches the VM. */
class EstimatingSavePlanTest {
    private static EstimatingSave.Plan plan(Set<Estimator> estimators, int traceSeconds) {
        return new EstimatingSave.Plan(estimators, Duration.ofSeconds(10), Duration.ofSeconds(traceSeconds), Duration.ofSeconds(5),
                Duration.ofMillis(500));
    }

    @Test
    void dirtyAndTraceCombine() {
        EstimatingSave.Plan p = plan(EstimatingSave.Plan.parse(List.of("dirty", " trace")), 5);
        assertThat(p.estimators()).containsExactlyInAnyOrder(Estimator.DIRTY, Estimator.TRACE);
        assertThat(p.traces()).isTrue();
    }

    @Test
    void refusalsNameTheOption() {
        assertThatThrownBy(() -> EstimatingSave.Plan.parse(List.of("none", "dirty"))).hasMessageContaining("'none' excludes the others")
                .hasMessageContaining("[none, dirty]");
        assertThatThrownBy(() -> plan(Set.of(Estimator.LEARNED), 5)).hasMessageContaining("--estimator learned");
        assertThatThrownBy(() -> plan(Set.of(Estimator.TRACE), 0)).hasMessageContaining("--trace-seconds: expected >= 1, actual 0");
        assertThatThrownBy(() -> EstimatingSave.Plan.parse(List.of("lru"))).hasMessageContaining("actual 'lru'");
    }
}
