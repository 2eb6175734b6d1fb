package dev.thaw.restore;

import dev.thaw.estimate.PageRef;
import dev.thaw.image.CheckpointImage;
import dev.thaw.qemu.QemuVm;
import java.nio.file.Path;
import java.time.Instant;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.function.Consumer;
import java.util.function.UnaryOperator;

/**
 * One entry to every restore mode: eager, lazy, or ws with the working set learned from the
 * image's latest restore trace. Lazy and ws restores leave their trace and event log beside the
 * image, so that the next ws restore learns from them.
 */
public final class Restorer {
    public enum Mode {
        EAGER, LAZY, WS;

        public static Mode parse(String name) {
            return switch (name.toLowerCase(Locale.ROOT)) {
                case "eager" -> EAGER;
                case "lazy" -> LAZY;
                case "ws" -> WS;
                default -> throw new IllegalArgumentException("--mode: expected eager, lazy or ws, actual '" + name + "'");
            };
        }

        public String label() {
            return name().toLowerCase(Locale.ROOT);
        }
    }

    /**
     * What a restore did. Seconds from its start. {@code postcopy} and {@code trace} are present for lazy and ws.
     */
    public record Outcome(Mode mode, QemuVm vm, double qemuReadySeconds, double runningSeconds, double completedSeconds, long streamBytes,
                          Optional<PostcopyRestore.Result> postcopy, Optional<Path> trace) {}

    private Restorer() {}

    /** The mode to use when none is asked for: ws once a restore left a trace, else lazy. */
    public static Mode defaultMode(Path imageDir) {
        return RestoreTraces.latest(imageDir).isPresent() ? Mode.WS : Mode.LAZY;
    }

    /**
     * @param workingSetLimit trims the learned working set (for --ws-pages / --ws-fraction)
     * @param tune            adjusts the postcopy options (huge pages, ...)
     */
    public static Outcome restore(CheckpointImage image, Mode mode, String vmName, UnaryOperator<List<PageRef>> workingSetLimit,
                                  UnaryOperator<PostcopyRestore.Options> tune, Consumer<String> progress) {
        Path imageDir = image.directory();
        if (mode == Mode.EAGER) {
            EagerRestore.Result r = EagerRestore.restore(image, EagerRestore.Options.defaults(vmName),
                    p -> progress.accept(String.format("eager restore: %d/%d pages", p.pagesSent(), p.pageCount())));
            return new Outcome(mode, r.vm(), r.qemuReadyNanos() / 1e9, r.runningNanos() / 1e9, r.runningNanos() / 1e9, r.streamBytes(),
                    Optional.empty(), Optional.empty());
        }
        List<PageRef> ws = List.of();
        List<PageRef> rest = List.of();
        if (mode == Mode.WS) {
            RestoreTraces.Trace trace = RestoreTraces.latest(imageDir).orElseThrow(() -> new IllegalArgumentException(
                    "--mode ws: the image has no working set yet: expected a trace in " + RestoreTraces.directoryFor(imageDir)
                            + " (restore it once with --mode lazy)"));
            List<PageRef> learned = RestoreTraces.learnedWorkingSet(trace);
            ws = workingSetLimit.apply(learned);
            rest = learned.subList(ws.size(), learned.size()); // predicted pages not prefetched go first in the background
        }
        PostcopyRestore.Options options = tune.apply(PostcopyRestore.Options.lazy(vmName).withWorkingSet(ws).withBackgroundFirst(rest));
        Instant startedAt = Instant.now();
        PostcopyRestore.Result r = PostcopyRestore.restore(image, options, msg -> progress.accept(mode.label() + " restore: " + msg));
        Path trace = RestoreTraces.write(imageDir, mode.label(), startedAt, options, r);
        return new Outcome(mode, r.vm(), r.qemuReadyNanos() / 1e9, r.runningNanos() / 1e9, r.completedNanos() / 1e9, r.streamBytes(),
                Optional.of(r), Optional.of(trace));
    }
}
