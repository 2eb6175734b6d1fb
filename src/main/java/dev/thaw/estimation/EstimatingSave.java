package dev.thaw.estimation;

import dev.thaw.estimate.Estimator;
import dev.thaw.estimate.WorkingSet;
import dev.thaw.host.IdlePageTracking;
import dev.thaw.image.CheckpointImage;
import dev.thaw.image.WorkingSetWriter;
import dev.thaw.qemu.QemuVm;
import dev.thaw.qemu.QmpClient;
import dev.thaw.qemu.VmConfig;
import dev.thaw.restore.PostSaveTrace;
import dev.thaw.save.SaveHold;
import dev.thaw.save.Saver;
import dev.thaw.util.StatusListener;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.EnumSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.function.Consumer;

/**
 * A save with its working-set estimate, as {@code thaw save --estimator} takes it: accessed bits
 * scanned before the save (abit), a live probe during it (dirty, inside {@link Saver}), a post-save
 * trace after it (trace: the guest goes on in a new QEMU restored lazily from the image), and the
 * estimate attached to the committed image.
 */
public final class EstimatingSave {
    private EstimatingSave() {}

    /**
     * Which estimators and how long each samples; checked on construction, before anything touches the VM.
     *
     * @param estimators    none, or a combination of abit, dirty and trace (learned comes from restores, not saves)
     * @param liveLimit     dirty: the live probe stops the guest after this long if QEMU has not converged
     * @param traceDuration trace: how long the guest's first touches are traced
     * @param abitDuration  abit: how long accessed bits are scanned before the save
     * @param abitInterval  abit: the scan interval
     */
    public record Plan(Set<Estimator> estimators, Duration liveLimit, Duration traceDuration, Duration abitDuration,
                       Duration abitInterval) {
        public Plan {
            estimators = Set.copyOf(estimators);
            if (estimators.contains(Estimator.ABIT)) {
                IdlePageTracking.unavailableReason().ifPresent(why -> {
                    throw new IllegalArgumentException("--estimator abit: " + why);
                });
                if (estimators.contains(Estimator.DIRTY)) {
                    throw new IllegalArgumentException("--estimator: abit and dirty are both samples; choose one");
                }
                if (abitDuration.toSeconds() < 1 || abitInterval.toMillis() < 10) {
                    throw new IllegalArgumentException("--abit-seconds / --abit-interval-ms: expected >= 1 s and >= 10 ms, actual "
                            + abitDuration.toSeconds() + " s, " + abitInterval.toMillis() + " ms");
                }
            }
            if (estimators.contains(Estimator.LEARNED)) {
                throw new IllegalArgumentException("--estimator learned: a working set is learned from restores (thaw ws --learn), not at save time");
            }
            if (estimators.contains(Estimator.TRACE) && traceDuration.toSeconds() < 1) {
                throw new IllegalArgumentException("--trace-seconds: expected >= 1, actual " + traceDuration.toSeconds());
            }
        }

        /** The estimators named on a command line ({@code dirty}, {@code trace}, ...); none excludes the others. */
        public static Set<Estimator> parse(List<String> names) {
            Set<Estimator> chosen = EnumSet.noneOf(Estimator.class);
            for (String e : names) chosen.add(Estimator.parse(e.strip()));
            if (chosen.contains(Estimator.NONE) && chosen.size() > 1) {
                throw new IllegalArgumentException("--estimator: 'none' excludes the others, actual " + names);
            }
            return chosen;
        }

        boolean traces() {
            return estimators.contains(Estimator.TRACE);
        }
    }

    /**
     * @param workingSet the estimate attached to the image (the last one made), if any
     * @param traced     with trace: the QEMU the guest goes on in; the caller owns (and closes) it
     */
    public record Result(Saver.Result save, Optional<WorkingSet> workingSet, Optional<QemuVm> traced) {}

