package dev.thaw.objectstore;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Two fetches in one process (restores served by one thaw serve) wait for each other as two processes do, instead of failing. */
class ImageCacheLockTest {
    @Test
    void aSecondFetchOfThisProcessWaitsForTheFirst(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("cache.lock");
        try (FileChannel first = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE);
             FileChannel second = FileChannel.open(file, StandardOpenOption.WRITE)) {
            FileLock held = ImageCache.lock(first);
            long start = System.nanoTime();
            CompletableFuture<FileLock> waiting = CompletableFuture.supplyAsync(() -> {
                try {
                    return ImageCache.lock(second);
                } catch (java.io.IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            });
            Thread.sleep(300);
            assertThat(waiting).as("waits while the first holds it").isNotDone();
            held.release();
            FileLock taken = waiting.get(10, TimeUnit.SECONDS);
            assertThat(taken.isValid()).isTrue();
            assertThat(System.nanoTime() - start).isGreaterThanOrEqualTo(300_000_000L);
            taken.release();
        }
    }
}
