package dev.thaw.measure;

import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Whether the demo shows Thaw's ws restore responsive sooner than every restore a user already has, by the stall TTR. One run
 * per method cannot order methods 0.03-0.15 s apart on this host (the ninth session's demos put the mapped file at 0.12, 0.30
 * and 0.14 s), so the demo runs ws and every baseline that came close to it again, interleaved, and judges by the medians.
 * Thaw's other working-set engine, the kernel's paging of the image's RAM file with the working set read ahead (mapped, which
 * {@code restore --mode auto} picks for an image with its RAM file), is run again and judged too when it came close: on a
 * host where 4 KiB faults into fresh guest RAM cost more than minor faults on the page cache it is the sooner of the two
 * (twenty-second session). Pure: no QEMU.
 */
public final class DemoVerdict {
    /** What a user already has: QEMU's own restores and the kernel's demand paging of a mapped RAM file. */
    static final Set<RestoreMethod> BASELINES = EnumSet.of(RestoreMethod.QEMU_EAGER, RestoreMethod.QEMU_LOADVM, RestoreMethod.MAPPED_FILE);
    static final RestoreMethod THAW = RestoreMethod.WS_TRACE;
    /** Thaw's working set through the mapped engine: judged beside ws, never instead of it. */
    static final RestoreMethod THAW_MAPPED = RestoreMethod.WS_TRACE_MAPPED;
    /** Medians closer than this are a tie: the table prints hundredths of a second. */
    static final double TIE_SECONDS = 0.01;

    private DemoVerdict() {}

    /**
     * The methods to run again after the first pass: ws, Thaw mapped when it was not more than {@code marginSeconds} after ws,
     * and every baseline whose stall TTR was not more than {@code marginSeconds} after the sooner of the two (a restore that
     * never became responsive is infinitely late); none when ws was not run or nothing came close.
     */
    public static List<RestoreMethod> toRepeat(List<Demo.ModeResult> firstPass, double marginSeconds) {
        Demo.ModeResult ws = firstPass.stream().filter(m -> m.method() == THAW).findFirst().orElse(null);
        if (ws == null) return List.of();
        double wsSeconds = seconds(ws);
        Demo.ModeResult mapped = firstPass.stream().filter(m -> m.method() == THAW_MAPPED).findFirst().orElse(null);
        boolean mappedClose = mapped != null && !(seconds(mapped) > wsSeconds + marginSeconds);
        double thawSeconds = mappedClose ? Math.min(wsSeconds, seconds(mapped)) : wsSeconds;
        List<RestoreMethod> again = new ArrayList<>();
        again.add(THAW);
        if (mappedClose) again.add(THAW_MAPPED);
        int thawCount = again.size();
        for (Demo.ModeResult m : firstPass) {
            if (BASELINES.contains(m.method()) && !(seconds(m) > thawSeconds + marginSeconds)) again.add(m.method());
        }
        return again.size() == thawCount ? List.of() : List.copyOf(again);
    }

    /** A method's stall TTR over its runs: the median, and each run in order (null: not responsive in the observation). */
    public record Runs(RestoreMethod method, List<Double> stallTtrSeconds) {
        public double median() {
            List<Double> sorted = stallTtrSeconds.stream().map(s -> s == null ? Double.POSITIVE_INFINITY : s).sorted().toList();
            int n = sorted.size();
            return n % 2 == 1 ? sorted.get(n / 2) : (sorted.get(n / 2 - 1) + sorted.get(n / 2)) / 2;
        }
    }

    /** Every method's runs, in the order of their first run. */
    public static List<Runs> runs(List<Demo.ModeResult> all) {
        Map<RestoreMethod, List<Double>> byMethod = new LinkedHashMap<>(); // keyed in the order of each method's first run
        for (Demo.ModeResult m : all) byMethod.computeIfAbsent(m.method(), k -> new ArrayList<>()).add(m.stallTtrSeconds());
        // Not List.copyOf: a run that never became responsive is a null stall TTR, which it refuses.
        return byMethod.entrySet().stream().map(e -> new Runs(e.getKey(), Collections.unmodifiableList(e.getValue()))).toList();
    }

    /**
     * One line: ws's median stall TTR against the soonest baseline's, and in how many run pairs (the k-th run of each) ws was
     * sooner. Says plainly when ws was not sooner, when the medians are within {@link #TIE_SECONDS} (a tie), or when ws was
     * not run. When Thaw mapped ran more than once (it came close) and was sooner than ws, a second sentence judges it the same way.
     */
    public static String verdict(List<Demo.ModeResult> all) {
        List<Runs> runs = runs(all);
        Runs ws = runs.stream().filter(r -> r.method() == THAW).findFirst().orElse(null);
        Runs best = runs.stream().filter(r -> BASELINES.contains(r.method())).min(Comparator.comparingDouble(Runs::median)).orElse(null);
        if (ws == null || best == null) return "verdict: none (the demo ran no ws restore or no baseline)";
        String line = "verdict: " + judged(ws, "ws", best);
        Runs mapped = runs.stream().filter(r -> r.method() == THAW_MAPPED).findFirst().orElse(null);
        if (mapped != null && mapped.stallTtrSeconds().size() > 1 && mapped.median() < ws.median() - TIE_SECONDS) {
            line += "; Thaw's mapped engine (the working set read ahead of the kernel's paging of the image's RAM file, what"
                    + " restore --mode auto picks for this image): " + judged(mapped, "mapped", best);
        }
        return line;
    }

    private static String judged(Runs thaw, String name, Runs best) {
        int pairs = Math.min(thaw.stallTtrSeconds().size(), best.stallTtrSeconds().size());
        int sooner = 0;
        for (int k = 0; k < pairs; k++) {
            if (orInfinity(thaw.stallTtrSeconds().get(k)) < orInfinity(best.stallTtrSeconds().get(k))) sooner++;
        }
        String thawText = text(thaw);
        String bestText = text(best);
        if (Double.isInfinite(thaw.median()) && Double.isInfinite(best.median())) {
            return "neither Thaw " + name + " nor any baseline was responsive within the observation at the median";
        }
        if (Math.abs(thaw.median() - best.median()) < TIE_SECONDS) {
            return String.format("Thaw %s tied with the soonest baseline, %s: both responsive after about %s and %s"
                    + " (%s sooner in %d of %d runs paired in order)", name, best.method().shortName(), thawText, bestText, name, sooner, pairs);
        }
        if (thaw.median() < best.median()) {
            return String.format("Thaw %s responsive after %s, sooner than every baseline; the soonest, %s, after %s"
                    + " (sooner in %d of %d runs paired in order)", name, thawText, best.method().shortName(), bestText, sooner, pairs);
        }
        return String.format("Thaw %s NOT sooner than every baseline: %s responsive after %s, %s after %s"
                + " (%s sooner in %d of %d runs paired in order)", name, best.method().shortName(), bestText, name, thawText, name, sooner, pairs);
    }

    private static String text(Runs r) {
        double median = r.median();
        String value = Double.isInfinite(median) ? "never (in the observation)" : String.format("%.2f s", median);
        return r.stallTtrSeconds().size() == 1 ? value : value + " (median of " + r.stallTtrSeconds().size() + ")";
    }

    private static double seconds(Demo.ModeResult m) {
        return orInfinity(m.stallTtrSeconds());
    }

    private static double orInfinity(Double seconds) {
        return seconds == null ? Double.POSITIVE_INFINITY : seconds;
    }
}