    /**
     * Saves the guest behind {@code qmpSocket} into {@code out} with the planned estimates, telling {@code saved} once the image is
     * committed. With trace the source QEMU is quit then: the guest must not run in two QEMUs.
     */
    public static Result save(Path qmpSocket, VmConfig config, Path out, Saver.Options options, Plan plan, StatusListener listener,
                              Consumer<Saver.Result> saved)
            throws IOException, InterruptedException {
        boolean trace = plan.traces();
        if (trace) options = options.withKeepRunning(false);
        if (plan.estimators().contains(Estimator.DIRTY)) options = options.withDirtyEstimator(plan.liveLimit());
        Optional<WorkingSet> sampled = plan.estimators().contains(Estimator.ABIT)
                ? Optional.of(AccessBitSampling.scan(qmpSocket, config, plan.abitDuration(), plan.abitInterval(), listener::status))
                : Optional.empty();
        Saver.Result result;
        // A QEMU stopped before the save speaks is waited for as long as the save waits for any of its answers.
        try (QmpClient qmp = QmpClient.connect(qmpSocket, "guest", Duration.ofSeconds(10), options.qmpTimeout(), () -> true)) {
            // A save killed earlier (SIGKILL: no cleanup) may have left this guest paused: it ran before, so it runs again first.
            SaveHold.resumeIfLeftPaused(qmpSocket, qmp).ifPresent(r -> listener.line(r.message()));
            try (SaveHold.Claim hold = SaveHold.claim(qmpSocket, qmp, options.qmpTimeout())) {
                result = Saver.save(qmp, config, out, options, p -> listener.status(String.format("saving: %d MiB read, %d pages, %.0f pages/s",
                        p.streamBytes() >> 20, p.pageCount(), p.elapsedNanos() > 0 ? p.pageCount() * 1e9 / p.elapsedNanos() : 0.0)));
            }
            if (trace) qmp.quit();
        }
        saved.accept(result); // the image is committed; an estimate made after the save is attached to it next
        Optional<WorkingSet> ws = result.workingSet();
        if (sampled.isPresent()) {
            ws = Optional.of(AccessBitSampling.inImage(sampled.get(), result.manifest()));
            WorkingSetWriter.attach(out, ws.get());
            listener.line("working set (abit): " + sampled.get().description());
        }
        Optional<QemuVm> traced = Optional.empty();
        if (trace) {
            listener.line(String.format("tracing: the guest goes on from the save point in a new QEMU, restored lazily; its first"
                    + " touches over %d s are the working set", plan.traceDuration().toSeconds()));
            try (CheckpointImage img = CheckpointImage.open(out)) {
                PostSaveTrace.Result t = traceAfterSave(img, config.name(), plan.traceDuration(), ws, listener::status);
                traced = Optional.of(t.restore().vm());
                ws = Optional.of(t.workingSet());
            }
            WorkingSetWriter.attach(out, ws.get());
            listener.line("working set (trace): " + ws.get().description());
        }
        return new Result(result, ws, traced);
    }

    /**
     * The trace estimator on a committed image: a restore that traces the guest's first touches for {@code period} (its QEMU runs
     * the guest afterwards). With a {@code sample} (dirty or accessed bits) the sample is prefetched and the trace adds what it
     * missed ({@link PostSaveTrace#runAfterSample}); without one the restore is lazy and the trace is the whole queue.
     */
    public static PostSaveTrace.Result traceAfterSave(CheckpointImage image, String vmName, Duration period, Optional<WorkingSet> sample,
                                                      Consumer<String> progress) {
        if (sample.isEmpty() || sample.get().size() == 0) {
            return PostSaveTrace.run(image, vmName, period, progress);
        }
        WorkingSet s = sample.get();
        return PostSaveTrace.runAfterSample(image, vmName, period, s.pages(), s.estimator() == Estimator.ABIT ? "accessed-bit" : "dirty-bit",
                progress);
    }
}
