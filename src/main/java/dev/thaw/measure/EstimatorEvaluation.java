package dev.thaw.measure;

import dev.thaw.estimate.DirtyRecency;
import dev.thaw.estimate.PageRef;
import dev.thaw.estimate.Quality;
import dev.thaw.estimate.Sizing;
import dev.thaw.estimate.WorkingSet;
import dev.thaw.estimation.EstimatingSave;
import dev.thaw.guest.DemoGuest;
import dev.thaw.guest.GuestImage;
import dev.thaw.image.CheckpointImage;
import dev.thaw.image.WorkingSetWriter;
import dev.thaw.qemu.Accel;
import dev.thaw.qemu.QemuVersion;
import dev.thaw.qemu.QemuVm;
import dev.thaw.restore.PostSaveTrace;
import dev.thaw.restore.PostcopyRestore;
import dev.thaw.restore.RestoreTraces;
import dev.thaw.restore.Restorer;
import dev.thaw.restore.WorkingSetChoice;
import dev.thaw.save.Saver;
import dev.thaw.util.FileTrees;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.OptionalInt;
import java.util.Optional;
import java.util.Set;

/**
 * Evaluates the working-set estimators on one saved demo guest (issue: estimation), after
 * HotRestore section 6.1: the guest is saved live (dirty-bit recency: LRU and CLOCK orders of the
 * pages it wrote), traced after the save (the FAFL queue), and then restored once more with
 * nothing prefetched and every first touch traced for the same period: that is the ground truth
 * the queues are scored against (hit rate, accuracy, coverage at 0.25x to 2x the hybrid size).
 * Then each restore method runs once: lazy, ws with the set learned from it, eager, ws with the dirty and trace sets,
 * each with HotRestore's sizing (half the estimated size prefetched, the rest of the queue first
 * in the background).
 */
public final class EstimatorEvaluation {
    public static final double[] SIZE_FACTORS = {0.25, 0.5, 1.0, 1.5, 2.0};

    public record Config(DemoGuest guest, Duration trace, Duration measure, Path workDir) {}

    /** One queue at one size against the ground truth. */
    public record QualityRow(String ordering, double sizeFactor, int sizePages, double hitRate, double accuracy, double coverage) {}

    /**
     * One restore: {@code sparedFaults} are ground-truth pages the prefetch delivered before the guest asked (each a fault a
     * lazy restore takes); {@code lazyPages} the pages sent because the guest asked (neighbours included).
     */
    public record MethodRow(String method, long prefetchedPages, long demandFaults, long sparedFaults, long lazyPages,
                            double runningSeconds, double completedSeconds, long vcpuBlockedMillis, double throughputRelative,
                            Double ttrSeconds, double mmu) {}

    public record Report(long memoryMiB, long totalMiB, long wsMiB, String accel, double traceSeconds, int saveRounds,
                         double liveSaveSeconds, double downtimeSeconds, long dirtyPages, long tracedPages, long hybridPages,
                         long groundTruthPages, double opsPerSecondBefore, List<QualityRow> quality, List<MethodRow> methods) {}

    private EstimatorEvaluation() {}

