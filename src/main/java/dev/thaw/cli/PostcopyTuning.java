package dev.thaw.cli;

import dev.thaw.migration.Wire;
import dev.thaw.restore.PostcopyRestore;
import dev.thaw.schedule.SchedulePolicy;
import dev.thaw.util.ThreadPriority;
import picocli.CommandLine.Option;

/** The lazy and ws restores' scheduling options, the same on every command that restores (picocli mixin). */
final class PostcopyTuning {
    private static final int PAGE_KIB = Wire.TARGET_PAGE_BYTES / 1024;

    @Option(names = "--chunk-pages", defaultValue = "" + SchedulePolicy.DEFAULT_MAX_CHUNK_PAGES,
            description = "lazy/ws: the largest background chunk in pages (default ${DEFAULT-VALUE}); a demand page waits behind at most one chunk.")
    int chunkPages;

    // No picocli default: the restore's own applies unless this is given (none while a trace records faults one by one).
    @Option(names = "--neighbour-pages",
            description = "lazy/ws: pages after a requested one sent with it (default 3, as HotRestore's 4 per fault); with --preempt they"
                    + " go on the fast channel too.")
    Integer neighbourPages;

    @Option(names = "--send-buffer-kib", defaultValue = "64",
            description = "lazy/ws: the socket send buffer in KiB (default ${DEFAULT-VALUE}); a demand page also waits behind what it holds.")
    int sendBufferKib;

    @Option(names = "--background-mbps", defaultValue = "0",
            description = "lazy/ws: pace the background stream to this many MB/s (default 0: unpaced); demand pages are never paced.")
    long backgroundMbps;

    @Option(names = "--busy-background-mbps",
            description = "lazy/ws: pace the rest of memory (after the working set's queue and the faults' regions) to this many"
                    + " MB/s while the guest's vCPUs compute (on a CPU half of each 100 ms or more), unpaced while they idle"
                    + " (default: 64 for ws, none for lazy and for a resumed restore; 0: never); demand pages are never paced.")
    Long busyBackgroundMbps;

    @Option(names = "--fault-region-kib", defaultValue = "2048",
            description = "lazy/ws: after a demand fault the background stream sends the rest of its aligned region of this many KiB"
                    + " first (default ${DEFAULT-VALUE}; 0: the predicted queue, then address order).")
    int faultRegionKib;

    // No picocli default: a restore's own default applies unless this is given (normal when the guests' vCPUs fill the host).
    @Option(names = "--background-priority",
            description = "lazy/ws: the scheduling class of the threads that stream pages once the guest runs (Thaw's sender, QEMU's"
                    + " postcopy/listen): idle (SCHED_IDLE: only CPU the guest leaves; default) or normal (the default when the"
                    + " restored guests' vCPUs, all clones' together, are at least the host's CPUs: with no CPU left idle, SCHED_IDLE"
                    + " would starve the rest of memory).")
    String backgroundPriority;

    @Option(names = "--preempt", negatable = true, defaultValue = "false",
            description = "lazy/ws: demand pages on QEMU's postcopy-preempt channel (a second connection the destination places"
                    + " from in its own thread), the background on the main one (default: ${DEFAULT-VALUE}).")
    boolean preempt;

    @Option(names = "--whole-regions", negatable = true, defaultValue = "false",
            description = "ws: prefetch the working set's nearly full 2 MiB regions whole before the rest, so that each may land in"
                    + " one transparent huge page of guest RAM (default: ${DEFAULT-VALUE}: page by page; not sooner on this host).")
    boolean wholeRegions;

    @Option(names = "--placed-prefetch", negatable = true, defaultValue = "false",
            description = "ws: send the working set after LISTEN into a QEMU held with -S, placed by its listen thread"
                    + " (UFFDIO_COPY, no page fault in QEMU), and start the guest once all of it is placed (default:"
                    + " ${DEFAULT-VALUE}: before LISTEN, copied in by QEMU's main thread; a trial).")
    boolean placedPrefetch;

