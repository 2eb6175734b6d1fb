package dev.thaw.restore;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.catchThrowable;

import dev.thaw.image.CheckpointImage;
import dev.thaw.qemu.QemuVm;
import dev.thaw.schedule.SchedulePolicy;
import dev.thaw.testing.RestoredGuest;
import dev.thaw.testing.Seeds;
import dev.thaw.testing.Signals;
import dev.thaw.testing.TreeDigest;
import dev.thaw.util.ExternalCommand;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Random;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Fault injection around restores on the real QEMU (issue 15): two restores of one image at once, an image on a read-only
 * file system, the restoring QEMU stopped (SIGSTOP) and killed (SIGKILL) mid-restore. One small demo guest, saved once.
 */
class RestoreFaultsTest {
    @TempDir
    static Path dir;
    /** The writable directory of the image, its traces and its RAM file. */
    static Path store;
    static RestoredGuest.SavedGuest saved;

    @BeforeAll
    static void saveTheDemoGuestWithATrace() throws Exception {
        store = Files.createDirectories(dir.resolve("store"));
        saved = RestoredGuest.saveSmallGuest("thaw-test-faults-src", store.resolve("image"));
        // A ws restore learns its working set from a trace: a made-up lazy restore that faulted every other page of 16 MiB.
        try (CheckpointImage image = CheckpointImage.open(saved.imageDir())) {
            List<PostcopyRestore.Fault> faults = new ArrayList<>();
            for (int p = 0; p < 4096; p += 2) faults.add(new PostcopyRestore.Fault(0, p, p, false));
            PostcopyRestore.Result traced = new PostcopyRestore.Result(null, 0, 1, 2, faults.size(), 0, 0, faults.size(), 0, 0, 1, 0,
                    faults, new long[0], new RestoreEventLog(), Optional.empty(), new long[0], -1, List.of());
            assertThat(RestoreTraces.write(image, "lazy", Instant.now(), PostcopyRestore.Options.lazy("traced"), traced)).isPresent();
        }
    }

    private static Restorer.Outcome restore(CheckpointImage image, Restorer.Mode mode, String name) {
        return Restorer.restore(image, mode, name, WorkingSetChoice.defaults(), o -> o, s -> {});
    }

    /** The outcome's guest holds the saved memory and runs on; its QEMU is closed after. */
    private static void checkGuest(Restorer.Outcome o) throws Exception {
        try (QemuVm vm = o.vm()) {
            assertThat(vm.qmp().queryStatus().running()).as(vm.name() + " runs").isTrue();
            RestoredGuest.assertSameMemoryAndRunsOn(vm, saved.before(), saved.lastSeqBefore());
        }
    }

    /** Runs every task at once (released together) and returns their outcomes; the QEMUs of those that succeeded are closed on failure. */
    private static List<Restorer.Outcome> atOnce(List<Callable<Restorer.Outcome>> tasks) throws Exception {
        CountDownLatch go = new CountDownLatch(1);
        List<Future<Restorer.Outcome>> futures = new ArrayList<>();
        try (ExecutorService pool = Executors.newFixedThreadPool(tasks.size())) {
            for (Callable<Restorer.Outcome> task : tasks) {
                futures.add(pool.submit(() -> {
                    go.await();
                    return task.call();
                }));
            }
            go.countDown();
        }
        List<Restorer.Outcome> outcomes = new ArrayList<>();
        Throwable failure = null;
        for (Future<Restorer.Outcome> f : futures) {
            try {
                outcomes.add(f.get());
            } catch (java.util.concurrent.ExecutionException e) {
                if (failure == null) failure = e.getCause();
            }
        }
        if (failure != null) {
            for (Restorer.Outcome o : outcomes) o.vm().close();
            throw new AssertionError("a restore run beside another failed: " + failure, failure);
        }
        return outcomes;
    }

