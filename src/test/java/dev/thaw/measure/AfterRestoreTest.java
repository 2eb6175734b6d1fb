package dev.thaw.measure;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.thaw.testing.Seeds;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

class AfterRestoreTest {
    @Test
    void theMmuCurveIsTheLowestMeanOfEveryWindow() {
        List<Double> curve = AfterRestore.mmuCurve(List.of(0.0, 0.0, 1.0, 1.0, 0.5, 1.0));
        assertThat(curve).hasSize(6);
        assertThat(curve.get(0)).isZero();
        assertThat(curve.get(1)).isZero();
        assertThat(curve.get(2)).isCloseTo(1 / 3.0, within(1e-12));
        assertThat(curve.get(3)).isCloseTo(0.5, within(1e-12));
        assertThat(curve.get(5)).isCloseTo(3.5 / 6, within(1e-12));
    }

    @Test
    void theMmuCurveMatchesABruteForceMinimum() {
        Random rnd = Seeds.random("AfterRestoreTest.theMmuCurveMatchesABruteForceMinimum");
        List<Double> steps = new ArrayList<>();
        for (int i = 0; i < 40; i++) steps.add(rnd.nextDouble() * 1.2);
        List<Double> curve = AfterRestore.mmuCurve(steps);
        for (int k = 1; k <= steps.size(); k++) {
            double min = Double.MAX_VALUE;
            for (int i = 0; i + k <= steps.size(); i++) {
                double sum = 0;
                for (int j = i; j < i + k; j++) sum += steps.get(j);
                min = Math.min(min, sum / k);
            }
            assertThat(curve.get(k - 1)).as("window of %d steps (seed printed above)", k).isCloseTo(min, within(1e-9));
        }
    }
}
