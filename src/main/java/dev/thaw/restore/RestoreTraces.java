package dev.thaw.restore;

import dev.thaw.estimate.PageRef;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.thaw.estimate.FaultOrder;
import dev.thaw.estimate.WorkingSet;
import dev.thaw.image.CheckpointImage;
import dev.thaw.image.WorkingSetWriter;
import dev.thaw.migration.RamBlock;
import dev.thaw.schedule.PageScheduler;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Instant;
import java.util.List;
import java.util.Optional;
import java.util.UUID;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The record each lazy or working-set restore leaves beside its image (never inside it: a restore
 * never writes to the image): in {@code IMAGE.restores/NNNNNN-MODE-UNIQUE.json}, the image's id, the
 * working set it prefetched and the demand faults it served, in arrival order. The working set
 * learned from the latest trace ({@link FaultOrder#learned}): the pages it prefetched, then the
 * pages it still had to fault in. Traces of another image that had the same path are ignored.
 * Traces are best-effort: a restore that succeeded never fails for want of one.
 */
public final class RestoreTraces {
    private static final Logger log = LoggerFactory.getLogger(RestoreTraces.class);
    private static final ObjectMapper JSON = new ObjectMapper().findAndRegisterModules();

    /** One restore. Pages are {@code [block, page]}; fault times are nanoseconds after the restore began. */
    public record Trace(String mode, String imageId, String startedAt, double runningSeconds, double completedSeconds,
                        long demandFaults, List<int[]> workingSet, List<long[]> faults) {
        /** A trace is read back from a file anyone may have edited: what readers use is checked as it is parsed. */
        public Trace {
            if (mode == null || imageId == null || startedAt == null || workingSet == null || faults == null) {
                throw new IllegalArgumentException("trace: expected mode, imageId, startedAt, workingSet and faults, actual "
                        + "mode " + mode + ", imageId " + imageId + ", startedAt " + startedAt + (workingSet == null ? ", no workingSet" : "")
                        + (faults == null ? ", no faults" : ""));
            }
            try {
                Instant.parse(startedAt);
            } catch (java.time.format.DateTimeParseException e) {
                throw new IllegalArgumentException("trace startedAt: expected an ISO-8601 instant, actual '" + startedAt + "'");
            }
            for (int i = 0; i < workingSet.size(); i++) {
                int[] p = workingSet.get(i);
                if (p == null || p.length != 2 || p[0] < 0 || p[1] < 0) {
                    throw new IllegalArgumentException("trace workingSet[" + i + "]: expected [block, page] >= 0, actual "
                            + java.util.Arrays.toString(p));
                }
            }
            for (int i = 0; i < faults.size(); i++) {
                long[] f = faults.get(i);
                if (f == null || f.length != 3 || f[0] < 0 || f[0] > Integer.MAX_VALUE || f[1] < 0 || f[1] > Integer.MAX_VALUE) {
                    throw new IllegalArgumentException("trace faults[" + i + "]: expected [block, page, nanoseconds] with block and page"
                            + " 0.." + Integer.MAX_VALUE + ", actual " + java.util.Arrays.toString(f));
                }
            }
        }

        /** Every page inside the image's blocks: the learned working set becomes page addresses sent to QEMU. */
        void checkPagesIn(List<RamBlock> blocks, Path file) {
            for (int i = 0; i < workingSet.size(); i++) checkPage(blocks, file, "workingSet[" + i + "]", workingSet.get(i)[0], workingSet.get(i)[1]);
            for (int i = 0; i < faults.size(); i++) checkPage(blocks, file, "faults[" + i + "]", faults.get(i)[0], faults.get(i)[1]);
        }

        private static void checkPage(List<RamBlock> blocks, Path file, String what, long block, long page) {
            if (block >= blocks.size() || page >= blocks.get((int) block).pageCount()) {
                throw new RestoreException("restore trace " + file + ": " + what + ": expected a page of the image's " + blocks.size()
                        + " RAM blocks, actual block " + block + " page " + page, null);
            }
        }
    }

    private RestoreTraces() {}

    public static Path directoryFor(Path image) {
        return dev.thaw.util.FileTrees.beside(image, "restores");
    }

    /** Deletes the image's traces (when the image itself is removed); false if it had none. */
    public static boolean deleteFor(Path image) {
        return dev.thaw.util.FileTrees.deleteDirectory(directoryFor(image));
    }

    /**
     * Writes the trace and its event log, each atomically, under a name no concurrent restore of the image takes;
     * the event log first, so a trace always names its own restore's log. Best-effort: when they cannot be written
     * (a read-only directory, a full disk) this warns and returns empty, since failing would lose the guest the
     * restore just brought back.
     */
    public static Optional<Path> write(CheckpointImage image, String mode, Instant startedAt, PostcopyRestore.Options options,
                                       PostcopyRestore.Result r) {
        Path dir = directoryFor(image.directory());
        try {
            Files.createDirectories(dir);
            String unique = UUID.randomUUID().toString().substring(0, 8);
            Path file = dir.resolve(String.format("%06d-%s-%s.json", lastNumber(list(dir)) + 1, mode, unique));
            List<int[]> ws = options.workingSet().stream().map(p -> new int[] {p.block(), p.page()}).toList();
            List<long[]> faults = faultsOf(image, options.guestRam(), r);
            Trace trace = new Trace(mode, image.manifest().imageId(), startedAt.toString(), r.runningNanos() / 1e9, r.completedNanos() / 1e9, r.demandFaults(), ws, faults);
            r.events().write(eventsFileOf(file));
            Path tmp = Files.createTempFile(dir, ".trace", ".tmp");
            try {
                JSON.writeValue(tmp.toFile(), trace);
                Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE);
            } finally {
                Files.deleteIfExists(tmp);
            }
            prune(dir);
            return Optional.of(file);
        } catch (IOException | RuntimeException e) {
            log.warn("the restore of {} succeeded, but its trace could not be written in {}: {}", image.directory(), dir, e.toString());
            return Optional.empty();
        }
    }

    /**
     * The demand faults a trace records, in arrival order. In hugetlb guest RAM QEMU asks for pc.ram by 2 MiB page, so a fault
     * names its region's first page, not the page the guest touched: it is recorded as the whole region (what moved), so that
     * a restore learning from it prefetches what the guest found there rather than one page per region.
     */
    static List<long[]> faultsOf(CheckpointImage image, PostcopyRestore.GuestRam guestRam, PostcopyRestore.Result r) {
        List<long[]> faults = new java.util.ArrayList<>();
        for (PostcopyRestore.Fault f : r.faults()) {
            if (f.alreadySent()) continue;
            dev.thaw.migration.RamBlock block = image.ramBlocks().get(f.block());
            if (guestRam == PostcopyRestore.GuestRam.HUGETLB && block.name().equals("pc.ram")) {
                long first = f.page() - f.page() % PageScheduler.REGION_PAGES;
                for (long p = first; p < Math.min(first + PageScheduler.REGION_PAGES, block.pageCount()); p++) faults.add(new long[] {f.block(), p, f.atNanos()});
            } else {
                faults.add(new long[] {f.block(), f.page(), f.atNanos()});
            }
        }
        return faults;
    }

    /**
     * Traces kept per image: a restore learns from the latest only, and each is about 0.8 MB for a 4 GiB guest, so a farm that
     * restores an image thousands of times must not keep them all (the 4 GiB bench image had gathered 287 traces, 185 MB).
     */
    public static final int KEPT_TRACES = 32;

    /** Deletes all but the newest {@link #KEPT_TRACES} traces, each with its event log (concurrent writers may both try). */
    private static void prune(Path dir) throws IOException {
        List<Path> traces = list(dir);
        for (Path old : traces.subList(0, Math.max(0, traces.size() - KEPT_TRACES))) {
            Files.deleteIfExists(eventsFileOf(old)); // the log first: a trace left alone still reads
            Files.deleteIfExists(old);
        }
    }

    /** The number of the newest trace, 0 if none: numbers go on after older traces were pruned, so names sort by age. */
    private static long lastNumber(List<Path> traces) {
        return traces.isEmpty() ? 0 : numberOf(traces.getLast());
    }

    private static long numberOf(Path trace) {
        String name = trace.getFileName().toString();
        return Long.parseLong(name.substring(0, name.indexOf('-')));
    }

    /** The event log written beside a trace. */
    public static Path eventsFileOf(Path trace) {
        return trace.resolveSibling(trace.getFileName().toString().replace(".json", ".events"));
    }

    /** Every trace of this image, oldest first. */
    public static List<Path> all(Path image) {
        try {
            return list(directoryFor(image));
        } catch (IOException e) {
            throw new RestoreException("cannot list the restore traces of " + image + ": " + e.getMessage(), e);
        }
    }

    public static Trace read(Path trace) {
        try {
            return JSON.readValue(trace.toFile(), Trace.class);
        } catch (IOException e) {
            throw new RestoreException("cannot read the restore trace " + trace + ": " + e.getMessage(), e);
        }
    }

    private static List<Path> list(Path dir) throws IOException {
        if (!Files.isDirectory(dir)) return List.of();
        try (Stream<Path> files = Files.list(dir)) {
            // Six digits at least, ordered by number: names past 999,999 still sort after the older ones.
            return files.filter(p -> p.getFileName().toString().matches("\\d{6,}-[a-z]+(-[0-9a-f]{8})?\\.json"))
                    .sorted(java.util.Comparator.comparingLong(RestoreTraces::numberOf).thenComparing(Path::getFileName)).toList();
        }
    }

    /** The latest trace of this image, if any restore of it left one. */
    public static Optional<Trace> latest(CheckpointImage image) {
        for (Path p : all(image.directory()).reversed()) {
            Trace t = read(p);
            if (image.manifest().imageId().equals(t.imageId())) {
                t.checkPagesIn(image.ramBlocks(), p);
                return Optional.of(t);
            }
        }
        return Optional.empty();
    }

    /** The working set learned from a trace: its prefetched pages, then its demand faults, in order, without repeats. */
    public static WorkingSet learned(Trace trace) {
        List<PageRef> prefetched = trace.workingSet().stream().map(p -> new PageRef(p[0], p[1])).toList();
        List<FaultOrder.Touch> faults = trace.faults().stream().map(f -> new FaultOrder.Touch(new PageRef((int) f[0], (int) f[1]), f[2])).toList();
        return FaultOrder.learned(prefetched, faults);
    }

    /**
     * Stores the working set learned from the image's latest restore in the image ({@code thaw ws --learn}), re-laid out,
     * atomically; returns it.
     */
    public static WorkingSet attachLearned(Path image) {
        WorkingSet learned;
        try (CheckpointImage img = CheckpointImage.open(image)) {
            learned = latest(img).map(RestoreTraces::learned).orElseThrow(() -> new IllegalArgumentException(
                    "--learn: expected a restore trace of this image in " + directoryFor(image) + ", actual none"));
        }
        WorkingSetWriter.attach(image, learned);
        return learned;
    }
}
