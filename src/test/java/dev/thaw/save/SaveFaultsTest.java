package dev.thaw.save;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.guest.DemoGuest;
import dev.thaw.image.CheckpointImage;
import dev.thaw.image.ImageWriter;
import dev.thaw.image.Manifest;
import dev.thaw.image.Store;
import dev.thaw.qemu.QemuVm;
import dev.thaw.qemu.QmpClient;
import dev.thaw.testing.Seeds;
import dev.thaw.testing.Signals;
import dev.thaw.testing.TestHost;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Faults injected into a save on the real QEMU (issue 15): the source QEMU stopped for longer than a QMP call's timeout
 * (mid-stream, and while the save's own QMP call waits), the source QEMU killed while it saves into a shared store, and
 * Thaw itself killed while it saves (into a shared store; of a guest a {@code thaw boot} owns), with the guest it left
 * paused recovered by each way there is.
 */
class SaveFaultsTest {
    /** Longer than one QMP call may take (a naive save would give up), shorter than the save's stall timeout. */
    private static final Duration STOP = QmpClient.DEFAULT_TIMEOUT.plusSeconds(5);
    /** A stall timeout short enough for a test, and a stop past it that the save's 10 s migrate_cancel still outlasts. */
    private static final Duration STALL = Duration.ofSeconds(3);
    private static final Duration STALLED_STOP = Duration.ofSeconds(6);

    @Test
    void aQemuStoppedMidSaveLongerThanAQmpTimeoutIsWaitedForAndTheSaveCompletes(@TempDir Path dir) throws Exception {
        Saver.Options options = Saver.Options.defaults().withKeepRunning(true);
        assertThat(STOP).as("the stop must outlast a QMP call but not the stall timeout").isLessThan(options.qmpTimeout());
        Path image = dir.resolve("image");
        try (QemuVm vm = booted("thaw-test-stopped-save")) {
            AtomicLong stoppedAt = new AtomicLong();
            AtomicReference<Thread> resumer = new AtomicReference<>();
            Saver.Result result;
            try {
                result = Saver.save(vm.qmp(), vm.config(), image, options, p -> {
                    if (p.streamBytes() > (16 << 20) && stoppedAt.compareAndSet(0, System.nanoTime())) resumer.set(stopFor(vm, STOP));
                });
            } finally {
                awaitResumed(resumer.get());
            }
            assertThat(stoppedAt.get()).as("QEMU was stopped mid-stream").isNotZero();
            assertThat(Duration.ofNanos(System.nanoTime() - stoppedAt.get())).as("the save waited out the stop").isGreaterThan(STOP);
            assertThat(result.guestRunning()).isTrue();
            try (CheckpointImage saved = CheckpointImage.open(image)) {
                assertThat(saved.verify().pageCount()).as("every page of the image reads back").isPositive();
            }
            assertThat(vm.isAlive()).as("the stopped QEMU was never killed").isTrue();
            assertThat(vm.qmp().queryStatus().running()).as("the guest runs after the save").isTrue();
            assertThat(DemoGuest.collectTicks(vm.console().cursor(), Duration.ofSeconds(3))).as("wsbench ticks again").isNotEmpty();

            // Stopped past the stall timeout (shortened to keep the test short): the save fails naming the stalled source,
            // and the cancel and cont it sent meanwhile are answered once QEMU goes on, so the guest runs.
            Saver.Options impatient = new Saver.Options(options.image(), true, STALL, options.completionTimeout(), options.estimator(),
                    options.liveLimit());
            AtomicReference<Thread> stalledResumer = new AtomicReference<>();
            try {
                assertThatThrownBy(() -> Saver.save(vm.qmp(), vm.config(), dir.resolve("stalled"), impatient, p -> {
                    if (p.streamBytes() > (16 << 20) && stalledResumer.get() == null) stalledResumer.set(stopFor(vm, STALLED_STOP));
                })).isInstanceOf(SaveException.class).hasMessageStartingWith("save of thaw-test-stopped-save failed: its QEMU sent no data for "
                        + STALL.toSeconds() + " s");
            } finally {
                awaitResumed(stalledResumer.get());
            }
            assertThat(stalledResumer.get()).as("QEMU was stopped mid-stream").isNotNull();
            assertThat(vm.isAlive()).as("the stalled QEMU was never killed").isTrue();
            assertThat(DemoGuest.collectTicks(vm.console().cursor(), Duration.ofSeconds(3))).as("the guest runs after SIGCONT").isNotEmpty();
            assertThat(vm.qmp().queryStatus().running()).isTrue();
        }
        assertThat(leftIn(dir)).as("the stalled save left nothing").containsExactly("image");
    }

    /**
     * QEMU SIGSTOPped before the save asks it anything, for longer than a QMP call's own timeout: the save's first QMP call
     * (its question whether the guest runs) waits past that timeout, since QEMU's process lives (slow, not dead), up to the
     * save's stall timeout; the save then completes, the image verifies and the guest runs on.
     */
    @Test
    void aQemuStoppedWhileTheSavesQmpCallWaitsIsWaitedForAndTheSaveCompletes(@TempDir Path dir) throws Exception {
        Saver.Options options = Saver.Options.defaults().withKeepRunning(true);
        assertThat(STOP).as("the stop must outlast a QMP call but not the save's patience").isLessThan(options.qmpTimeout());
        Path image = dir.resolve("image");
        try (QemuVm vm = booted("thaw-test-stopped-qmp")) {
            long stoppedAt = System.nanoTime();
            Thread resumer = stopFor(vm, STOP);
            Saver.Result result;
            try {
                result = Saver.save(vm.qmp(), vm.config(), image, options, p -> {});
            } finally {
                awaitResumed(resumer);
            }
            assertThat(Duration.ofNanos(System.nanoTime() - stoppedAt)).as("the save waited out the stop").isGreaterThan(STOP);
            assertThat(result.guestRunning()).isTrue();
            try (CheckpointImage saved = CheckpointImage.open(image)) {
                assertThat(saved.verify().pageCount()).as("every page of the image reads back").isPositive();
            }
            assertThat(vm.isAlive()).as("the stopped QEMU was never killed").isTrue();
            assertThat(DemoGuest.collectTicks(vm.console().cursor(), Duration.ofSeconds(3))).as("wsbench ticks again").isNotEmpty();
        }
        assertThat(leftIn(dir)).containsExactly("image");
    }

    /**
     * {@code thaw save} (its own process) started at a QEMU SIGSTOPped for longer than the connection's 10 s: the socket accepts
     * but QEMU does not greet; the save waits for the greeting as for any answer (slow, not dead) and completes. Before, the
     * greeting's wait ended with the connection's 10 s and the save failed.
     */
    @Test
    void aSaveStartedAtAStoppedQemuWaitsForItsGreetingAndCompletes(@TempDir Path dir) throws Exception {
        Duration stop = Duration.ofSeconds(15);
        Path log = dir.resolve("save.log");
        try (QemuVm vm = booted("thaw-test-stopped-greeting")) {
            long stoppedAt = System.nanoTime();
            Thread resumer = stopFor(vm, stop);
            Process save = thaw(log, "save", "--qmp", vm.extraQmpSocket().toString(), "--out", dir.resolve("image").toString(),
                    "--keep-running");
            try {
                assertThat(save.waitFor(120, TimeUnit.SECONDS)).as("the save ended").isTrue();
            } finally {
                save.destroyForcibly();
                awaitResumed(resumer);
            }
            assertThat(save.exitValue()).as(Files.readString(log)).isZero();
            assertThat(Duration.ofNanos(System.nanoTime() - stoppedAt)).as("the save waited out the stop").isGreaterThan(stop);
            try (CheckpointImage saved = CheckpointImage.open(dir.resolve("image"))) {
                assertThat(saved.verify().pageCount()).isPositive();
            }
            assertThat(DemoGuest.collectTicks(vm.console().cursor(), Duration.ofSeconds(3))).as("wsbench ticks again").isNotEmpty();
        }
    }

    @Test
    void aQemuKilledMidSaveIntoAStoreFailsAtOnceNamingItAndLeavesNothingListed(@TempDir Path dir) throws Exception {
        Path store = dir.resolve("store");
        Path out = Files.createDirectory(dir.resolve("images"));
        Saver.Options options = Saver.Options.defaults().withImage(withStore(store));
        try (QemuVm vm = booted("thaw-test-killed-store-save")) {
            AtomicLong killedAt = new AtomicLong();
            assertThatThrownBy(() -> Saver.save(vm.qmp(), vm.config(), out.resolve("img"), options, p -> {
                if (p.streamBytes() > (16 << 20) && killedAt.compareAndSet(0, System.nanoTime())) Signals.send("KILL", vm.pid());
            })).isInstanceOf(SaveException.class) // first the dead source, then what the save saw of it (the stream's end)
                    .hasMessageStartingWith("save of thaw-test-killed-store-save failed: the source QEMU is gone");
            assertThat(killedAt.get()).as("QEMU was killed mid-stream").isNotZero();
            assertThat(Duration.ofNanos(System.nanoTime() - killedAt.get())).as("the save failed at once").isLessThan(Duration.ofSeconds(5));
            assertThat(vm.awaitExit(Duration.ofSeconds(10))).isTrue();
        }
        assertThat(leftIn(out)).as("no image, no partial image").isEmpty();
        assertThat(leftIn(store.resolve("images"))).as("no pending entry in the store's list").isEmpty();
        assertThat(leftIn(store)).as("no temporary file in the store").allMatch(n -> !n.contains("tmp"));
        Store.GcReport gc = Store.open(store).collectGarbage(false);
        assertThat(gc.deletedTemporaryFileCount()).isZero();
        assertThat(gc.forgottenImages()).isEmpty();
        assertThat(leftIn(store)).as("a gc frees every pack the failed save sealed").allMatch(n -> !n.startsWith("pack-"));
    }

    /**
     * {@code thaw save --store} in a process of its own, SIGKILLed twice at seeded moments while it streams, beside an image A
     * already in that store whose packs it deduplicates against. Each kill leaves the guest paused with its QEMU alive (the
     * failed migration ended QEMU's side). The first is recovered by {@code thaw save --recover}, the second by the next
     * save of the guest (as {@code thaw save} runs it), which resumes it first and so keeps it running after; both
     * say so, and the guest's workload advances. That save removes the dead saves' partial images, into the store it
     * works, gc frees only the dead saves' leftovers, and A and the new image verify whole.
     */
    @Test
    void aThawKilledMidSaveIntoAStoreLeavesTheGuestRecoverableAndTheStoreWhole(@TempDir Path dir) throws Exception {
        Random random = Seeds.random("aThawKilledMidSaveIntoAStoreLeavesTheGuestRecoverableAndTheStoreWhole");
        Path store = dir.resolve("store");
        Path out = Files.createDirectory(dir.resolve("images"));
        Saver.Options options = Saver.Options.defaults().withImage(withStore(store)).withKeepRunning(true);
        try (QemuVm vm = booted("thaw-test-thaw-killed")) {
            Manifest a = Saver.save(vm.qmp(), vm.config(), out.resolve("a"), options, p -> {}).manifest();
            Set<String> packsOfA = packFiles(a);

            killSaveMidStream(vm, dir, out.resolve("killed"), store, (2L << 20) + random.nextLong(14L << 20));
            Path log = dir.resolve("recover.log");
            Process recover = thaw(log, "save", "--qmp", vm.extraQmpSocket().toString(), "--recover");
            assertThat(recover.waitFor(60, TimeUnit.SECONDS)).as("thaw save --recover ended").isTrue();
            assertThat(recover.exitValue()).as(Files.readString(log)).isZero();
            assertThat(Files.readString(log)).as("it says what it found and did").contains("that died", "resumed the guest");
            System.err.println("thaw save --recover: " + Files.readString(log).strip());
            assertThat(vm.qmp().queryStatus().running()).as("thaw save --recover resumed the guest").isTrue();
            assertThat(DemoGuest.collectTicks(vm.console().cursor(), Duration.ofSeconds(3))).as("wsbench ticks again").isNotEmpty();
            assertThat(SaveHold.file(vm.extraQmpSocket())).as("the dead save's hold is gone").doesNotExist();

            killSaveMidStream(vm, dir, out.resolve("killed2"), store, (2L << 20) + random.nextLong(14L << 20));
            Path nextLog = dir.resolve("b.log");
            Process next = thaw(nextLog, "save", "--qmp", vm.extraQmpSocket().toString(), "--out", out.resolve("b").toString(),
                    "--store", store.toString(), "--keep-running");
            assertThat(next.waitFor(120, TimeUnit.SECONDS)).as("the next thaw save ended").isTrue();
            String said = Files.readString(nextLog);
            assertThat(next.exitValue()).as(said).isZero();
            assertThat(said).as("the next save says it resumed the guest the dead save left paused").contains("that died", "resumed the guest");
            assertThat(said).as("--keep-running: the guest ran before the dead save, so it runs after this one").contains("guest running again");
            assertThat(vm.qmp().queryStatus().running()).isTrue();
            assertThat(DemoGuest.collectTicks(vm.console().cursor(), Duration.ofSeconds(3))).as("wsbench ticks after the next save").isNotEmpty();
            Manifest b;
            try (CheckpointImage image = CheckpointImage.open(out.resolve("b"))) {
                b = image.manifest();
            }

            assertThat(leftIn(out)).as("the next save removed the dead saves' partial images").containsExactlyInAnyOrder("a", "b");
            Store.GcReport gc = Store.open(store).collectGarbage(false);
            assertThat(gc.liveImages()).extracting(p -> p.getFileName().toString()).containsExactlyInAnyOrder("a", "b");
            assertThat(gc.forgottenImages()).extracting(p -> p.getFileName().toString()).as("the dead saves' listings")
                    .containsExactlyInAnyOrder("killed", "killed2");
            Set<String> used = new HashSet<>(packsOfA);
            used.addAll(packFiles(b));
            assertThat(gc.deletedPacks()).as("no pack A or B uses was deleted").doesNotContainAnyElementsOf(used);
            assertThat(leftIn(store)).as("every pack A and B use is still there").containsAll(used);
            assertThat(leftIn(store.resolve("images"))).as("only A and B listed").hasSize(2).allMatch(n -> n.endsWith(".image"));
            Store.VerifyReport verified = Store.open(store).verify();
            assertThat(verified.imageCount()).isEqualTo(2);
            assertThat(verified.unreferencedPacks()).isEmpty();
            // The store's verify read every pack whole; A, the image the dead save shared packs with, also as inspect --verify does.
            try (CheckpointImage image = CheckpointImage.open(out.resolve("a"))) {
                assertThat(image.verify().pageCount()).as("image A reads back whole").isPositive();
            }
        }
    }

    /**
     * {@code thaw boot} owns its guest: a {@code thaw save} of it SIGKILLed mid-stream leaves the guest paused, and the boot
     * command resumes it by itself within seconds, saying so, and reports wsbench's rate again. Both commands run as
     * processes of their own, as a user runs them.
     */
    @Test
    void theThawBootOwningAGuestResumesItWhenASaveOfItIsKilledMidSave(@TempDir Path dir) throws Exception {
        Path bootLog = dir.resolve("boot.log");
        Process boot = thaw(bootLog, "boot", "--name", "thaw-test-boot-owner", "--memory-mib", "512", "--total-mib", "128", "--ws-mib", "32");
        long qemuPid = 0;
        try {
            java.util.regex.Matcher started = awaitLine(boot, bootLog, "guest thaw-test-boot-owner running \\(QEMU pid (\\d+)\\)", Duration.ofMinutes(4));
            qemuPid = Long.parseLong(started.group(1));
            Path socket = Path.of(awaitLine(boot, bootLog, "QMP socket for other clients: (\\S+)", Duration.ofSeconds(10)).group(1));
            Path saveLog = dir.resolve("save.log");
            Process save = thaw(saveLog, "save", "--qmp", socket.toString(), "--out", dir.resolve("img").toString(), "--codec", "zstd", "--zstd-level", "19");
            try {
                awaitLine(save, saveLog, "saving: ([2-9]|\\d\\d+) MiB read", Duration.ofSeconds(60));
                save.destroyForcibly(); // SIGKILL: no hook, no finally
                assertThat(save.waitFor(10, TimeUnit.SECONDS)).isTrue();
            } finally {
                save.destroyForcibly().waitFor();
            }
            int killedAt = Files.readString(bootLog).length();
            long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
            String after;
            while (!(after = Files.readString(bootLog).substring(killedAt)).matches("(?s).*resumed the guest.*\\nwsbench [^\\n]* ops/s\\n.*")) {
                assertThat(boot.isAlive()).as("thaw boot ended: %s", Files.readString(bootLog)).isTrue();
                assertThat(System.nanoTime()).as("thaw boot did not resume its guest within 30 s of the kill: %s", after).isLessThan(deadline);
                Thread.sleep(100);
            }
            System.err.println("thaw boot after the kill: " + after.strip().replace("\n", " | "));
            assertThat(after).contains("a save by Thaw pid " + save.pid() + " that died");
        } finally {
            boot.destroy(); // SIGTERM: its hooks end its QEMU
            if (!boot.waitFor(30, TimeUnit.SECONDS)) boot.destroyForcibly().waitFor();
            if (qemuPid != 0) ProcessHandle.of(qemuPid).ifPresent(ProcessHandle::destroyForcibly);
        }
        long pid = qemuPid;
        assertThat(ProcessHandle.of(pid).map(h -> h.onExit().completeOnTimeout(h, 10, TimeUnit.SECONDS).join().isAlive()).orElse(false))
                .as("thaw boot's QEMU ended with it").isFalse();
    }

    /** Waits for a line of {@code log} matching {@code regex} while {@code process} lives; returns its match. */
    private static java.util.regex.Matcher awaitLine(Process process, Path log, String regex, Duration timeout) throws Exception {
        java.util.regex.Pattern pattern = java.util.regex.Pattern.compile(regex);
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            for (String line : Files.readAllLines(log)) {
                java.util.regex.Matcher m = pattern.matcher(line);
                if (m.find()) return m;
            }
            assertThat(process.isAlive()).as("ended before printing /%s/: %s", regex, Files.readString(log)).isTrue();
            assertThat(System.nanoTime()).as("no line /%s/ within %s: %s", regex, timeout, Files.readString(log)).isLessThan(deadline);
            Thread.sleep(50);
        }
    }

    /**
     * Runs {@code thaw save --store} into {@code image} in a process of its own and SIGKILLs it once the migration sent
     * {@code killAfterBytes}; the guest is then left paused, its QEMU alive and its side of the migration ended.
     */
    private static void killSaveMidStream(QemuVm vm, Path dir, Path image, Path store, long killAfterBytes) throws Exception {
        Path log = dir.resolve(image.getFileName() + ".log");
        // zstd -19 makes Thaw the bottleneck, so the save is still streaming at the kill.
        Process save = thaw(log, "save", "--qmp", vm.extraQmpSocket().toString(), "--out", image.toString(), "--store", store.toString(),
                "--codec", "zstd", "--zstd-level", "19");
        long transferred;
        try {
            long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
            while ((transferred = transferredBytes(vm)) < killAfterBytes) {
                assertThat(save.isAlive()).as("the save ended before it was killed: %s", Files.readString(log)).isTrue();
                assertThat(System.nanoTime()).as("no migration of %d bytes within 60 s: %s", killAfterBytes, Files.readString(log))
                        .isLessThan(deadline);
                Thread.sleep(5);
            }
            save.destroyForcibly(); // SIGKILL: no hook, no finally
            assertThat(save.waitFor(10, TimeUnit.SECONDS)).isTrue();
        } finally {
            save.destroyForcibly().waitFor();
        }
        System.err.printf("killed thaw save after %d stream bytes (seeded threshold %d)%n", transferred, killAfterBytes);
        assertThat(save.exitValue()).isEqualTo(128 + 9);
        assertThat(leftIn(image.getParent())).as("the dead save left its partial image")
                .anyMatch(n -> n.startsWith("." + image.getFileName() + ".partial-"));
        assertThat(SaveHold.file(vm.extraQmpSocket())).as("the dead save's hold on the guest").exists();
        QmpClient.MigrationInfo migration = awaitMigrationEnd(vm);
        assertThat(migration.status()).as("QEMU's side of the save ended with Thaw").isIn("failed", "cancelled");
        assertThat(vm.isAlive()).isTrue();
        assertThat(vm.qmp().queryStatus().running()).as("the guest stays paused as the dead save left it").isFalse();
        assertThat(DemoGuest.collectTicks(vm.console().cursor(), Duration.ofSeconds(2))).as("no wsbench tick while paused").isEmpty();
    }

    /** {@code thaw ARGS} in a JVM of its own (this test's class path), its output into {@code log}. */
    private static Process thaw(Path log, String... args) throws java.io.IOException {
        List<String> command = new java.util.ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"),
                "-Dthaw.home=" + System.getProperty("thaw.home"), "dev.thaw.cli.ThawCli"));
        command.addAll(List.of(args));
        return new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile()).start();
    }

    /** The small demo guest, booted and its workload running. */
    private static QemuVm booted(String name) {
        QemuVm vm = QemuVm.launch(TestHost.smallGuestConfig(name));
        try {
            DemoGuest.awaitReady(vm, vm.console().cursorFromStart(), DemoGuest.BOOT_TIMEOUT);
            return vm;
        } catch (RuntimeException e) {
            vm.close();
            throw e;
        }
    }

    /** SIGSTOPs QEMU and SIGCONTs it after {@code duration} from a thread of its own (the save's threads wait meanwhile). */
    private static Thread stopFor(QemuVm vm, Duration duration) {
        Signals.send("STOP", vm.pid());
        return Thread.ofVirtual().start(() -> {
            try {
                Thread.sleep(duration);
            } catch (InterruptedException e) {
                // the test is ending: resume now
            } finally {
                Signals.send("CONT", vm.pid());
            }
        });
    }

    private static void awaitResumed(Thread resumer) throws InterruptedException {
        if (resumer == null) return;
        if (!resumer.join(STOP.plusSeconds(10))) resumer.interrupt();
        assertThat(resumer.join(Duration.ofSeconds(10))).as("QEMU was sent SIGCONT").isTrue();
    }

    private static ImageWriter.Options withStore(Path store) {
        ImageWriter.Options d = ImageWriter.Options.defaults();
        return new ImageWriter.Options(d.codec(), d.zstdLevel(), d.groupPageCount(), store);
    }

    private static Set<String> packFiles(Manifest m) {
        Set<String> files = new HashSet<>();
        m.storage().packs().forEach(p -> files.add(p.file()));
        return files;
    }

    private static long transferredBytes(QemuVm vm) {
        var info = vm.qmp().queryMigrate();
        // Only an active migration's count: the status of A's completed save stays until the next migration starts.
        return info.status().equals("active") ? info.raw().path("ram").path("transferred").asLong() : 0;
    }

    private static QmpClient.MigrationInfo awaitMigrationEnd(QemuVm vm) throws InterruptedException {
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        while (true) {
            QmpClient.MigrationInfo info = vm.qmp().queryMigrate();
            if (!List.of("active", "setup", "device", "pre-switchover", "cancelling").contains(info.status())) return info;
            assertThat(System.nanoTime()).as("the migration still %s 30 s after Thaw died", info.status()).isLessThan(deadline);
            Thread.sleep(20);
        }
    }

    private static List<String> leftIn(Path dir) throws Exception {
        try (Stream<Path> s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).toList();
        }
    }
}