    /** Refuses a bad value naming its option; call before anything starts. */
    void validate() {
        if (chunkPages < SchedulePolicy.MIN_CHUNK_PAGES || chunkPages > SchedulePolicy.MAX_CHUNK_PAGES) {
            throw new IllegalArgumentException("--chunk-pages: expected " + SchedulePolicy.MIN_CHUNK_PAGES + ".."
                    + SchedulePolicy.MAX_CHUNK_PAGES + ", actual " + chunkPages);
        }
        if (sendBufferKib < 4 || sendBufferKib > (64 << 10)) {
            throw new IllegalArgumentException("--send-buffer-kib: expected 4..65536, actual " + sendBufferKib);
        }
        priority();
        if (neighbourPages != null && (neighbourPages < 0 || neighbourPages > 511)) {
            throw new IllegalArgumentException("--neighbour-pages: expected 0..511, actual " + neighbourPages);
        }
        if (backgroundMbps < 0 || backgroundMbps > 1_000_000) {
            throw new IllegalArgumentException("--background-mbps: expected 0..1000000, actual " + backgroundMbps);
        }
        if (busyBackgroundMbps != null && (busyBackgroundMbps < 0 || busyBackgroundMbps > 1_000_000)) {
            throw new IllegalArgumentException("--busy-background-mbps: expected 0..1000000, actual " + busyBackgroundMbps);
        }
        int regionPages = faultRegionKib / PAGE_KIB;
        if (faultRegionKib < 0 || faultRegionKib % PAGE_KIB != 0 || (regionPages & (regionPages - 1)) != 0 || regionPages > (1 << 20)) {
            throw new IllegalArgumentException("--fault-region-kib: expected 0 or a power of two from " + PAGE_KIB + " to "
                    + ((1L << 20) * PAGE_KIB) + ", actual " + faultRegionKib);
        }
    }

    private java.util.Optional<ThreadPriority.Policy> priority() {
        if (backgroundPriority == null) return java.util.Optional.empty();
        return java.util.Optional.of(switch (backgroundPriority) {
            case "idle" -> ThreadPriority.Policy.IDLE;
            case "normal" -> ThreadPriority.Policy.NORMAL;
            default -> throw new IllegalArgumentException("--background-priority: expected idle or normal, actual '" + backgroundPriority + "'");
        });
    }

    /** These options applied to a restore's options. */
    PostcopyRestore.Options applyTo(PostcopyRestore.Options options) {
        validate();
        int regionPages = faultRegionKib / PAGE_KIB;
        SchedulePolicy policy = options.policy().withMaxChunkPages(chunkPages).withFaultRegionPages(regionPages)
                .withBackgroundBytesPerSecond(backgroundMbps * 1_000_000L).withWholeRegionPrefetch(wholeRegions);
        if (busyBackgroundMbps != null) policy = policy.withBusyBackgroundBytesPerSecond(busyBackgroundMbps * 1_000_000L);
        if (neighbourPages != null) policy = policy.withNeighbourPages(neighbourPages);
        PostcopyRestore.Transport t = options.transport();
        return options.withPolicy(policy).withBackgroundPriority(priority().orElse(options.backgroundPriority()))
                .withTransport(new PostcopyRestore.Transport(sendBufferKib << 10, t.stallTimeout(), t.completionTimeout(), preempt,
                        placedPrefetch || t.placedPrefetch()));
    }

    /**
     * The tuning options given on {@code commandLine}'s command line, as they were written (a flag alone, or its value after
     * it): what another command needs to tune its restores the same way.
     */
    static java.util.List<String> given(picocli.CommandLine commandLine) {
        java.util.Set<String> ours = commandLine.getCommandSpec().mixins().values().stream()
                .filter(m -> m.userObject() instanceof PostcopyTuning).flatMap(m -> m.options().stream())
                .map(picocli.CommandLine.Model.OptionSpec::longestName).collect(java.util.stream.Collectors.toSet());
        java.util.List<String> args = new java.util.ArrayList<>();
        picocli.CommandLine.ParseResult parsed = commandLine.getParseResult();
        if (parsed == null) return args;
        for (picocli.CommandLine.Model.OptionSpec o : parsed.matchedOptions()) {
            if (!ours.contains(o.longestName())) continue;
            java.util.List<String> values = o.originalStringValues();
            if (o.arity().max() == 0 || values.isEmpty()) {
                // A negatable flag given as --no-X: its value is what the command line said.
                args.add(Boolean.FALSE.equals(o.getValue()) && o.negatable() ? o.longestName().replaceFirst("^--", "--no-") : o.longestName());
            } else {
                for (String v : values) {
                    args.add(o.longestName());
                    args.add(v);
                }
            }
        }
        return args;
    }
}
