package dev.thaw.measure;

import dev.thaw.measure.SaveRestoreBenchmark.Failure;
import dev.thaw.measure.SaveRestoreBenchmark.MethodSample;
import dev.thaw.measure.SaveRestoreBenchmark.Postcopy;
import dev.thaw.measure.SaveRestoreBenchmark.Report;
import dev.thaw.measure.SaveRestoreBenchmark.Sample;
import dev.thaw.measure.SaveRestoreBenchmark.Saves;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.function.Function;
import java.util.function.ToDoubleFunction;

/**
 * What the bench prints and draws from its reports (a run's, or an earlier run's JSON read back):
 * markdown tables, min / median over the repetitions, and PNG plots. Pure rendering: nothing runs.
 */
public final class SaveRestoreTables {
    private SaveRestoreTables() {}

    /** Every table of these reports, as the bench prints them: the saves; with observed restores, every method's too. */
    public static String all(List<Report> reports) {
        boolean observed = observed(reports);
        StringBuilder tables = new StringBuilder(markdown(reports));
        if (observed) {
            String moved = referenceMoved(reports);
            if (!moved.isEmpty()) tables.append('\n').append(moved);
            tables.append('\n').append(modesMarkdown(reports));
            String stalls = stallMarkdown(reports);
            if (!stalls.isEmpty()) tables.append('\n').append(stalls);
            String limits = limitMarkdown(reports);
            if (!limits.isEmpty()) tables.append('\n').append(limits);
            tables.append('\n').append(failuresMarkdown(reports));
            String memory = memoryMarkdown(reports);
            if (!memory.isEmpty()) tables.append('\n').append(memory);
            String close = closeRunsMarkdown(reports);
            if (!close.isEmpty()) tables.append('\n').append(close);
            tables.append('\n').append(mmuMarkdown(reports));
            String latency = latencyMarkdown(reports);
            if (!latency.isEmpty()) tables.append('\n').append(latency);
            tables.append('\n').append(hostSideMarkdown(reports));
        }
        return tables.toString();
    }

    /** The most the source guest's rate before the save may vary over a guest's repetitions before the ratios are suspect. */
    static final double REFERENCE_SPREAD = 1.5;

    /**
     * A warning per guest whose rate before the save (the reference of TTR, MMU and "vs before") moved between repetitions by
     * more than {@value #REFERENCE_SPREAD}x: its ratios of different repetitions do not compare, and which reference is right
     * the bench cannot tell (seen: 2.7-3.3 then 13-19 M ops/s, with the restored guests at 2.5 M in every repetition).
     * Empty when none moved.
     */
    static String referenceMoved(List<Report> reports) {
        StringBuilder out = new StringBuilder();
        for (Report r : reports) {
            List<Double> before = r.samples().stream().map(Sample::opsPerSecondBefore).filter(x -> x > 0).toList();
            if (before.size() < 2) continue;
            double min = before.stream().mapToDouble(Double::doubleValue).min().orElseThrow();
            double max = before.stream().mapToDouble(Double::doubleValue).max().orElseThrow();
            if (max / min <= REFERENCE_SPREAD) continue;
            out.append(String.format("**The reference moved** (%s): the source guest's rate before the save was %s M ops/s in its"
                    + " repetitions (%.1fx apart, more than %.1fx): TTR, MMU and the work relative to before do not compare across"
                    + " repetitions; rerun.%n", r.describe(), before.stream().map(x -> String.format("%.1f", x / 1e6)).toList(),
                    max / min, REFERENCE_SPREAD));
        }
        return out.toString();
    }

    /** Whether any restored guest was observed (the bench with {@code --modes}): only then are there plots. */
    public static boolean observed(List<Report> reports) {
        return reports.stream().flatMap(r -> r.samples().stream()).flatMap(x -> x.restores().stream()).anyMatch(x -> x.after() != null);
    }

