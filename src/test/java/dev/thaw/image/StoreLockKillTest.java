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
 * process's POSIX locks (it polls for the lock, so it has no request queued), so the save keeps its lock, the next gc gets the lock once the save is done, and
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
            while (!hasOpen(gc.pid(), store.resolve(StoreLock.FILE))) {
                assertThat(gc.isAlive()).as("gc ended while a save held the store: %s", Files.readString(dir.resolve("gc.log"))).isTrue();
                assertThat(System.nanoTime()).as("gc did not wait for the store's lock within 60 s").isLessThan(deadline);
                Thread.sleep(20);
            }
            Thread.sleep(500); // it polls for the lock (tryLock) until StoreLock.WAIT: it cannot have it while the save holds it
            assertThat(gc.isAlive()).as("gc waits while a save holds the store").isTrue();
            gc.destroyForcibly(); // SIGKILL while it waits
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

    /** Whether {@code pid} has {@code file} open: gc opens the lock file, then polls for its lock. */
    private static boolean hasOpen(long pid, Path file) throws Exception {
        Path real = file.toRealPath();
        try (var fds = Files.list(Path.of("/proc", Long.toString(pid), "fd"))) {
            return fds.anyMatch(fd -> {
                try {
                    return Files.readSymbolicLink(fd).equals(real);
                } catch (java.io.IOException e) {
                    return false; // closed meanwhile
                }
            });
        } catch (java.nio.file.NoSuchFileException e) {
            return false; // the process is gone (the loop says why)
        }
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
