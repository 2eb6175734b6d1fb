package dev.thaw.image;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Every wait for a store's lock ends: behind this process's own holders and behind another process's. */
class StoreLockWaitTest {
    @Test
    void anExclusiveWaitBehindThisProcesssSharedHolderEndsAfterItsTimeNamingTheLock(@TempDir Path store) {
        StoreLock lock = StoreLock.of(store);
        try (StoreLock.Held shared = lock.shared()) {
            long start = System.nanoTime();
            assertThatThrownBy(() -> lock.exclusive(Duration.ofMillis(300))).isInstanceOf(ImageException.CannotWrite.class)
                    .hasMessageContaining("waited 0.3 s for the store's exclusive lock; this process holds a conflicting one")
                    .hasMessageContaining(StoreLock.FILE);
            assertThat(System.nanoTime() - start).isGreaterThanOrEqualTo(TimeUnit.MILLISECONDS.toNanos(300));
        }
        try (StoreLock.Held exclusive = lock.exclusive(Duration.ofMillis(300))) {
            assertThat(exclusive).as("free once released").isNotNull();
        }
    }

    @Test
    void aWaitBehindAnotherProcesssLockEndsAfterItsTimeAndSucceedsOnceItIsGone(@TempDir Path store) throws Exception {
        // Another JVM holds the lock file's POSIX record lock exclusively, as a gc would.
        Path holder = store.resolve("Hold.java");
        Files.writeString(holder, """
                import java.nio.channels.FileChannel;
                import java.nio.file.*;
                public class Hold {
                    public static void main(String[] a) throws Exception {
                        try (FileChannel ch = FileChannel.open(Path.of(a[0]), StandardOpenOption.CREATE, StandardOpenOption.WRITE)) {
                            ch.lock();
                            System.out.println("locked");
                            Thread.sleep(60_000);
                        }
                    }
                }
                """);
        String java = ProcessHandle.current().info().command().orElseThrow();
        Process p = new ProcessBuilder(java, holder.toString(), store.resolve(StoreLock.FILE).toString()).redirectErrorStream(true).start();
        try {
            BufferedReader out = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
            assertThat(out.readLine()).isEqualTo("locked");
            StoreLock lock = StoreLock.of(store);
            assertThatThrownBy(() -> lock.shared(Duration.ofMillis(400))).isInstanceOf(ImageException.CannotWrite.class)
                    .hasMessageContaining("waited 0.4 s for the store's shared lock; another process");
            p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            try (StoreLock.Held shared = lock.shared(Duration.ofSeconds(10))) {
                assertThat(shared).as("the dead process's lock is gone").isNotNull();
            }
        } finally {
            p.destroyForcibly();
        }
    }
}
