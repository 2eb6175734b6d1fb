package dev.thaw.util;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

/** SCHED_IDLE on a thread of this JVM, found by its name as QEMU's threads are. */
class ThreadPriorityTest {
    @Test
    void aThreadFoundByItsNameGoesIdleAndBack() throws Exception {
        AtomicReference<ThreadPriority.Policy> seenInside = new AtomicReference<>();
        CountDownLatch gate = new CountDownLatch(1);
        Thread t = Thread.ofPlatform().name("thaw-prio-test").start(() -> {
            try {
                gate.await(10, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            seenInside.set(ThreadPriority.get(0));
            ThreadPriority.setCurrentThread(ThreadPriority.Policy.NORMAL);
        });
        long pid = ProcessHandle.current().pid();
        long deadline = System.nanoTime() + 5_000_000_000L;
        List<Long> tids;
        do {
            tids = ThreadPriority.threadsNamed(pid, "thaw-prio-test");
        } while (tids.isEmpty() && System.nanoTime() < deadline);
        assertThat(tids).hasSize(1);
        long tid = tids.getFirst();
        assertThat(ThreadPriority.get(tid)).isEqualTo(ThreadPriority.Policy.NORMAL);
        ThreadPriority.set(tid, ThreadPriority.Policy.IDLE);
        assertThat(ThreadPriority.get(tid)).isEqualTo(ThreadPriority.Policy.IDLE);
        gate.countDown();
        t.join(5000);
        assertThat(seenInside.get()).as("the thread itself sees its class").isEqualTo(ThreadPriority.Policy.IDLE);
        assertThat(ThreadPriority.threadsNamed(pid, "no-such-thread")).isEmpty();
        assertThat(ThreadPriority.get(0)).as("the caller is untouched").isEqualTo(ThreadPriority.Policy.NORMAL);
    }
}
