package dev.thaw.restore;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.estimate.Estimator;
import dev.thaw.estimate.PageRef;
import dev.thaw.estimate.WorkingSet;
import dev.thaw.image.CheckpointImage;
import dev.thaw.image.ImageRoundTripTest;
import dev.thaw.image.ImageWriter;
import dev.thaw.image.WorkingSetWriter;
import dev.thaw.testing.Seeds;
import dev.thaw.testing.SyntheticGuest;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Traces are best-effort and never mixed up: without QEMU, from made-up restore results. */
class RestoreTracesTest {
    /** A restore's result whose one demand fault and one event carry {@code marker}. */
    private static PostcopyRestore.Result result(int marker) {
        RestoreEventLog events = new RestoreEventLog();
        events.add(RestoreEventLog.Type.QEMU_READY, 0, marker, 1);
        return new PostcopyRestore.Result(null, 0, 1, 2, 1, 0, 0, 1, 0, 0, 1, 0,
                List.of(new PostcopyRestore.Fault(0, marker, 5, false)), new long[0], events, Optional.empty(), new long[0], -1, List.of());
    }

    private static Path image(Path dir, String test) {
        Path img = dir.resolve("img");
        ImageRoundTripTest.saveInto(img, SyntheticGuest.random(Seeds.random(test), 1, 50, 0.2, 0.1), ImageWriter.Options.defaults());
        return img;
    }

    @Test
    void aTraceThatCannotBeWrittenDoesNotFailTheRestore(@TempDir Path dir) throws Exception {
        Path img = image(dir, "aTraceThatCannotBeWrittenDoesNotFailTheRestore");
        Files.writeString(RestoreTraces.directoryFor(img), "in the way"); // the traces' directory cannot be made
        try (CheckpointImage image = CheckpointImage.open(img)) {
            assertThat(RestoreTraces.write(image, "lazy", Instant.now(), PostcopyRestore.Options.lazy("t"), result(1))).isEmpty();
        }
    }

    @Test
    void aHugetlbRestoresFaultIsRecordedAsTheRegionItMoved(@TempDir Path dir) throws Exception {
        Path img = dir.resolve("img");
        // pc.ram of 600 pages: one whole 2 MiB region and a partial one
        ImageRoundTripTest.saveInto(img, SyntheticGuest.random(Seeds.random("aHugetlbRestoresFault"), 1, 600, 600, 0.2, 0.1),
                ImageWriter.Options.defaults());
        RestoreEventLog events = new RestoreEventLog();
        PostcopyRestore.Result r = new PostcopyRestore.Result(null, 0, 1, 2, 2, 0, 0, 1, 0, 0, 1, 0,
                List.of(new PostcopyRestore.Fault(0, 512, 5, false), new PostcopyRestore.Fault(0, 0, 7, false)), new long[0], events,
                Optional.empty(), new long[0], -1, List.of());
        try (CheckpointImage image = CheckpointImage.open(img)) {
            List<long[]> huge = RestoreTraces.faultsOf(image, PostcopyRestore.GuestRam.HUGETLB, r);
            assertThat(huge).as("the partial region (88 pages), then the whole first one").hasSize(88 + 512);
            assertThat(huge.get(0)).containsExactly(0, 512, 5);
            assertThat(huge.get(87)).containsExactly(0, 599, 5);
            assertThat(huge.get(88)).containsExactly(0, 0, 7);
            assertThat(RestoreTraces.faultsOf(image, PostcopyRestore.GuestRam.DEFAULT, r)).as("4 KiB pages: the pages asked for")
                    .hasSize(2);
        }
    }

    @Test
    void concurrentRestoresOfOneImageKeepTheirOwnTraces(@TempDir Path dir) throws Exception {
        Path img = image(dir, "concurrentRestoresOfOneImageKeepTheirOwnTraces");
        int restores = 16;
        CyclicBarrier together = new CyclicBarrier(restores);
        List<CompletableFuture<Optional<Path>>> writes = new ArrayList<>();
        try (CheckpointImage image = CheckpointImage.open(img); ExecutorService threads = Executors.newVirtualThreadPerTaskExecutor()) {
            for (int i = 0; i < restores; i++) {
                int marker = i;
                writes.add(CompletableFuture.supplyAsync(() -> {
                    try {
                        together.await(10, TimeUnit.SECONDS);
                    } catch (Exception e) {
                        throw new IllegalStateException(e);
                    }
                    return RestoreTraces.write(image, "lazy", Instant.now(), PostcopyRestore.Options.lazy("t"), result(marker));
                }, threads));
            }
            Set<Long> markers = new HashSet<>();
            for (CompletableFuture<Optional<Path>> w : writes) {
                Path trace = w.get(30, TimeUnit.SECONDS).orElseThrow();
                long fromTrace = RestoreTraces.read(trace).faults().getFirst()[1];
                long fromEvents = RestoreEventLog.read(RestoreTraces.eventsFileOf(trace)).get(0).value();
                assertThat(fromEvents).as("the event log beside " + trace.getFileName()).isEqualTo(fromTrace);
                markers.add(fromTrace);
            }
            assertThat(markers).as("every restore's own trace").hasSize(restores);
        }
        assertThat(RestoreTraces.all(img)).hasSize(restores);
    }

