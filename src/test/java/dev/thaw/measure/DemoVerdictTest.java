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
        return firstPass(eager, loadvm, mappedFile, ws, 0.9);
    }

    private static List<Demo.ModeResult> firstPass(Double eager, Double loadvm, Double mappedFile, Double ws, Double thawMapped) {
        return List.of(run(RestoreMethod.QEMU_EAGER, eager), run(RestoreMethod.QEMU_LOADVM, loadvm),
                run(RestoreMethod.MAPPED_FILE, mappedFile), run(RestoreMethod.THAW_EAGER, 0.05), run(RestoreMethod.THAW_LAZY, 0.04),
                run(RestoreMethod.WS_TRACE, ws), run(RestoreMethod.WS_TRACE_MAPPED, thawMapped));
    }

    @Test
    void repeatsWsAndTheBaselinesWithinTheMarginOrSooner() {
        // mapped file sooner than ws, loadvm 0.1 s later (within 0.15), eager 0.5 s later; Thaw eager and lazy are never
        // repeated (however soon), Thaw mapped only when close
        assertThat(DemoVerdict.toRepeat(firstPass(0.7, 0.3, 0.12, 0.2), 0.15))
                .containsExactly(RestoreMethod.WS_TRACE, RestoreMethod.QEMU_LOADVM, RestoreMethod.MAPPED_FILE);
    }

    @Test
    void nothingIsRepeatedWhenEveryBaselineIsClearlyLater() {
        assertThat(DemoVerdict.toRepeat(firstPass(0.9, 0.5, 0.36, 0.2), 0.15)).isEmpty();
    }

    @Test
    void aWsThatNeverBecameResponsiveRepeatsEveryBaseline() {
        assertThat(DemoVerdict.toRepeat(firstPass(null, 0.5, 0.3, null, null), 0.15)).containsExactly(RestoreMethod.WS_TRACE,
                RestoreMethod.WS_TRACE_MAPPED, RestoreMethod.QEMU_EAGER, RestoreMethod.QEMU_LOADVM, RestoreMethod.MAPPED_FILE);
        // ...while a baseline that never did is not close to a ws that did
        assertThat(DemoVerdict.toRepeat(firstPass(null, 0.9, 0.3, 0.2), 0.15)).containsExactly(RestoreMethod.WS_TRACE, RestoreMethod.MAPPED_FILE);
    }

    /** Thaw mapped close to ws runs again, and the baselines are measured against the sooner of the two. */
    @Test
    void thawMappedCloseToWsRunsAgainAndTheBaselinesAreMeasuredFromTheSoonerThawEngine() {
        assertThat(DemoVerdict.toRepeat(firstPass(0.7, 0.3, 0.12, 0.2, 0.06), 0.15))
                .containsExactly(RestoreMethod.WS_TRACE, RestoreMethod.WS_TRACE_MAPPED, RestoreMethod.MAPPED_FILE);
        assertThat(DemoVerdict.toRepeat(firstPass(0.7, 0.3, 0.12, 0.2, 0.3), 0.15))
                .containsExactly(RestoreMethod.WS_TRACE, RestoreMethod.WS_TRACE_MAPPED, RestoreMethod.QEMU_LOADVM, RestoreMethod.MAPPED_FILE);
        // every baseline clearly later than both: nothing again
        assertThat(DemoVerdict.toRepeat(firstPass(0.9, 0.5, 0.4, 0.2, 0.1), 0.15)).isEmpty();
    }

    /** A mapped engine sooner than ws is judged in a second sentence; ws's own verdict stays as it is. */
    @Test
    void aSoonerMappedEngineIsJudgedBesideWsNotInsteadOfIt() {
        List<Demo.ModeResult> all = new ArrayList<>(firstPass(0.9, 0.5, 0.13, 0.17, 0.08));
        all.add(run(RestoreMethod.WS_TRACE, 0.19));
        all.add(run(RestoreMethod.WS_TRACE_MAPPED, 0.07));
        all.add(run(RestoreMethod.MAPPED_FILE, 0.12));
        all.add(run(RestoreMethod.MAPPED_FILE, 0.15));
        all.add(run(RestoreMethod.WS_TRACE_MAPPED, 0.09));
        all.add(run(RestoreMethod.WS_TRACE, 0.16));
        String verdict = DemoVerdict.verdict(all);
        assertThat(verdict).startsWith("verdict: Thaw ws NOT sooner than every baseline: mapped-file responsive after 0.13 s (median of 3),"
                        + " ws after 0.17 s (median of 3) (ws sooner in 0 of 3 runs paired in order); Thaw's mapped engine")
                .endsWith(": Thaw mapped responsive after 0.08 s (median of 3), sooner than every baseline; the soonest, mapped-file,"
                        + " after 0.13 s (median of 3) (sooner in 3 of 3 runs paired in order)");
        // a mapped engine run once (not close) or not sooner than ws adds nothing
        assertThat(DemoVerdict.verdict(firstPass(0.9, 0.5, 0.13, 0.17, 0.08))).doesNotContain("mapped engine");
        List<Demo.ModeResult> later = new ArrayList<>(firstPass(0.9, 0.5, 0.3, 0.17, 0.2));
        later.add(run(RestoreMethod.WS_TRACE_MAPPED, 0.2));
        assertThat(DemoVerdict.verdict(later)).doesNotContain("mapped engine");
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
