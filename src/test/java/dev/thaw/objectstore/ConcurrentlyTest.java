package dev.thaw.objectstore;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/** {@link Concurrently}: results in order, at most so many at once, and nothing started once a task failed. */
class ConcurrentlyTest {
    @Test
    void resultsComeInOrderAndNoMoreRunAtOnceThanAllowed() throws IOException {
        AtomicInteger running = new AtomicInteger();
        AtomicInteger most = new AtomicInteger();
        List<Concurrently.Task> tasks = new ArrayList<>();
        for (int i = 0; i < 12; i++) {
            long result = i * 10L;
            tasks.add(() -> {
                most.accumulateAndGet(running.incrementAndGet(), Math::max);
                try {
                    Thread.sleep(5);
                } catch (InterruptedException e) {
                    throw new IllegalStateException(e);
                } finally {
                    running.decrementAndGet();
                }
                return result;
            });
        }
        assertThat(Concurrently.run(tasks, 3)).containsExactly(0L, 10L, 20L, 30L, 40L, 50L, 60L, 70L, 80L, 90L, 100L, 110L);
        assertThat(most.get()).isBetween(1, 3);
    }

    @Test
    void onceATaskFailedNoOtherStarts() {
        AtomicInteger started = new AtomicInteger();
        List<Concurrently.Task> tasks = new ArrayList<>();
        for (int i = 0; i < 10; i++) {
            int n = i;
            tasks.add(() -> {
                started.incrementAndGet();
                throw new IOException("part " + n + " refused");
            });
        }
        // One at a time: the first to run fails before its slot is free, so no other one starts (a multipart upload whose
        // first part failed sends no more parts before its abort).
        assertThatThrownBy(() -> Concurrently.run(tasks, 1)).isInstanceOf(IOException.class).hasMessageMatching("part [0-9] refused");
        assertThat(started.get()).isEqualTo(1);
    }
}
