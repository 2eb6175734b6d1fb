package dev.thaw.util;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class FileTreesTest {
    @TempDir
    Path dir;

    @Test
    void threeDeletersOfOneTreeAtOnceLeaveNothingAndThrowNothing() throws Exception {
        // A QEMU's run directory closed by a shutdown hook and by an aborting restore at once (seen in a cluster cohort).
        for (int round = 0; round < 8; round++) {
            Path root = dir.resolve("tree-" + round);
            for (int d = 0; d < 40; d++) {
                Path sub = Files.createDirectories(root.resolve("d" + d));
                for (int f = 0; f < 50; f++) Files.writeString(sub.resolve("f" + f), "x");
            }
            CountDownLatch go = new CountDownLatch(1);
            List<Throwable> thrown = java.util.Collections.synchronizedList(new ArrayList<>());
            List<Thread> deleters = new ArrayList<>();
            for (int t = 0; t < 3; t++) {
                deleters.add(Thread.ofPlatform().start(() -> {
                    try {
                        go.await();
                        FileTrees.deleteQuietly(root);
                    } catch (Throwable e) {
                        thrown.add(e);
                    }
                }));
            }
            go.countDown();
            for (Thread t : deleters) t.join(30_000);
            assertThat(thrown).as("round " + round).isEmpty();
            assertThat(root).as("round " + round).doesNotExist();
        }
    }
}