    public static Report run(Config config, GuestImage guestImage, QemuVersion qemu, Accel accel, PrintStream log) throws Exception {
        Files.createDirectories(config.workDir());
        Path image = config.workDir().resolve("estimators-" + config.guest().memoryMiB() + "M");
        FileTrees.deleteQuietly(image);
        FileTrees.deleteQuietly(image.resolveSibling(image.getFileName() + ".restores"));
        Saver.Result saved;
        double before;
        try (QemuVm vm = QemuVm.launch(config.guest().vmConfig("thaw-eval-source", guestImage, qemu, accel))) {
            var console = vm.console().cursorFromStart();
            DemoGuest.awaitReady(vm, console, DemoGuest.BOOT_TIMEOUT);
            before = Throughput.of(DemoGuest.collectTicks(console, config.measure()), Throughput.ONE_SECOND_NANOS).opsPerSecond();
            saved = Saver.save(vm.qmp(), vm.config(), image, Saver.Options.defaults().withDirtyEstimator(Duration.ofSeconds(30)), p -> {});
            vm.qmp().quit();
        }
        DirtyRecency recency = saved.recency().orElseThrow();
        WorkingSet dirty = saved.workingSet().orElseThrow();
        log.printf("  live save: %.2f s, %d rounds, guest stopped %.3f s; %d pages written during it%n", saved.durationNanos() / 1e9,
                saved.rounds(), saved.downtimeNanos() / 1e9, dirty.size());

        WorkingSet trace;
        List<PageRef> truth;
        try (CheckpointImage img = CheckpointImage.open(image)) {
            PostSaveTrace.Result t = EstimatingSave.traceAfterSave(img, "thaw-eval-trace", config.trace(), Optional.of(dirty), m -> {});
            t.restore().vm().close();
            trace = t.workingSet();
            // The ground truth: the same guest from the same image, every first touch traced over the same period.
            PostSaveTrace.Result g = EstimatingSave.traceAfterSave(img, "thaw-eval-truth", config.trace(), Optional.empty(), m -> {});
            g.restore().vm().close();
            truth = g.workingSet().pages();
        }
        long wss = trace.estimatedPageCount();
        log.printf("  traced %d pages after the save; hybrid size %d pages; ground truth %d pages%n", trace.size(), wss, truth.size());

        List<QualityRow> quality = new ArrayList<>();
        List<PageRef> lru = dirty.pages();
        List<PageRef> clock = recency.clockOrder();
        for (double f : SIZE_FACTORS) {
            int n = (int) Math.max(1, Math.round(f * wss));
            quality.add(row("FAFL (trace)", f, n, trace.pages(), truth));
            quality.add(row("LRU (dirty rounds)", f, n, lru, truth));
            quality.add(row("CLOCK (dirty rounds)", f, n, clock, truth));
        }

        Set<PageRef> truthSet = new HashSet<>(truth);
        List<MethodRow> methods = new ArrayList<>();
        methods.add(restore(image, "lazy", Restorer.Mode.LAZY, WorkingSetChoice.defaults(), truthSet, before, config, log));
        // The learned queue as the next restore would take it: the lazy restore's faults, in order (neighbours hide some pages).
        List<PageRef> learned;
        try (CheckpointImage img = CheckpointImage.open(image)) {
            learned = RestoreTraces.latest(img).map(RestoreTraces::learned).orElseThrow().pages();
        }
        for (double f : SIZE_FACTORS) {
            quality.add(row("learned (lazy restore's faults)", f, (int) Math.max(1, Math.round(f * wss)), learned, truth));
        }
        // Learned from the latest restore of the image: the lazy one just before.
        methods.add(restore(image, "ws (learned)", Restorer.Mode.WS,
                new WorkingSetChoice(WorkingSetChoice.Source.LEARNED, OptionalInt.empty(),
                        java.util.OptionalDouble.of(Sizing.HOTRESTORE.prefetchFraction())),
                truthSet, before, config, log));
        methods.add(restore(image, "eager", Restorer.Mode.EAGER, WorkingSetChoice.defaults(), truthSet, before, config, log));
        WorkingSetWriter.attach(image, dirty);
        methods.add(restore(image, "ws (dirty)", Restorer.Mode.WS, image(), truthSet, before, config, log));
        WorkingSetWriter.attach(image, trace);
        methods.add(restore(image, "ws (trace)", Restorer.Mode.WS, image(), truthSet, before, config, log));
        FileTrees.deleteQuietly(image);
        FileTrees.deleteQuietly(image.resolveSibling(image.getFileName() + ".restores"));
        DemoGuest g = config.guest();
        return new Report(g.memoryMiB(), g.totalMiB(), g.wsMiB(), accel.qemuName(), config.trace().toMillis() / 1e3, saved.rounds(),
                saved.durationNanos() / 1e9, saved.downtimeNanos() / 1e9, dirty.size(), trace.size(), wss, truth.size(), before, quality,
                methods);
    }

    private static WorkingSetChoice image() {
        return new WorkingSetChoice(WorkingSetChoice.Source.IMAGE, OptionalInt.empty(), java.util.OptionalDouble.of(Sizing.HOTRESTORE.prefetchFraction()));
    }