    /** A markdown table of the saves and the eager restores, min / median. */
    public static String markdown(List<Report> reports) {
        StringBuilder out = new StringBuilder();
        out.append("| guest | Thaw save (s) | QEMU save to file (s) | QEMU save + fsync (s) | QEMU savevm (s) | Thaw image (MiB) | QEMU file (MiB)"
                + " | qcow2 with snapshot (MiB) | Thaw eager restore (s) | QEMU eager restore (s) |\n");
        out.append("|---|---|---|---|---|---|---|---|---|---|\n");
        for (Report r : reports) {
            List<Saves> s = r.samples().stream().map(Sample::saves).toList();
            out.append(String.format("| %s | %s | %s | %s | %s | %d | %d | %s | %s | %s |%n", r.describe(),
                    mm(s, Saves::thawSaveSeconds), mm(s, Saves::qemuSaveSeconds), mm(s, Saves::qemuSaveFsyncSeconds),
                    s.getFirst().snapshotFileBytes() > 0 ? mm(s, Saves::snapshotSaveSeconds) : "-",
                    (long) Report.median(s, x -> x.thawImageBytes()) >> 20, (long) Report.median(s, x -> x.qemuFileBytes()) >> 20,
                    s.getFirst().snapshotFileBytes() > 0 ? Long.toString((long) Report.median(s, x -> x.snapshotFileBytes()) >> 20) : "-",
                    mm(r.of(RestoreMethod.THAW_EAGER), MethodSample::runningSeconds), mm(r.of(RestoreMethod.QEMU_EAGER), MethodSample::runningSeconds)));
        }
        return out.toString();
    }

    /** Every method side by side: times min / median, the rest medians; TTR not reached within the observation shows as "> 5" (its seconds). */
    public static String modesMarkdown(List<Report> reports) {
        StringBuilder out = new StringBuilder();
        out.append("| guest | method | running after (s) | completed after (s) | TTR(1 s, 0.8) (s) | stall TTR(1 s, 0.9) (s)"
                + " | host-side TTR estimate: faults / vCPU time (s) | MMU(1 s)"
                + " | first N s vs before (N = the observation) | demand faults | vCPU stalled (ms) | read from storage (MiB) | prefetched pages"
                + " | fault service p50 / p99 (us) | background (MB/s) | failed |\n");
        out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for (Report r : reports) {
            String guest = r.describe();
            for (RestoreMethod m : RestoreMethod.values()) {
                List<MethodSample> ms = r.of(m);
                if (ms.isEmpty() || ms.getFirst().after() == null) continue;
                List<AfterRestore> after = ms.stream().map(MethodSample::after).toList();
                List<HostStall> host = ms.stream().map(MethodSample::hostSide).filter(Objects::nonNull).toList();
                List<HostStall> vcpu = ms.stream().map(MethodSample::hostVcpu).filter(Objects::nonNull).toList();
                List<Postcopy> pc = ms.stream().map(MethodSample::postcopy).filter(Objects::nonNull).toList();
                long failed = r.samples().stream().flatMap(x -> x.failures() == null ? java.util.stream.Stream.<Failure>empty()
                        : x.failures().stream()).filter(f -> f.method() == m).count();
                out.append(String.format("| %s | %s | %s | %s | %s | %s | %s | %.2f | %.2fx | %s | %s | %s | %s | %s | %s | %d |%n", guest, m.label(),
                        mm(ms, MethodSample::runningSeconds), mm(ms, MethodSample::completedSeconds),
                        ttr(after.stream().map(AfterRestore::ttrSeconds).toList(), r.observeSeconds()),
                        after.stream().allMatch(AfterRestore::stallsReported)
                                ? ttr(after.stream().map(AfterRestore::stallTtrSeconds).toList(), r.observeSeconds()) : "-",
                        (host.isEmpty() ? "-" : ttr(host.stream().map(HostStall::ttrSeconds).toList(), r.observeSeconds())) + " / "
                                + (vcpu.isEmpty() ? "-" : ttr(vcpu.stream().map(HostStall::ttrSeconds).toList(), r.observeSeconds())),
                        Report.median(after, AfterRestore::mmu), Report.median(after, AfterRestore::relativeThroughput),
                        pc.isEmpty() ? "-" : String.format("%.0f", Report.median(pc, x -> x.demandFaults())),
                        pc.isEmpty() ? "-" : String.format("%.0f", Report.median(pc, x -> x.vcpuBlockedMillis())),
                        ms.stream().anyMatch(x -> x.storageReadBytes() < 0) ? "?"
                                : String.format("%.0f", Report.median(ms, x -> x.storageReadBytes()) / (1 << 20)),
                        pc.isEmpty() ? "-" : String.format("%.0f", Report.median(pc, x -> x.prefetchedPages())),
                        pc.isEmpty() ? "-" : String.format("%.0f / %.0f", Report.median(pc, Postcopy::serviceMedianMicros),
                                Report.median(pc, Postcopy::serviceP99Micros)),
                        pc.isEmpty() ? "-" : String.format("%.0f", Report.median(pc, Postcopy::backgroundMBps)), failed));
                guest = "";
            }
        }
        return out.toString();
    }

