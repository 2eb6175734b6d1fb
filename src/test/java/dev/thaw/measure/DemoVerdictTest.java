package dev.thaw.measure;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class DemoVerdictTest {
    private static Demo.ModeResult run(RestoreMethod m, Double stallTtrSeconds) {
        return new Demo.ModeResult(m, m.shortName(), 0.1, 0.2, null, null, null, stallTtrSeconds, 0.5, 1.0, "00", true);
    }

    private static List<Demo.ModeResult> firstPass(Double eager, Double loadvm, Double mappedFile, Double ws) {
        return List.of(run(RestoreMethod.QEMU_EAGER, eager), run(RestoreMethod.QEMU_LOADVM, loadvm),
                run(RestoreMethod.MAPPED_FILE, mappedFile), run(RestoreMethod.THAW_EAGER, 0.7), run(RestoreMethod.THAW_LAZY, 0.4),
                run(RestoreMethod.WS_TRACE, ws), run(RestoreMethod.WS_TRACE_MAPPED, 0.05));
    }

    @Test
    void repeatsWsAndTheBaselinesWithinTheMarginOrSooner() {
        // mapped file sooner than ws, loadvm 0.1 s later (within 0.15), eager 0.5 s later; Thaw's other methods are never repeated
        assertThat(DemoVerdict.toRepeat(firstPass(0.7, 0.3, 0.12, 0.2), 0.15))
                .containsExactly(RestoreMethod.WS_TRACE, RestoreMethod.QEMU_LOADVM, RestoreMethod.MAPPED_FILE);
    }

    @Test
    void nothingIsRepeatedWhenEveryBaselineIsClearlyLater() {
        assertThat(DemoVerdict.toRepeat(firstPass(0.9, 0.5, 0.36, 0.2), 0.15)).isEmpty();
    }

    @Test
    void aWsThatNeverBecameResponsiveRepeatsEveryBaseline() {
        assertThat(DemoVerdict.toRepeat(firstPass(null, 0.5, 0.3, null), 0.15))
                .containsExactly(RestoreMethod.WS_TRACE, RestoreMethod.QEMU_EAGER, RestoreMethod.QEMU_LOADVM, RestoreMethod.MAPPED_FILE);
        // ...while a baseline that never did is not close to a ws that did
        assertThat(DemoVerdict.toRepeat(firstPass(null, 0.9, 0.3, 0.2), 0.15)).containsExactly(RestoreMethod.WS_TRACE, RestoreMethod.MAPPED_FILE);
    }

    @Test
    void theMedianTreatsARunThatNeverBecameResponsiveAsLatest() {
        assertThat(new DemoVerdict.Runs(RestoreMethod.MAPPED_FILE, java.util.Arrays.asList(0.3, null, 0.1)).median()).isEqualTo(0.3);
        assertThat(new DemoVerdict.Runs(RestoreMethod.MAPPED_FILE, java.util.Arrays.asList(0.3, null)).median()).isInfinite();
        assertThat(new DemoVerdict.Runs(RestoreMethod.MAPPED_FILE, List.of(0.4, 0.2)).median()).isCloseTo(0.3, org.assertj.core.data.Offset.offset(1e-9));
    }

    /** Found by DemoCommandTest under TCG: QEMU eager's guest never became responsive in 2 s, and the table failed on its null. */
    @Test
    void aMethodThatNeverBecameResponsiveIsListedNotAFailure() {
        List<Demo.ModeResult> all = firstPass(null, 0.5, 0.3, 0.2);
        assertThat(DemoVerdict.runs(all).getFirst().stallTtrSeconds()).containsExactly((Double) null);
        assertThat(DemoVerdict.verdict(all)).startsWith("verdict: Thaw ws responsive after 0.20 s");
        assertThat(Demo.table(all, java.time.Duration.ofSeconds(2))).contains("> 2 s");
    }

    @Test
    void theVerdictJudgesByMediansAndCountsThePairs() {
        List<Demo.ModeResult> all = new ArrayList<>(firstPass(0.9, 0.5, 0.12, 0.2)); // ws lost its first run to the mapped file
        all.add(run(RestoreMethod.MAPPED_FILE, 0.41));
        all.add(run(RestoreMethod.WS_TRACE, 0.21));
        all.add(run(RestoreMethod.WS_TRACE, 0.18));
        all.add(run(RestoreMethod.MAPPED_FILE, 0.35));
        String verdict = DemoVerdict.verdict(all);
        assertThat(verdict).startsWith("verdict: Thaw ws responsive after 0.20 s (median of 3), sooner than every baseline;")
                .contains("the soonest, mapped-file, after 0.35 s (median of 3)").endsWith("(sooner in 2 of 3 runs paired in order)");
        assertThat(DemoVerdict.runs(all)).extracting(DemoVerdict.Runs::method).startsWith(RestoreMethod.QEMU_EAGER, RestoreMethod.QEMU_LOADVM,
                RestoreMethod.MAPPED_FILE);
    }

    @Test
    void mediansWithinAHundredthAreATie() {
        List<Demo.ModeResult> all = new ArrayList<>(firstPass(0.9, 0.5, 0.12, 0.15));
        all.add(run(RestoreMethod.MAPPED_FILE, 0.212));
        all.add(run(RestoreMethod.WS_TRACE, 0.209));
        all.add(run(RestoreMethod.WS_TRACE, 0.21));
        all.add(run(RestoreMethod.MAPPED_FILE, 0.24));
        assertThat(DemoVerdict.verdict(all)).startsWith("verdict: Thaw ws tied with the soonest baseline, mapped-file:")
                .endsWith("(ws sooner in 2 of 3 runs paired in order)");
    }

    @Test
    void theVerdictSaysSoWhenWsIsNotSooner() {
        List<Demo.ModeResult> all = new ArrayList<>(firstPass(0.9, 0.5, 0.12, 0.2));
        all.add(run(RestoreMethod.MAPPED_FILE, 0.14));
        all.add(run(RestoreMethod.WS_TRACE, 0.22));
        assertThat(DemoVerdict.verdict(all)).isEqualTo("verdict: Thaw ws NOT sooner than every baseline: mapped-file responsive after"
                + " 0.13 s (median of 2), ws after 0.21 s (median of 2) (ws sooner in 0 of 2 runs paired in order)");
        assertThat(DemoVerdict.verdict(List.of(run(RestoreMethod.QEMU_EAGER, 0.9)))).contains("none");
    }
}
