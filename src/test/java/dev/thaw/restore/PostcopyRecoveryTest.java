package dev.thaw.restore;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import dev.thaw.estimate.PageRef;
import dev.thaw.image.CheckpointImage;
import dev.thaw.qemu.QemuVm;
import dev.thaw.qemu.QmpException;
import dev.thaw.testing.RestoredGuest;
import dev.thaw.testing.Seeds;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * QEMU's postcopy recovery on the real QEMU: the connection of a lazy or ws restore is broken at seeded random moments
 * ({@code migrate-pause} on the destination shuts its socket down, as a network failure would), Thaw recovers, and the guest
 * ends with the saved memory.
 */
class PostcopyRecoveryTest {
    @TempDir
    static Path dir;
    static RestoredGuest.SavedGuest saved;

    @BeforeAll
    static void saveTheDemoGuest() throws Exception {
        saved = RestoredGuest.saveSmallGuest("thaw-test-recover-src", dir.resolve("image"));
    }

    /**
     * Four restores (three lazy, one ws), each broken one to three times, each break at a seeded delay of 0-1.2 s after the
     * guest started or after the previous recovery. The background is paced (48 MiB/s) so the restore is still serving then.
     */
    @Test
    void brokenConnectionsAtRandomPointsAreRecoveredWithMemoryIntact() throws Exception {
        Random random = Seeds.random("brokenConnectionsAtRandomPointsAreRecoveredWithMemoryIntact");
        int totalBreaks = 0;
        for (int trial = 0; trial < 4; trial++) {
            String name = "thaw-test-recover-" + trial;
            int breaks = 1 + random.nextInt(3);
            List<Long> delaysMillis = new ArrayList<>();
            for (int i = 0; i < breaks; i++) delaysMillis.add((long) random.nextInt(1200));
            PostcopyRestore.Options options = PostcopyRestore.Options.lazy(name)
                    .withPolicy(dev.thaw.schedule.SchedulePolicy.defaults().withBackgroundBytesPerSecond(48L << 20));
            if (trial == 3) {
                List<PageRef> ws = new ArrayList<>();
                for (int p = 0; p < 4096; p += 2) ws.add(new PageRef(0, p));
                options = options.withWorkingSet(ws);
            }
            // "guest running" and every "recovered" release the breaker for its next break.
            Semaphore serving = new Semaphore(0);
            AtomicInteger paused = new AtomicInteger();
            Thread breaker = Thread.ofPlatform().daemon().name("breaker-" + name).start(() -> {
                try {
                    for (long delay : delaysMillis) {
                        if (!serving.tryAcquire(60, TimeUnit.SECONDS)) return;
                        Thread.sleep(delay);
                        QemuVm vm = QemuVm.live(name).orElseThrow();
                        try {
                            vm.qmp().executeOob("migrate-pause", JsonNodeFactory.instance.objectNode(), Duration.ofSeconds(5));
                            paused.incrementAndGet();
                        } catch (QmpException.CommandFailed e) {
                            System.err.println(name + ": no break at +" + delay + " ms: " + e.getMessage()); // completed already
                            return;
                        }
                    }
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            });
            try (CheckpointImage image = CheckpointImage.open(saved.imageDir())) {
                PostcopyRestore.Result r = PostcopyRestore.restore(image, options, s -> {
                    if (s.startsWith("guest running") || s.startsWith("recovered")) serving.release();
                });
                breaker.join(10_000);
                try (QemuVm vm = r.vm()) {
                    System.err.printf("%s: breaks planned %s, made %d, recovered %d; completed %.2f s, %d demand, %d background pages%n",
                            name, delaysMillis, paused.get(), r.recoveries(), r.completedNanos() / 1e9, r.demandPages(), r.backgroundPages());
                    assertThat(r.recoveries()).as(name + ": every break recovered").isEqualTo(paused.get());
                    assertThat(vm.qmp().queryMigrate().completed()).isTrue();
                    assertThat(r.zeroPagesUnsent()).as("only zero pages never sent").isLessThanOrEqualTo(r.pageCount());
                    RestoredGuest.assertSameMemoryAndRunsOn(vm, saved.before(), saved.lastSeqBefore());
                }
            }
            totalBreaks += paused.get();
        }
        assertThat(totalBreaks).as("breaks that happened while pages were still being served").isGreaterThanOrEqualTo(4);
        assertThat(QemuVm.live()).isEmpty();
    }
}