    /**
     * A lazy, a ws and a mapped restore of one image at once, each with the image opened by itself as separate processes would
     * (the mapped one writes the RAM file meanwhile): every guest gets the saved memory, the lazy and ws restores each leave
     * their own trace paired with their own event log, and the image is unchanged.
     */
    @Test
    void aLazyAWsAndAMappedRestoreOfOneImageAtOnceEachGetTheGuest() throws Exception {
        RamFiles.deleteFor(saved.imageDir());
        String digest = TreeDigest.of(saved.imageDir());
        List<Restorer.Outcome> outcomes = atOnce(List.of(Restorer.Mode.LAZY, Restorer.Mode.WS, Restorer.Mode.MAPPED).stream()
                .<Callable<Restorer.Outcome>>map(mode -> () -> {
                    try (CheckpointImage image = CheckpointImage.open(saved.imageDir())) {
                        return restore(image, mode, "thaw-test-at-once-" + mode.label());
                    }
                }).toList());
        try {
            List<Restorer.Outcome> postcopy = outcomes.stream().filter(o -> o.postcopy().isPresent()).toList();
            assertThat(postcopy.stream().map(o -> o.trace().orElseThrow()).distinct()).as("one trace each").hasSize(2);
            for (Restorer.Outcome o : postcopy) {
                PostcopyRestore.Result r = o.postcopy().orElseThrow();
                Path trace = o.trace().orElseThrow();
                RestoreTraces.Trace t = RestoreTraces.read(trace);
                assertThat(t.mode()).as(trace + ": its restore's mode").isEqualTo(o.mode().label());
                assertThat(t.demandFaults()).as(trace + ": its restore's faults").isEqualTo(r.demandFaults());
                RestoreEventLog events = RestoreEventLog.read(RestoreTraces.eventsFileOf(trace));
                List<RestoreEventLog.Event> written = new ArrayList<>();
                List<RestoreEventLog.Event> own = new ArrayList<>();
                for (int i = 0; i < events.size(); i++) written.add(events.get(i));
                for (int i = 0; i < r.events().size(); i++) own.add(r.events().get(i));
                assertThat(written).as(trace + ": the event log beside it is its own restore's").isEqualTo(own);
            }
            for (Restorer.Outcome o : outcomes) checkGuest(o);
        } finally {
            for (Restorer.Outcome o : outcomes) o.vm().close();
        }
        try (CheckpointImage image = CheckpointImage.open(saved.imageDir())) {
            assertThat(image.verify().pageCount()).isPositive();
            assertThat(RamFiles.existing(image)).isPresent();
        }
        assertThat(TreeDigest.of(saved.imageDir())).as("the image is only read").isEqualTo(digest);
        assertThat(QemuVm.live()).isEmpty();
    }