    /**
     * A farm restores one image thousands of times: only the latest {@link RestoreTraces#KEPT_TRACES} traces stay, each with its
     * event log, numbered on from the newest, and the latest is the last restore's (the 4 GiB demo image had gathered 287, 185
     * MB, before this bound).
     */
    @Test
    void onlyTheLatestTracesStayAndNumberingGoesOn(@TempDir Path dir) throws Exception {
        int restores = RestoreTraces.KEPT_TRACES + 9;
        Path img = dir.resolve("img"); // a page per restore: each trace's fault names its restore
        ImageRoundTripTest.saveInto(img, SyntheticGuest.random(Seeds.random("onlyTheLatestTracesStayAndNumberingGoesOn"), 1, restores,
                restores, 0.2, 0.1), ImageWriter.Options.defaults());
        try (CheckpointImage image = CheckpointImage.open(img)) {
            for (int i = 0; i < restores; i++) {
                assertThat(RestoreTraces.write(image, "lazy", Instant.now(), PostcopyRestore.Options.lazy("t"), result(i))).isPresent();
            }
            assertThat(RestoreTraces.latest(image).orElseThrow().faults().getFirst()[1]).as("the last restore's").isEqualTo(restores - 1);
        }
        List<Path> kept = RestoreTraces.all(img);
        assertThat(kept).hasSize(RestoreTraces.KEPT_TRACES);
        assertThat(kept.getFirst().getFileName().toString()).as("the oldest kept").startsWith(String.format("%06d-", restores - RestoreTraces.KEPT_TRACES + 1));
        assertThat(kept.getLast().getFileName().toString()).startsWith(String.format("%06d-", restores));
        for (Path t : kept) assertThat(RestoreTraces.eventsFileOf(t)).exists();
        try (var files = Files.list(RestoreTraces.directoryFor(img))) {
            assertThat(files.count()).as("no event log left without its trace").isEqualTo(2L * RestoreTraces.KEPT_TRACES);
        }
    }

    @Test
    void numbersGoOnPastSixDigits(@TempDir Path dir) throws Exception {
        Path img = image(dir, "numbersGoOnPastSixDigits");
        Path traces = RestoreTraces.directoryFor(img);
        Files.createDirectories(traces);
        Files.writeString(traces.resolve("999999-lazy-0123abcd.json"), "{}"); // older: never read while a newer one is there
        try (CheckpointImage image = CheckpointImage.open(img)) {
            Path written = RestoreTraces.write(image, "lazy", Instant.now(), PostcopyRestore.Options.lazy("t"), result(0)).orElseThrow();
            assertThat(written.getFileName().toString()).startsWith("1000000-lazy-");
            assertThat(RestoreTraces.all(img)).last().isEqualTo(written);
            assertThat(RestoreTraces.latest(image).orElseThrow().faults().getFirst()[1]).isZero();
        }
    }

    /**
     * Found by fuzzing (restore-trace): a trace edited by hand or damaged failed a ws restore with a NullPointerException,
     * an ArrayIndexOutOfBounds or PageRef's IllegalArgumentException, or passed pages outside the image on to QEMU. Each
     * must be a RestoreException naming the trace and the entry.
     */
    @Test
    void aMalformedTraceIsARestoreErrorNamingIt(@TempDir Path dir) throws Exception {
        Path img = dir.resolve("img");
        ImageRoundTripTest.saveInto(img, SyntheticGuest.random(Seeds.random("aMalformedTraceIsARestoreErrorNamingIt"), 1, 4, 50, 0.2, 0.1),
                ImageWriter.Options.defaults());
        Path file = RestoreTraces.directoryFor(img).resolve("000001-lazy-0123abcd.json");
        Files.createDirectories(file.getParent());
        try (CheckpointImage image = CheckpointImage.open(img)) {
            String id = image.manifest().imageId();
            int pages = image.ramBlocks().getFirst().pageCount();
            Map<String, String> valid = new LinkedHashMap<>(Map.of("mode", "\"lazy\"", "imageId", "\"" + id + "\"",
                    "startedAt", "\"2026-01-01T00:00:00Z\"", "workingSet", "[[0,1]]", "faults", "[[0,2,100]]"));
            Files.writeString(file, json(valid));
            assertThat(RestoreTraces.latest(image)).isPresent();
            List<String[]> broken = List.of(new String[] {"workingSet", "null", "workingSet"}, new String[] {"faults", "null", "faults"},
                    new String[] {"workingSet", "[[0]]", "workingSet[0]"}, new String[] {"faults", "[[0,2]]", "faults[0]"},
                    new String[] {"workingSet", "[[-1,-2147483648]]", "workingSet[0]"},
                    new String[] {"startedAt", "\"yesterday\"", "startedAt"},
                    new String[] {"workingSet", "[[2147483647,0]]", "workingSet[0]"},
                    new String[] {"faults", "[[0," + pages + ",100]]", "faults[0]"},
                    new String[] {"extra", "1", "unknown field 'extra'"}, new String[] {"workingSet", "[[0,1.5]]", "workingSet[0]"},
                    new String[] {"workingSet", "[[0,4294967296]]", "workingSet[0]"}, new String[] {"workingSet", "{}", "workingSet"},
                    new String[] {"runningSeconds", "\"fast\"", "runningSeconds"}, new String[] {"faults", "[[0,1,\"x\"]]", "faults[0]"});
            for (String[] b : broken) {
                Map<String, String> fields = new LinkedHashMap<>(valid);
                fields.put(b[0], b[1]);
                Files.writeString(file, json(fields));
                org.assertj.core.api.Assertions.assertThatThrownBy(() -> Restorer.workingSet(image, WorkingSetChoice.Source.LEARNED))
                        .as(b[0] + " " + b[1]).isInstanceOf(RestoreException.class).hasMessageContaining(file.getFileName().toString())
                        .hasMessageContaining(b[2]);
                // Traces are best-effort: a restore that did not ask for the learned set goes on without it.
                assertThat(Restorer.workingSet(image, WorkingSetChoice.Source.AUTO)).as("auto, " + b[0] + " " + b[1]).isEmpty();
                assertThat(Restorer.defaultMode(image).mode()).isEqualTo(Restorer.Mode.LAZY);
            }
        }
    }