    /**
     * How well each host-side TTR estimate matches the guest's own TTR, restore by restore: the fault-based one over Thaw's
     * lazy and ws restores (the only ones whose faults Thaw sees), the vCPU-time one over every restore.
     */
    public static String hostSideMarkdown(List<Report> reports) {
        return agreement(reports, "demand-fault stall (Thaw's event log)", MethodSample::hostSide,
                java.util.Arrays.stream(RestoreMethod.values()) // the postcopy ones: Thaw sees their faults
                        .filter(m -> m.thawMode().filter(mode -> mode != dev.thaw.restore.Restorer.Mode.EAGER).isPresent()).toList())
                + agreement(reports, "vCPU run time", MethodSample::hostVcpu, List.of(RestoreMethod.values()));
    }

    private static String agreement(List<Report> reports, String estimate, Function<MethodSample, HostStall> f, List<RestoreMethod> methods) {
        List<double[]> pairs = new ArrayList<>(); // {guest TTR, host TTR}, infinite when not reached
        for (Report r : reports) {
            for (RestoreMethod m : methods) {
                for (MethodSample s : r.of(m)) {
                    if (s.after() == null || f.apply(s) == null) continue;
                    pairs.add(new double[] {s.after().ttrSeconds().orElse(Double.POSITIVE_INFINITY),
                            f.apply(s).ttrSeconds().orElse(Double.POSITIVE_INFINITY)});
                }
            }
        }
        if (pairs.isEmpty()) return "";
        List<double[]> finite = pairs.stream().filter(p -> !Double.isInfinite(p[0]) && !Double.isInfinite(p[1])).toList();
        long hostEarlier = pairs.stream().filter(p -> p[1] <= p[0]).count();
        long within = finite.stream().filter(p -> Math.abs(p[0] - p[1]) <= 0.25).count();
        return String.format("Host-side TTR from %s against the guest's own TTR, over %d restores: %d at or before the guest's;"
                        + " %d of the %d with both reached within 0.25 s; median |difference| %.2f s.%n%n", estimate, pairs.size(), hostEarlier,
                within, finite.size(), Report.median(finite, p -> Math.abs(p[0] - p[1])));
    }