    private static QualityRow row(String ordering, double f, int n, List<PageRef> queue, List<PageRef> truth) {
        Quality q = Quality.of(queue, n, truth);
        return new QualityRow(ordering, f, n, q.hitRate(), q.accuracy(), q.coverage());
    }

    private static MethodRow restore(Path image, String label, Restorer.Mode mode, WorkingSetChoice choice, Set<PageRef> truth, double before,
                                     Config config, PrintStream log) throws Exception {
        try (CheckpointImage img = CheckpointImage.open(image)) {
            long t0 = System.nanoTime();
            Restorer.Outcome o = Restorer.restore(img, mode, "thaw-eval-" + mode.label(), choice, opt -> opt, m -> {});
            try (QemuVm vm = o.vm()) {
                AfterRestore seen = AfterRestore.observe(vm, t0, (long) (o.runningSeconds() * 1e9), before, config.measure());
                double relative = seen.relativeThroughput();
                PostcopyRestore.Result r = o.postcopy().orElse(null);
                long spared = 0;
                if (r != null) {
                    List<PageRef> prefetched = r.prefetched();
                    for (PageRef p : prefetched) if (truth.contains(p)) spared++;
                }
                MethodRow row = new MethodRow(label, r == null ? 0 : r.prefetchedPages(), r == null ? 0 : r.demandFaults(), spared,
                        r == null ? 0 : r.demandPages(), o.runningSeconds(), o.completedSeconds(), r == null ? 0 : r.vcpuBlockedMillis(),
                        relative, seen.ttrSeconds().orElse(null), seen.mmu());
                log.printf("  %-13s running after %.2f s, %d prefetched (%d of them touched in the ground truth), %d faults, vCPU stalled"
                                + " %d ms, first %d s %.2fx of before%n", label, row.runningSeconds(), row.prefetchedPages(), spared,
                        row.demandFaults(), row.vcpuBlockedMillis(), config.measure().toSeconds(), relative);
                vm.qmp().quit();
                return row;
            }
        }
    }

    public static String markdown(List<Report> reports) {
        StringBuilder out = new StringBuilder();
        for (Report r : reports) {
            out.append(String.format("Guest %d MiB RAM, T=%d MiB, W=%d MiB, %s; live save %.2f s in %d rounds (guest stopped %.3f s);"
                            + " dirty %d pages, traced %d pages in %.0f s, hybrid WSS %d pages, ground truth %d pages.%n%n", r.memoryMiB(),
                    r.totalMiB(), r.wsMiB(), r.accel(), r.liveSaveSeconds(), r.saveRounds(), r.downtimeSeconds(), r.dirtyPages(),
                    r.tracedPages(), r.traceSeconds(), r.hybridPages(), r.groundTruthPages()));
            out.append("| ordering | size (x WSS) | pages | hit rate | accuracy | coverage |\n|---|---|---|---|---|---|\n");
            for (QualityRow q : r.quality().stream().sorted(java.util.Comparator.comparingDouble(QualityRow::sizeFactor)).toList()) {
                out.append(String.format("| %s | %.2f | %d | %.3f | %.3f | %.3f |%n", q.ordering(), q.sizeFactor(), q.sizePages(), q.hitRate(),
                        q.accuracy(), q.coverage()));
            }
            out.append("\n| method | running after (s) | completed after (s) | prefetched | prefetched and touched | demand faults | pages"
                    + " sent on demand | vCPU stalled (ms) | first seconds vs before | TTR(1 s, 0.8) | MMU(1 s) |\n"
                    + "|---|---|---|---|---|---|---|---|---|---|---|\n");
            for (MethodRow m : r.methods()) {
                out.append(String.format("| %s | %.2f | %.2f | %d | %d | %d | %d | %d | %.2fx | %s | %.2f |%n", m.method(), m.runningSeconds(),
                        m.completedSeconds(), m.prefetchedPages(), m.sparedFaults(), m.demandFaults(), m.lazyPages(), m.vcpuBlockedMillis(),
                        m.throughputRelative(), m.ttrSeconds() == null ? "not within the observation" : String.format("%.2f s", m.ttrSeconds()),
                        m.mmu()));
            }
            out.append('\n');
        }
        return out.toString();
    }
}
