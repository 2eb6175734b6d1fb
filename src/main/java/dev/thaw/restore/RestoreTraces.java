package dev.thaw.restore;

import dev.thaw.estimate.PageRef;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
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
import java.util.ArrayList;
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
        try (JsonParser in = JSON.getFactory().createParser(trace.toFile())) {
            return parse(in);
        } catch (IOException | IllegalArgumentException e) {
            throw new RestoreException("cannot read the restore trace " + trace + ": " + e.getMessage(), e);
        }
    }

    /**
     * A trace from Jackson's token stream, its pages straight into arrays: a ws restore that learns from the latest trace
     * (tens of thousands of pages) parses it between the image's open and QEMU's launch, where binding it to the record through
     * Jackson's object mapper cost a fresh JVM about 0.36 s for a 4 GiB guest's (twentieth session). The same fields as the
     * record, each once; any other is refused, as the mapper refused it.
     */
    static Trace parse(JsonParser in) throws IOException {
        expect(in, in.nextToken(), JsonToken.START_OBJECT, "the trace");
        String mode = null, imageId = null, startedAt = null;
        double running = 0, completed = 0;
        long faultsCount = 0;
        List<int[]> workingSet = null;
        List<long[]> faults = null;
        java.util.Set<String> seen = new java.util.HashSet<>();
        for (JsonToken t = in.nextToken(); t != JsonToken.END_OBJECT; t = in.nextToken()) {
            expect(in, t, JsonToken.FIELD_NAME, "a field name");
            String field = in.currentName();
            if (!seen.add(field)) throw new IllegalArgumentException("trace: field " + field + " twice");
            JsonToken value = in.nextToken();
            switch (field) {
                case "mode" -> mode = text(in, value, field);
                case "imageId" -> imageId = text(in, value, field);
                case "startedAt" -> startedAt = text(in, value, field);
                case "runningSeconds" -> running = number(in, value, field).doubleValue();
                case "completedSeconds" -> completed = number(in, value, field).doubleValue();
                case "demandFaults" -> faultsCount = number(in, value, field).longValue();
                case "workingSet" -> {
                    workingSet = new ArrayList<>();
                    List<long[]> rows = rows(in, value, field);
                    for (int i = 0; rows != null && i < rows.size(); i++) workingSet.add(ints(rows.get(i), i));
                    if (rows == null) workingSet = null;
                }
                case "faults" -> faults = rows(in, value, field);
                default -> throw new IllegalArgumentException("trace: expected the fields of a trace, actual an unknown field '" + field + "'");
            }
        }
        return new Trace(mode, imageId, startedAt, running, completed, faultsCount, workingSet, faults);
    }

    /** A working-set row as ints; one out of int's range is refused, as the mapper refused it. */
    private static int[] ints(long[] row, int index) {
        if (row == null) return null;
        int[] out = new int[row.length];
        for (int j = 0; j < row.length; j++) {
            if (row[j] < Integer.MIN_VALUE || row[j] > Integer.MAX_VALUE) {
                throw new IllegalArgumentException("trace workingSet[" + index + "]: expected integers of 32 bits, actual " + row[j]);
            }
            out[j] = (int) row[j];
        }
        return out;
    }

    private static void expect(JsonParser in, JsonToken actual,
                               JsonToken expected, String what) {
        if (actual != expected) {
            throw new IllegalArgumentException("trace at " + in.currentLocation().getCharOffset() + ": expected " + what + ", actual " + actual);
        }
    }

    private static String text(JsonParser in, JsonToken t, String field) throws IOException {
        if (t == JsonToken.VALUE_NULL) return null;
        expect(in, t, JsonToken.VALUE_STRING, field + " as a string");
        return in.getText();
    }

    private static Number number(JsonParser in, JsonToken t, String field) throws IOException {
        if (t != JsonToken.VALUE_NUMBER_INT && t != JsonToken.VALUE_NUMBER_FLOAT) {
            throw new IllegalArgumentException("trace at " + in.currentLocation().getCharOffset() + ": expected " + field + " as a number, actual " + t);
        }
        return in.getNumberValue();
    }

    /** An array of arrays of integers ({@code [[0, 192], ...]}); a null row stays null, for the record's checks to name it. */
    private static List<long[]> rows(JsonParser in, JsonToken t, String field) throws IOException {
        if (t == JsonToken.VALUE_NULL) return null;
        expect(in, t, JsonToken.START_ARRAY, field + " as an array");
        List<long[]> out = new ArrayList<>();
        long[] row = new long[4];
        for (JsonToken r = in.nextToken(); r != JsonToken.END_ARRAY; r = in.nextToken()) {
            if (r == JsonToken.VALUE_NULL) {
                out.add(null);
                continue;
            }
            expect(in, r, JsonToken.START_ARRAY, field + "[" + out.size() + "] as an array");
            int n = 0;
            for (JsonToken v = in.nextToken(); v != JsonToken.END_ARRAY; v = in.nextToken()) {
                if (v != JsonToken.VALUE_NUMBER_INT) {
                    throw new IllegalArgumentException("trace " + field + "[" + out.size() + "]: expected integers, actual " + v);
                }
                if (n == row.length) row = java.util.Arrays.copyOf(row, n * 2);
                row[n++] = in.getLongValue();
            }
            out.add(java.util.Arrays.copyOf(row, n));
        }
        return out;
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