    /**
     * The stall TTR per repetition, beside the rate-based one, for guests that report their stalled time: per method the
     * median, each repetition's value (in repetition order, so methods pair by column) and the lowest unstalled share of a
     * 1 s window, and the host's steal over each restore (the hypervisor under this machine running something else: it stalls
     * any restored guest). Empty when no restored guest reported it.
     */
    public static String stallMarkdown(List<Report> reports) {
        StringBuilder out = new StringBuilder();
        for (Report r : reports) {
            String guest = r.describe();
            for (RestoreMethod m : RestoreMethod.values()) {
                List<MethodSample> observed = r.of(m).stream().filter(x -> x.after() != null).toList();
                List<AfterRestore> after = observed.stream().map(MethodSample::after).toList();
                if (after.isEmpty() || !after.stream().allMatch(AfterRestore::stallsReported)) continue;
                if (out.isEmpty()) {
                    out.append("| guest | method | stall TTR(1 s, 0.9) (s), median | per repetition | TTR(1 s, 0.8) per repetition"
                            + " | lowest unstalled share of a 1 s window, median | host steal per repetition (%) |\n|---|---|---|---|---|---|---|\n");
                }
                out.append(String.format("| %s | %s | %s | %s | %s | %.2f | %s |%n", guest, m.label(),
                        ttr(after.stream().map(AfterRestore::stallTtrSeconds).toList(), r.observeSeconds()),
                        String.join(", ", after.stream().map(a -> ttr(List.of(a.stallTtrSeconds()), r.observeSeconds())).toList()),
                        String.join(", ", after.stream().map(a -> ttr(List.of(a.ttrSeconds()), r.observeSeconds())).toList()),
                        Report.median(after, AfterRestore::unstalledMmu),
                        String.join(", ", observed.stream().map(x -> x.hostStealShare() == null ? "?" : String.format("%.1f", 100 * x.hostStealShare())).toList())));
                guest = "";
            }
        }
        return out.toString();
    }

    /** For a client-timed workload: its request latency before the save and over each method's observation, medians. */
    public static String latencyMarkdown(List<Report> reports) {
        StringBuilder out = new StringBuilder();
        for (Report r : reports) {
            List<RequestLatency> before = r.samples().stream().map(Sample::latencyBefore).filter(Objects::nonNull).toList();
            if (before.isEmpty()) continue;
            if (out.isEmpty()) {
                out.append("| guest | requests timed | requests | p50 (us) | p99 (us) | max (us) | failed requests |\n|---|---|---|---|---|---|---|\n");
            }
            out.append(latencyRow(r.describe(), "before the save (5 s)", before));
            for (RestoreMethod m : RestoreMethod.values()) {
                List<RequestLatency> after = r.of(m).stream().map(MethodSample::after).filter(a -> a != null && a.latency() != null)
                        .map(AfterRestore::latency).toList();
                if (!after.isEmpty()) out.append(latencyRow("", "after " + m.label() + " (from the restore until " + seconds(r.observeSeconds())
                        + " s after running)", after));
            }
        }
        return out.toString();
    }

    private static String latencyRow(String guest, String when, List<RequestLatency> l) {
        return String.format("| %s | %s | %.0f | %.0f | %.0f | %.0f | %.0f |%n", guest, when, Report.median(l, x -> x.requests()),
                Report.median(l, RequestLatency::p50Micros), Report.median(l, RequestLatency::p99Micros),
                Report.median(l, RequestLatency::maxMicros), Report.median(l, x -> x.failures()));
    }

    /** Every failed restore, with its error: what the "failed" column counts. */
    public static String failuresMarkdown(List<Report> reports) {
        StringBuilder out = new StringBuilder();
        for (Report r : reports) {
            for (int i = 0; i < r.samples().size(); i++) {
                List<Failure> failures = r.samples().get(i).failures();
                if (failures == null) continue;
                for (Failure f : failures) {
                    out.append(String.format("- %s, repetition %d, %s: %s%n", r.describe(), i + 1, f.method().label(), f.error()));
                }
            }
        }
        return out.isEmpty() ? "" : "Failed restores:\n\n" + out + "\n";
    }

