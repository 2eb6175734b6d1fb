package dev.thaw.restore;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import dev.thaw.estimate.PageRef;
import dev.thaw.guest.GuestAgent;
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
     * Four restores (three lazy, one ws), each broken one to three times, each break at a seeded delay of 0-1.2 s after QEMU
     * ran the guest or after the previous recovery. The background is paced (48 MiB/s) so the restore is still serving then.
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
                    boolean first = true;
                    for (long delay : delaysMillis) {
                        if (!serving.tryAcquire(60, TimeUnit.SECONDS)) return;
                        QemuVm vm = QemuVm.live(name).orElseThrow();
                        // "guest running" comes once the package is sent; QEMU 7.2 can pause a broken postcopy only once its main
                        // thread has loaded the package and run the guest (a break before that makes it exit: a CI run broke it
                        // 17 ms after the package went). The delays count from QEMU's own start of the guest.
                        for (long deadline = System.nanoTime() + 10_000_000_000L; first && !vm.qmp().queryStatus().running(); ) {
                            if (System.nanoTime() > deadline) throw new IllegalStateException(name + ": the guest did not run within 10 s");
                            Thread.sleep(5);
                        }
                        first = false;
                        Thread.sleep(delay);
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

    /**
     * {@code thaw restore --mode lazy} (twice) and {@code --mode ws} (once) in a process of its own, killed with SIGKILL at a seeded moment 0.1-1.5 s after the guest
     * started (the background paced at 48 MB/s, so pages are still flowing); its QEMU lives on, paused in postcopy, and is
     * found and resumed from this process as {@code thaw restore --resume NAME} does.
     */
    @Test
    void aThawKilledDuringALazyOrWsRestoreIsResumedByAnotherWithMemoryIntact() throws Exception {
        Random random = Seeds.random("aThawKilledDuringALazyOrWsRestoreIsResumedByAnotherWithMemoryIntact");
        String javaBinary = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        // The ws trial learns its working set from a trace beside the image: a made-up lazy restore that faulted every other
        // page of the first 16 MiB.
        try (CheckpointImage image = CheckpointImage.open(saved.imageDir())) {
            List<PostcopyRestore.Fault> faults = new ArrayList<>();
            for (int p = 0; p < 4096; p += 2) faults.add(new PostcopyRestore.Fault(0, p, p, false));
            PostcopyRestore.Result traced = new PostcopyRestore.Result(null, 0, 1, 2, faults.size(), 0, 0, faults.size(), 0, 0, 1, 0,
                    faults, new long[0], new RestoreEventLog(), java.util.Optional.empty(), new long[0], -1, List.of());
            assertThat(RestoreTraces.write(image, "lazy", java.time.Instant.now(), PostcopyRestore.Options.lazy("traced"), traced)).isPresent();
        }
        long allowedBefore = Long.parseLong(java.nio.file.Files.readString(HugePages.overcommitKnob()).strip());
        for (int trial = 0; trial < 3; trial++) {
            String name = "thaw-test-killed-" + trial;
            String mode = trial == 2 ? "ws" : "lazy";
            long delayMillis = 100 + random.nextInt(1400);
            Process thaw = new ProcessBuilder(javaBinary, "-cp", System.getProperty("java.class.path"), "dev.thaw.cli.ThawCli", "restore",
                    "--mode", mode, "--no-resume", "--background-mbps", "48", "--name", name, saved.imageDir().toString())
                    .redirectErrorStream(true).start();
            List<String> output = new java.util.concurrent.CopyOnWriteArrayList<>();
            Thread.ofPlatform().daemon().name("thaw-output-" + name).start(() -> {
                try (var lines = new java.io.BufferedReader(new java.io.InputStreamReader(thaw.getInputStream()))) {
                    for (String line; (line = lines.readLine()) != null; ) {
                        output.add(line);
                    }
                } catch (java.io.IOException e) {
                    // the process is gone
                }
            });
            try {
                // The delay counts from QEMU having run the guest (a kill before RUN makes QEMU fail the load and exit: nothing to
                // resume, a new restore is the answer then). Thaw's own "guest running" line may be held back by its one-a-second
                // status rate, and its last line says it too.
                awaitRunning(name, output);
                Thread.sleep(delayMillis);
                dev.thaw.testing.Signals.send("KILL", thaw.pid());
                assertThat(thaw.waitFor(10, TimeUnit.SECONDS)).isTrue();
                PausedRestores.Paused paused = PausedRestores.find(QemuVm.RUN_DIR_PARENT, name);
                assertThat(paused.marker().thawPid()).isEqualTo(thaw.pid());
                try (CheckpointImage image = CheckpointImage.open(saved.imageDir())) {
                    Restorer.Outcome o = Restorer.resume(image, paused, opt -> opt, s -> {});
                    try (QemuVm vm = o.vm()) {
                        PostcopyRestore.Result r = o.postcopy().orElseThrow();
                        System.err.printf("%s (" + mode + "): killed %d ms after the guest started; resumed: %d recovery, %d demand, %d background pages,"
                                + " completed %.2f s after the resume began%n", name, delayMillis, r.recoveries(), r.demandPages(),
                                r.backgroundPages(), r.completedNanos() / 1e9);
                        assertThat(r.recoveries()).as(name + ": QEMU was paused, not done").isEqualTo(1);
                        assertThat(vm.qmp().queryMigrate().completed()).isTrue();
                        try (GuestAgent agent = GuestAgent.connect(vm)) {
                            agent.awaitReady(Duration.ofSeconds(30));
                            assertThat(agent.memsum()).as(name + ": the guest's memory").isEqualTo(saved.before());
                        }
                    }
                }
            } finally {
                thaw.destroyForcibly();
                killLeftOver(name); // only a QEMU nobody owns any more: a failed trial's
            }
        }
        // The ws trial's guest RAM is in 2 MiB pages where the host's 4 KiB touch is costly: the killed Thaw's surplus-page
        // allowance must end with the QEMU it was for, ended here.
        assertThat(Long.parseLong(java.nio.file.Files.readString(HugePages.overcommitKnob()).strip()))
                .as("the surplus pages the killed Thaws allowed, given back").isEqualTo(allowedBefore);
    }

    /** Waits until the QEMU named {@code name} (another process's) reports its guest running, through its extra QMP socket. */
    private static void awaitRunning(String name, List<String> output) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        while (System.nanoTime() < deadline) {
            try (var dirs = java.nio.file.Files.newDirectoryStream(QemuVm.RUN_DIR_PARENT, QemuVm.RUN_DIR_PREFIX + "*")) {
                for (Path dir : dirs) {
                    Path config = dir.resolve(QemuVm.CONFIG_FILE);
                    if (!java.nio.file.Files.isRegularFile(config) || !java.nio.file.Files.readString(config).contains("\"" + name + "\"")) {
                        continue;
                    }
                    try (dev.thaw.qemu.QmpClient qmp = dev.thaw.qemu.QmpClient.connect(dir.resolve(QemuVm.EXTRA_QMP_SOCKET), name,
                            Duration.ofSeconds(10), () -> true)) {
                        while (System.nanoTime() < deadline) {
                            if (qmp.queryStatus().running()) return;
                            Thread.sleep(10);
                        }
                    }
                }
            }
            Thread.sleep(10);
        }
        throw new AssertionError(name + ": expected its guest running within 120 s, actual not; Thaw's output: " + output);
    }

    /** A QEMU named {@code name} still alive (a failed trial): attached to and killed, so no guest outlives the test. */
    private static void killLeftOver(String name) {
        for (PausedRestores.Paused p : PausedRestores.list(QemuVm.RUN_DIR_PARENT)) {
            if (!p.vmName().equals(name)) continue;
            try {
                QemuVm.attach(p.runDir()).close();
            } catch (RuntimeException e) {
                dev.thaw.testing.Signals.send("KILL", p.qemuPid()); // the trial's own error is the one to report
            }
        }
    }
}