    /** The token-stream reader reads what Jackson's object mapper writes, every field, as the mapper read it. */
    @Test
    void aTraceReadsBackAsTheMapperWroteIt(@TempDir Path dir) throws Exception {
        java.util.Random random = Seeds.random("aTraceReadsBackAsTheMapperWroteIt");
        List<int[]> ws = new java.util.ArrayList<>();
        List<long[]> faults = new java.util.ArrayList<>();
        for (int i = 0; i < 5000; i++) ws.add(new int[] {random.nextInt(3), random.nextInt(Integer.MAX_VALUE)});
        for (int i = 0; i < 700; i++) faults.add(new long[] {random.nextInt(3), random.nextInt(Integer.MAX_VALUE), random.nextLong(Long.MAX_VALUE)});
        RestoreTraces.Trace written = new RestoreTraces.Trace("ws", java.util.UUID.randomUUID().toString(), "2026-11-30T17:37:42.317293751Z",
                0.863529617, 60.223762469, 44, ws, faults);
        com.fasterxml.jackson.databind.ObjectMapper mapper = new com.fasterxml.jackson.databind.ObjectMapper().findAndRegisterModules();
        Path file = dir.resolve("000001-ws-0123abcd.json");
        mapper.writeValue(file.toFile(), written);
        RestoreTraces.Trace read = RestoreTraces.read(file);
        assertThat(mapper.writeValueAsString(read)).isEqualTo(mapper.writeValueAsString(mapper.readValue(file.toFile(), RestoreTraces.Trace.class)))
                .isEqualTo(Files.readString(file));
    }

    /** {@code --ws-source image} is the section whatever traces lie beside the image: a newer one, or one that cannot be read. */
    @Test
    void theImagesOwnWorkingSetIsItsSectionWhateverTheTraces(@TempDir Path dir) throws Exception {
        Path img = dir.resolve("img");
        ImageRoundTripTest.saveInto(img, SyntheticGuest.random(Seeds.random("theImagesOwnWorkingSetIsItsSectionWhateverTheTraces"), 1, 8, 50,
                0.2, 0.1), ImageWriter.Options.defaults()); // page 7 is the trace's fault
        WorkingSet section = WorkingSet.of(Estimator.TRACE, List.of(new PageRef(0, 3), new PageRef(0, 1)), 2, "t");
        WorkingSetWriter.attach(img, section);
        try (CheckpointImage image = CheckpointImage.open(img)) {
            Path newer = RestoreTraces.write(image, "lazy", Instant.now().plusSeconds(60), PostcopyRestore.Options.lazy("t"), result(7)).orElseThrow();
            assertThat(Restorer.workingSet(image, WorkingSetChoice.Source.AUTO).orElseThrow().from()).as("auto: the newer trace")
                    .isEqualTo(WorkingSetChoice.Source.LEARNED);
            assertThat(Restorer.workingSet(image, WorkingSetChoice.Source.IMAGE)).contains(new Restorer.Chosen(section, WorkingSetChoice.Source.IMAGE));
            Files.writeString(newer, "{ damaged");
            assertThat(Restorer.workingSet(image, WorkingSetChoice.Source.IMAGE)).contains(new Restorer.Chosen(section, WorkingSetChoice.Source.IMAGE));
        }
    }

    private static String json(Map<String, String> fields) {
        StringBuilder out = new StringBuilder("{\"runningSeconds\":1,\"completedSeconds\":2,\"demandFaults\":1");
        fields.forEach((k, v) -> out.append(",\"").append(k).append("\":").append(v));
        return out.append('}').toString();
    }
}