    /**
     * Per guest whose memory was checked ({@code --check-memory}), per method: in how many of its restores the restored guest's
     * checksum matched the source's; empty when none was checked.
     */
    public static String memoryMarkdown(List<Report> reports) {
        StringBuilder out = new StringBuilder();
        for (Report r : reports) {
            Map<RestoreMethod, int[]> identical = new EnumMap<>(RestoreMethod.class); // {identical, checked}
            for (Sample s : r.samples()) {
                if (s.memsumBefore() == null) continue;
                for (MethodSample m : java.util.stream.Stream.concat(s.restores().stream(), s.repeats().stream()).toList()) {
                    int[] n = identical.computeIfAbsent(m.method(), k -> new int[2]);
                    n[1]++;
                    if (s.memsumBefore().equals(m.memsumAfter())) n[0]++;
                }
            }
            if (identical.isEmpty()) continue;
            out.append(String.format("%s after each restore (%s): ", "postgres".equals(r.workload()) ? "Rows and pg_amcheck" : "Memory",
                    r.describe()));
            out.append(String.join(", ", identical.entrySet().stream().map(e -> String.format("%s %s", e.getKey().label(),
                    e.getValue()[0] == e.getValue()[1] ? "identical in " + e.getValue()[1] : "DIFFERENT in " + (e.getValue()[1] - e.getValue()[0])
                            + " of " + e.getValue()[1])).toList()));
            out.append("\n");
        }
        return out.toString();
    }

    /** Whether every restored guest whose memory was checked had the source's; true when none was checked. */
    public static boolean memoryIntact(List<Report> reports) {
        return reports.stream().flatMap(r -> r.samples().stream()).filter(s -> s.memsumBefore() != null)
                .allMatch(s -> java.util.stream.Stream.concat(s.restores().stream(), s.repeats().stream())
                        .allMatch(m -> s.memsumBefore().equals(m.memsumAfter())));
    }

    /**
     * Per repetition with close runs ({@code --close-runs}): ws's and the close baselines' stall TTRs run by run, and the demo's
     * verdict ({@link DemoVerdict#verdict}) over them; empty when none ran.
     */
    public static String closeRunsMarkdown(List<Report> reports) {
        StringBuilder out = new StringBuilder();
        for (Report r : reports) {
            for (int i = 0; i < r.samples().size(); i++) {
                Sample s = r.samples().get(i);
                if (s.repeats().isEmpty()) continue;
                List<Demo.ModeResult> all = java.util.stream.Stream.concat(s.restores().stream(), s.repeats().stream())
                        .filter(m -> m.after() != null).map(m -> Demo.ModeResult.of(m, s.memsumBefore())).toList();
                out.append(String.format("Close runs (%s, repetition %d): ", r.describe(), i + 1));
                List<DemoVerdict.Runs> runs = DemoVerdict.runs(all).stream().filter(x -> x.stallTtrSeconds().size() > 1).toList();
                out.append(String.join("; ", runs.stream().map(x -> x.method().shortName() + " " + x.stallTtrSeconds().stream()
                        .map(t -> t == null ? "never" : String.format("%.2f", t)).toList() + " s").toList()));
                out.append("\n").append(DemoVerdict.verdict(all)).append("\n");
            }
        }
        return out.toString();
    }

    /** Windows of the MMU curve's table, in steps of {@link AfterRestore#STEP_MILLIS}: 0.5, 1, 2, 3 and 5 s. */
    static final int[] MMU_TABLE_STEPS = {2, 4, 8, 12, 20};

    /** The MMU curve per method: the median over the repetitions at a few windows, on the 250 ms grid from the restore's start. */
    public static String mmuMarkdown(List<Report> reports) {
        StringBuilder out = new StringBuilder("| guest | method |");
        for (int k : MMU_TABLE_STEPS) out.append(String.format(" MMU(%s s) |", k * AfterRestore.STEP_MILLIS / 1000.0));
        out.append("\n|---|---|").append("---|".repeat(MMU_TABLE_STEPS.length)).append('\n');
        for (Report r : reports) {
            String guest = r.describe();
            for (RestoreMethod m : RestoreMethod.values()) {
                List<List<Double>> curves = r.of(m).stream().filter(s -> s.after() != null)
                        .map(s -> AfterRestore.mmuCurve(s.after().utilizationPerStep())).toList();
                if (curves.isEmpty()) continue;
                out.append("| ").append(guest).append(" | ").append(m.label()).append(" |");
                for (int k : MMU_TABLE_STEPS) {
                    List<List<Double>> fit = curves.stream().filter(c -> c.size() >= k).toList();
                    out.append(fit.isEmpty() ? " - |" : String.format(" %.2f |", Report.median(fit, c -> c.get(k - 1))));
                }
                out.append('\n');
                guest = "";
            }
        }
        return out.toString();
    }

