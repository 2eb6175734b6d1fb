package dev.thaw.cli;

import dev.thaw.restore.RestoreTimeline;
import dev.thaw.restore.RestoreEventLog;
import dev.thaw.restore.RestoreTraces;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "timeline", mixinStandardHelpOptions = true,
        description = {"Summarize the timelines of an image's lazy and ws restores.",
                "Summarizes the event logs that lazy and ws restores of an image left beside it (IMAGE.restores/):",
                "when the guest ran, when the restore completed, demand faults and how long they waited, the",
                "background rate, and demand faults per 100 ms after the guest started."})
final class TimelineCommand implements Callable<Integer> {
    @Parameters(index = "0", description = "The image directory.")
    Path image;

    @Option(names = "--json", description = "Print every restore's summary as JSON.")
    boolean json;

    record Entry(String trace, String mode, String startedAt, RestoreTimeline timeline) {}

    @Override
    public Integer call() throws IOException {
        List<Path> traces = RestoreTraces.all(image);
        if (traces.isEmpty()) {
            throw new IllegalArgumentException("no restore of " + image + " has left a timeline: expected event logs in "
                    + RestoreTraces.directoryFor(image) + " (lazy and ws restores write them)");
        }
        List<Entry> entries = new ArrayList<>();
        for (Path t : traces) {
            RestoreTraces.Trace trace = RestoreTraces.read(t);
            RestoreTimeline tl = RestoreTimeline.of(RestoreEventLog.read(RestoreTraces.eventsFileOf(t)));
            entries.add(new Entry(t.getFileName().toString(), trace.mode(), trace.startedAt(), tl));
        }
        if (json) {
            System.out.println(Json.write(entries));
            return 0;
        }
        System.out.printf("%-25s %-5s %8s %9s %10s %8s %7s %10s %10s %12s  %s%n", "restore", "mode", "running", "completed", "prefetched",
                "faults", "dups", "svc p50", "svc p99", "background", "faults per 100 ms after running");
        for (Entry e : entries) {
            RestoreTimeline t = e.timeline();
            List<Integer> h = t.faultsPer100Ms();
            System.out.printf("%-25s %-5s %6.2f s %7.2f s %10d %8d %7d %7.0f us %7.0f us %7.0f MB/s  %s%n", e.trace(), e.mode(),
                    t.runningSeconds(), t.completedSeconds(), t.prefetchedPages(), t.demandFaults(), t.duplicateRequests(),
                    t.serviceMedianMicros(), t.serviceP99Micros(), t.backgroundPagesPerSecond() * 4096 / 1e6,
                    h.subList(0, Math.min(20, h.size())) + (h.size() > 20 ? " ..." : ""));
        }
        return 0;
    }
}