    /**
     * The image on a read-only file system (a read-only bind mount of its directory: the tests run as root, whom file modes do
     * not stop). Eager, lazy and ws restores work, the lazy and ws ones without their trace (best-effort); a mapped restore
     * fails before QEMU starts, naming the RAM file and why, whether the image has no RAM file (it cannot be written) or has
     * one (QEMU 7.2 opens it read-write to map it), and the default mode is then not mapped. Nothing is written. Needs root.
     */
    @Test
    void restoresFromAReadOnlyImage() throws Exception {
        RamFiles.deleteFor(saved.imageDir());
        Path ro = Files.createDirectories(dir.resolve("ro"));
        mount(List.of("--bind", store.toString(), ro.toString()));
        try {
            mount(List.of("-o", "remount,ro,bind", ro.toString()));
            Path image = ro.resolve("image");
            assertThat(Files.isWritable(ro)).as("a read-only file system, even for root").isFalse();
            String digest = TreeDigest.of(store);
            try (CheckpointImage img = CheckpointImage.open(image)) {
                checkGuest(restore(img, Restorer.Mode.EAGER, "thaw-test-ro-eager"));
                for (Restorer.Mode mode : List.of(Restorer.Mode.LAZY, Restorer.Mode.WS)) {
                    Restorer.Outcome o = restore(img, mode, "thaw-test-ro-" + mode.label());
                    assertThat(o.trace()).as(mode.label() + ": no trace on a read-only file system, and the guest kept").isEmpty();
                    checkGuest(o);
                }
                assertThatThrownBy(() -> restore(img, Restorer.Mode.MAPPED, "thaw-test-ro-mapped-new"))
                        .isInstanceOf(RestoreException.class).hasMessageContaining(RamFiles.directoryFor(image).toString())
                        .hasMessageContaining("Read-only file system");
                assertThat(QemuVm.live()).isEmpty();
                // Written where the image is writable, as thaw save --ram-file would have.
                try (CheckpointImage writable = CheckpointImage.open(saved.imageDir())) {
                    RamFiles.write(writable);
                }
                assertThat(RamFiles.existing(img)).isPresent();
                String ramFile = RamFiles.fileFor(img).toString();
                assertThat(Restorer.defaultMode(img).mode()).as("auto picks a mode that works").isNotEqualTo(Restorer.Mode.MAPPED);
                assertThatThrownBy(() -> restore(img, Restorer.Mode.MAPPED, "thaw-test-ro-mapped"))
                        .isInstanceOf(RestoreException.class).hasMessageContaining(ramFile).hasMessageContaining("Read-only file system");
                assertThat(QemuVm.live()).isEmpty();
            }
            RamFiles.deleteFor(saved.imageDir());
            assertThat(TreeDigest.of(store)).as("nothing written beside the image or in it").isEqualTo(digest);
        } finally {
            ExternalCommand.Result umount = ExternalCommand.run(List.of("umount", ro.toString()), Duration.ofSeconds(10));
            assertThat(umount.succeeded()).as("umount %s: %s", ro, umount.stderr()).isTrue();
        }
    }

    private static void mount(List<String> args) {
        List<String> command = new ArrayList<>(List.of("mount"));
        command.addAll(args);
        ExternalCommand.Result r = ExternalCommand.run(command, Duration.ofSeconds(10));
        assertThat(r.succeeded()).as("%s (root only): %s", command, r.stderr()).isTrue();
    }