    /** PNGs per report: the guest's work, the host-side stalled share and QEMU's resident memory over time, per method. */
    public static List<Path> plots(Report r, Path dir) {
        String conditions = String.format("%s, %d MiB guest (T=%d, W=%d MiB%s, %s%s), median of %d", r.workload(), r.memoryMiB(),
                r.totalMiB(), r.wsMiB(), r.layout() == null ? "" : " " + r.layout(), r.accel(), ", " + r.cache().label(),
                r.samples().size());
        // The contiguous layout keeps the names plots had before layouts existed.
        String layout = r.layout() == null || r.layout().equals(dev.thaw.guest.DemoGuest.Layout.CONTIGUOUS.key()) ? "" : "-" + r.layout();
        String name = String.format("%s%dM-W%d%s.png", "wsbench".equals(r.workload()) ? "" : r.workload() + "-", r.memoryMiB(), r.wsMiB(),
                layout);
        List<Path> out = new ArrayList<>();
        Map<String, List<Double>> work = series(r, s -> s.after() == null ? null : s.after().utilizationPerStep());
        if (work.isEmpty()) return out;
        out.add(Plots.overTime(dir.resolve("restore-utilization-" + name), "work after the restore: " + conditions,
                "work vs before the save", work, AfterRestore.STEP_MILLIS));
        out.add(Plots.overTime(dir.resolve("restore-stalled-" + name), "share of time stalled on demand faults (host side): " + conditions,
                "share of each 250 ms the guest could not run", series(r, s -> s.hostSide() == null ? null : s.hostSide().stalledPerStep()),
                AfterRestore.STEP_MILLIS));
        out.add(Plots.overTime(dir.resolve("restore-vcpu-stalled-" + name), "share of time the vCPU did not run (host side): " + conditions,
                "1 - vCPU run share / run share before", series(r, s -> s.hostVcpu() == null ? null : s.hostVcpu().stalledPerStep()),
                AfterRestore.STEP_MILLIS));
        Map<String, List<Double>> queued = series(r, MethodSample::vcpuQueuedPerStep);
        if (!queued.isEmpty()) {
            out.add(Plots.overTime(dir.resolve("restore-vcpu-queued-" + name), "share of time the vCPU waited for a CPU: " + conditions,
                    "runnable, waiting for a core", queued, AfterRestore.STEP_MILLIS));
        }
        out.add(Plots.lines(dir.resolve("restore-mmu-" + name), "MMU curve: " + conditions, "window (s)",
                "lowest utilization of any window from the restore's start", series(r, s -> s.after() == null ? null
                        : AfterRestore.mmuCurve(s.after().utilizationPerStep())), AfterRestore.STEP_MILLIS / 1000.0));
        out.add(Plots.overTime(dir.resolve("restore-resident-" + name), "memory restored (QEMU resident): " + conditions,
                "QEMU resident memory (MiB)", series(r, MethodSample::residentMiBPerStep), AfterRestore.STEP_MILLIS));
        return out;
    }

