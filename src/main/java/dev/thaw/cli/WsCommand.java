package dev.thaw.cli;

import dev.thaw.estimate.WorkingSet;
import dev.thaw.image.CheckpointImage;
import dev.thaw.restore.RestoreTraces;
import dev.thaw.restore.Restorer;
import dev.thaw.restore.WorkingSetChoice;
import java.nio.file.Path;
import java.util.Optional;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "ws", mixinStandardHelpOptions = true,
        description = {"Show an image's working-set estimate (and with --learn, store the learned one in it).",
                "Shows the image's working-set section (the estimator that made it, the queue, the estimated size, how its",
                "pages are laid out), the working set learned from its latest restore, and what a ws restore would prefetch.",
                "--learn stores the learned working set in the image, its pages copied in queue order so that a restore reads",
                "its prefetch sequentially; the switch is atomic (the image stays valid throughout). Restores never do this."})
final class WsCommand implements Callable<Integer> {
    @Parameters(index = "0", description = "The image directory.")
    Path image;

    @Option(names = "--json", description = "Print the report as one JSON object.")
    boolean json;

    @Option(names = "--learn", description = "Store the working set learned from the latest restore in the image (re-laid out).")
    boolean learn;

    @Option(names = "--ws-fraction", description = "The prefetch fraction to report (default: elastic, as a ws restore chooses:"
            + " half of a clustered estimate, the whole of a scattered one).")
    Double fraction;

    record Estimate(String estimator, int queuedPages, long estimatedPages, String description, Long copiedPages, Integer extents,
                    Long storedBytes) {
        static Estimate of(WorkingSet ws, CheckpointImage.WorkingSetLayout layout) {
            return new Estimate(ws.estimator().label(), ws.size(), ws.estimatedPageCount(), ws.description(),
                    layout == null ? null : layout.copiedPageCount(), layout == null ? null : layout.extentCount(),
                    layout == null ? null : layout.storedBytes());
        }
    }

    record WsReport(String image, Estimate section, Estimate learned, String wsRestoreUses, Integer prefetchPages, Integer backgroundFirstPages,
                    String prefetchSizing) {}

    @Override
    public Integer call() {
        if (learn) {
            WorkingSet learned = RestoreTraces.attachLearned(image);
            (json ? System.err : System.out).printf("stored the learned working set (%d pages) in %s%n", learned.size(), image);
        }
        try (CheckpointImage img = CheckpointImage.open(image)) {
            Estimate section = img.workingSet().map(w -> Estimate.of(w, img.workingSetLayout().orElse(null))).orElse(null);
            Estimate learned = RestoreTraces.latest(img).map(t -> Estimate.of(RestoreTraces.learned(t), null)).orElse(null);
            Optional<Restorer.Chosen> chosen = Restorer.workingSet(img, WorkingSetChoice.Source.AUTO).filter(c -> c.workingSet().size() > 0);
            Optional<WorkingSet> used = chosen.map(Restorer.Chosen::workingSet);
            Optional<Restorer.Plan> plan = used.map(w -> Restorer.plan(w, new WorkingSetChoice(WorkingSetChoice.Source.AUTO,
                    java.util.OptionalInt.empty(), fraction == null ? java.util.OptionalDouble.empty() : java.util.OptionalDouble.of(fraction))));
            Integer prefetch = plan.map(p -> p.prefetch().size()).orElse(null);
            String uses = chosen.map(c -> c.from().name().toLowerCase(java.util.Locale.ROOT))
                    .orElse("none (a ws restore would fail; lazy is the default)");
            WsReport report = new WsReport(img.directory().toString(), section, learned, uses, prefetch,
                    used.map(w -> w.size() - prefetch).orElse(null), plan.map(Restorer.Plan::sizing).orElse(null));
            if (json) {
                System.out.println(Json.write(report));
                return 0;
            }
            System.out.println("image " + img.directory());
            print("working-set section", section);
            print("learned from the latest restore", learned);
            if (used.isEmpty()) {
                System.out.println("a ws restore: " + uses);
            } else {
                System.out.printf("a ws restore uses the %s working set: prefetches %d pages (%s), then %d more first in the"
                        + " background%n", uses, prefetch, plan.get().sizing(), used.get().size() - prefetch);
            }
            return 0;
        }
    }

    private static void print(String what, Estimate e) {
        if (e == null) {
            System.out.println(what + ": none");
            return;
        }
        System.out.printf("%s: %s, %d pages queued, estimated size %d pages (%.1f MiB)%n  %s%n", what, e.estimator(), e.queuedPages(),
                e.estimatedPages(), e.estimatedPages() * 4096 / 1048576.0, e.description());
        if (e.copiedPages() != null) {
            System.out.printf("  layout: %d non-zero pages copied in queue order into %d extents (%.1f MiB), read sequentially by a restore%n",
                    e.copiedPages(), e.extents(), e.storedBytes() / 1048576.0);
        }
    }
}
