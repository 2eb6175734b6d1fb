package dev.thaw.restore;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.image.CheckpointImage;
import dev.thaw.image.ImageRoundTripTest;
import dev.thaw.image.ImageWriter;
import dev.thaw.testing.Seeds;
import dev.thaw.testing.SyntheticGuest;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
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
}
