package dev.thaw.image;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.testing.SyntheticGuest;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code thaw gc} SIGKILLed while it waits for the store's exclusive lock (a save holds it shared): the kernel drops a dead
 * process's POSIX locks and lock requests, so the save keeps its lock, the next gc gets the lock once the save is done, and
 * the store is whole. No QEMU: the save's hold is this test's, the gc a {@code thaw gc} process of its own.
 */
class StoreLockKillTest {
    @Test
    void aGcKilledWhileItWaitsForTheStoreLockLeavesNoLockAndTheNextGcWorks(@TempDir Path dir) throws Exception {
        Path store = dir.resolve("store");
        ImageWriter.Options options = new ImageWriter.Options(Codec.LZ4, 1, 16, store);
        ImageRoundTripTest.saveInto(dir.resolve("a"), SyntheticGuest.random(new Random(3), 1, 64, 0.2, 0.1), options);
        Process gc;
        try (StoreLock.Held save = StoreLock.of(store).shared()) {
            gc = thaw(dir.resolve("gc.log"), "gc", store.toString());
            long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
            while (!waitsForALock(gc.pid())) {
                assertThat(gc.isAlive()).as("gc ended while a save held the store: %s", Files.readString(dir.resolve("gc.log"))).isTrue();
                assertThat(System.nanoTime()).as("gc did not wait for the store's lock within 60 s").isLessThan(deadline);
                Thread.sleep(20);
            }
            gc.destroyForcibly(); // SIGKILL while blocked in fcntl(F_SETLKW)
            assertThat(gc.waitFor(10, TimeUnit.SECONDS)).isTrue();
            assertThat(gc.exitValue()).isEqualTo(128 + 9);
            assertThat(locksOf(gc.pid())).as("the dead gc holds and awaits no lock").isEmpty();
            assertThat(locksOf(ProcessHandle.current().pid())).as("the save still holds its shared lock").isNotEmpty();
        }
        Process next = thaw(dir.resolve("gc2.log"), "gc", store.toString());
        assertThat(next.waitFor(60, TimeUnit.SECONDS)).as("the next gc got the lock and ended").isTrue();
        assertThat(next.exitValue()).as(Files.readString(dir.resolve("gc2.log"))).isZero();
        assertThat(Files.readString(dir.resolve("gc2.log"))).contains("1 images");
        Store.VerifyReport verified = Store.open(store).verify();
        assertThat(verified.imageCount()).isEqualTo(1);
        assertThat(verified.unreferencedPacks()).isEmpty();
    }

    /** Whether {@code pid} is blocked waiting for a POSIX lock ({@code /proc/locks} lists a waiter with "->"). */
    private static boolean waitsForALock(long pid) throws Exception {
        return locksOf(pid).stream().anyMatch(l -> l.contains("->"));
    }

    private static List<String> locksOf(long pid) throws Exception {
        return Files.readAllLines(Path.of("/proc/locks")).stream().filter(l -> List.of(l.replace("->", " ").trim().split("\\s+")).contains(
                Long.toString(pid))).toList();
    }

    private static Process thaw(Path log, String... args) throws java.io.IOException {
        List<String> command = new java.util.ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-cp", System.getProperty("java.class.path"), "dev.thaw.cli.ThawCli"));
        command.addAll(List.of(args));
        return new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile()).start();
    }
}