    /** Per method, the median over the repetitions of each step of {@code values}. */
    private static Map<String, List<Double>> series(Report r, Function<MethodSample, List<Double>> values) {
        Map<String, List<Double>> out = new LinkedHashMap<>();
        for (RestoreMethod m : RestoreMethod.values()) {
            List<List<Double>> runs = r.of(m).stream().map(values).filter(Objects::nonNull).toList();
            if (runs.isEmpty()) continue;
            int n = runs.stream().mapToInt(List::size).min().orElse(0);
            List<Double> steps = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                int k = i;
                steps.add(Report.median(runs, x -> x.get(k)));
            }
            out.put(m.label(), steps);
        }
        return out;
    }

    /** The median TTR; one not reached within the observation counts as infinite. */
    private static String ttr(List<Optional<Double>> ttrs, double observeSeconds) {
        double t = Report.median(ttrs, x -> x.orElse(Double.POSITIVE_INFINITY));
        return Double.isInfinite(t) ? "> " + seconds(observeSeconds) : String.format("%.2f", t);
    }

    /** Seconds as the tables say them: "5", "7.5". */
    private static String seconds(double s) {
        return s == Math.rint(s) ? Long.toString((long) s) : Double.toString(s);
    }

    /**
     * TTR against the run's own limit ({@link RunLimit}): per method the median TTR and the median over the repetitions of TTR /
     * that repetition's limit (not reached within the observation: infinite, shown as "> observation / limit"). Empty for
     * reports without a limit.
     */
    public static String limitMarkdown(List<Report> reports) {
        StringBuilder out = new StringBuilder();
        for (Report r : reports) {
            List<RunLimit> limits = r.samples().stream().map(Sample::limit).filter(Objects::nonNull).toList();
            if (limits.isEmpty()) continue;
            if (out.isEmpty()) {
                out.append("| guest | the run's limit (s): QEMU's start + W at the read rate | QEMU's start (s) | sequential read (MB/s)"
                        + " | method | TTR(1 s, 0.8) (s) | TTR / limit | stall TTR(1 s, 0.9) (s) | stall TTR / limit |\n"
                        + "|---|---|---|---|---|---|---|---|---|\n");
            }
            String guest = String.format("%s | %.2f | %.2f | %.0f", r.describe(), Report.median(limits, RunLimit::seconds),
                    Report.median(limits, RunLimit::qemuStartSeconds), Report.median(limits, RunLimit::readBytesPerSecond) / 1e6);
            for (RestoreMethod m : RestoreMethod.values()) {
                List<double[]> pairs = new ArrayList<>(); // {TTR, TTR / limit, stall TTR, stall TTR / limit}, infinite when not reached
                for (Sample s : r.samples()) {
                    Optional<MethodSample> ms = s.of(m);
                    if (s.limit() == null || ms.isEmpty() || ms.get().after() == null) continue;
                    AfterRestore a = ms.get().after();
                    double ttr = a.ttrSeconds().orElse(Double.POSITIVE_INFINITY);
                    double stall = a.stallsReported() ? a.stallTtrSeconds().orElse(Double.POSITIVE_INFINITY) : Double.NaN;
                    pairs.add(new double[] {ttr, ttr / s.limit().seconds(), stall, stall / s.limit().seconds()});
                }
                if (pairs.isEmpty()) continue;
                boolean stalls = pairs.stream().noneMatch(p -> Double.isNaN(p[2]));
                out.append(String.format("| %s | %s | %s | %s | %s | %s |%n", guest, m.label(),
                        ttr(pairs.stream().map(p -> Optional.of(p[0]).filter(Double::isFinite)).toList(), r.observeSeconds()),
                        ratio(Report.median(pairs, p -> p[1]), r, limits),
                        stalls ? ttr(pairs.stream().map(p -> Optional.of(p[2]).filter(Double::isFinite)).toList(), r.observeSeconds()) : "-",
                        stalls ? ratio(Report.median(pairs, p -> p[3]), r, limits) : "-"));
                guest = " | | |";
            }
        }
        return out.toString();
    }

    /** A median of TTR / limit as the table says it; not reached within the observation: "> observation / limit". */
    private static String ratio(double ratio, Report r, List<RunLimit> limits) {
        return Double.isInfinite(ratio) ? String.format("> %.1fx", r.observeSeconds() / Report.median(limits, RunLimit::seconds))
                : String.format("%.1fx", ratio);
    }

    private static <T> String mm(List<T> s, ToDoubleFunction<T> f) {
        return s.isEmpty() ? "-" : String.format("%.2f / %.2f", Report.min(s, f), Report.median(s, f));
    }
}