    /**
     * QEMU stopped (SIGSTOP) for 6 s at a seeded moment 0-1 s after the guest started, while pages still flow (the background
     * paced at 48 MiB/s), then continued: a slow QEMU is not a dead one. The restore goes on without a recovery (the connection
     * never broke) and the guest gets the saved memory.
     */
    @Test
    void aQemuStoppedMidRestoreForSecondsIsWaitedFor() throws Exception {
        Random random = Seeds.random("aQemuStoppedMidRestoreForSecondsIsWaitedFor");
        String name = "thaw-test-stopped";
        long delayMillis = random.nextInt(1000);
        long stopMillis = 6000;
        AtomicLong continuedNanos = new AtomicLong();
        CountDownLatch running = new CountDownLatch(1);
        Thread stopper = Thread.ofPlatform().daemon().name("stopper").start(() -> {
            try {
                if (!running.await(60, TimeUnit.SECONDS)) return;
                Thread.sleep(delayMillis);
                long pid = QemuVm.live(name).orElseThrow().pid();
                Signals.send("STOP", pid);
                try {
                    Thread.sleep(stopMillis);
                } finally {
                    Signals.send("CONT", pid);
                    continuedNanos.set(System.nanoTime());
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        PostcopyRestore.Options options = PostcopyRestore.Options.lazy(name)
                .withPolicy(SchedulePolicy.defaults().withBackgroundBytesPerSecond(48L << 20));
        try (CheckpointImage image = CheckpointImage.open(saved.imageDir())) {
            long started = System.nanoTime();
            PostcopyRestore.Result r = PostcopyRestore.restore(image, options, s -> {
                if (s.startsWith("guest running")) running.countDown();
            });
            stopper.join(20_000);
            try (QemuVm vm = r.vm()) {
                System.err.printf("%s: stopped %d ms after the guest started, for %d ms; completed %.2f s, %d demand, %d background"
                        + " pages%n", name, delayMillis, stopMillis, r.completedNanos() / 1e9, r.demandPages(), r.backgroundPages());
                assertThat(continuedNanos.get()).as("QEMU was stopped and continued").isPositive();
                assertThat(started + r.completedNanos()).as("the restore completed after QEMU continued").isGreaterThan(continuedNanos.get());
                assertThat(r.recoveries()).as("a stopped QEMU is no broken connection").isZero();
                assertThat(vm.qmp().queryMigrate().completed()).isTrue();
                RestoredGuest.assertSameMemoryAndRunsOn(vm, saved.before(), saved.lastSeqBefore());
            }
        }
        assertThat(QemuVm.live()).isEmpty();
    }

    /**
     * QEMU killed (SIGKILL) at a seeded moment after it answered QMP, in two lazy and two ws restores: within 0.05 s and
     * 0.2 s (its setup, the stream before the guest starts), and twice 0.2-1.5 s after (pages flowing): the restore fails within seconds naming the QEMU and its exit status (not a guess at why it exited),
     * and leaves no QEMU and no run directory.
     */
    @Test
    void aQemuKilledMidRestoreEndsItAtOnceNamingItAndLeavesNothing() throws Exception {
        Random random = Seeds.random("aQemuKilledMidRestoreEndsItAtOnceNamingItAndLeavesNothing");
        try (CheckpointImage image = CheckpointImage.open(saved.imageDir())) {
            for (int trial = 0; trial < 4; trial++) {
                Restorer.Mode mode = trial % 2 == 0 ? Restorer.Mode.LAZY : Restorer.Mode.WS;
                String name = "thaw-test-qemu-killed-" + trial + "-" + mode.label();
                // The first two early (QEMU's setup, the stream before the guest starts: the guest ran about 0.1 s after QMP
                // answered here), the others while pages flow.
                long delayMillis = trial == 0 ? random.nextInt(50) : trial == 1 ? random.nextInt(200) : 200 + random.nextInt(1300);
                AtomicLong killedNanos = new AtomicLong();
                java.util.concurrent.atomic.AtomicReference<QemuVm> victim = new java.util.concurrent.atomic.AtomicReference<>();
                Thread killer = Thread.ofPlatform().daemon().name("killer-" + name).start(() -> {
                    try {
                        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
                        while (System.nanoTime() < deadline && QemuVm.live(name).map(QemuVm::qmp).isEmpty()) Thread.sleep(5);
                        QemuVm vm = QemuVm.live(name).orElseThrow();
                        victim.set(vm);
                        Thread.sleep(delayMillis);
                        killedNanos.set(System.nanoTime());
                        Signals.send("KILL", vm.pid());
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                });
                PostcopyRestore.Options paced = PostcopyRestore.Options.lazy(name)
                        .withPolicy(SchedulePolicy.defaults().withBackgroundBytesPerSecond(48L << 20));
                Throwable thrown = catchThrowable(() -> Restorer.restore(image, mode, name, WorkingSetChoice.defaults(),
                        o -> o.withPolicy(paced.policy()), s -> {}).vm().close());
                long failedNanos = System.nanoTime();
                killer.join(10_000);
                QemuVm vm = victim.get();
                assertThat(vm).as(name + ": its QEMU was found").isNotNull();
                System.err.printf("%s: killed %d ms after QMP answered; failed %.2f s after the kill: %s%n", name, delayMillis,
                        (failedNanos - killedNanos.get()) / 1e9, thrown);
                assertThat(thrown).as(name + ": the restore fails").isNotNull()
                        .hasMessageContaining(name).hasMessageContaining("QEMU pid " + vm.pid() + " exited with status 137")
                        .hasMessageNotContaining("the break came before it ran the guest");
                assertThat(failedNanos - killedNanos.get()).as(name + ": failed soon after the kill (ns)")
                        .isLessThan(TimeUnit.SECONDS.toNanos(10));
                assertThat(Files.exists(vm.runDir())).as(name + ": its run directory " + vm.runDir() + " is removed").isFalse();
                assertThat(ProcessHandle.of(vm.pid()).filter(ProcessHandle::isAlive)).as(name + ": no QEMU left").isEmpty();
            }
        }
        assertThat(QemuVm.live()).isEmpty();
    }
}
