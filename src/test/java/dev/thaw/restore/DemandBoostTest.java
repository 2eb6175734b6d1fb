package dev.thaw.restore;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.util.ThreadPriority;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** Demand raises the background's idle threads and the sender lowers them again; on real threads of this JVM. */
class DemandBoostTest {
    @Test
    void aRequestRaisesTheDemotedThreadsOnceAndTheSenderLowersThem() throws Exception {
        CompletableFuture<Long> tid = new CompletableFuture<>();
        CountDownLatch done = new CountDownLatch(1);
        Thread background = Thread.ofPlatform().daemon().start(() -> {
            ThreadPriority.setCurrentThread(ThreadPriority.Policy.IDLE);
            tid.complete(ThreadPriority.currentTid());
            try {
                done.await(30, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        long t = tid.get(10, TimeUnit.SECONDS);
        try {
            DemandBoost boost = new DemandBoost("test", new RestoreEventLog(), System.nanoTime(), java.time.Duration.ofHours(1));
            boost.requestArrived();
            assertThat(boost.raiseCount()).as("nothing demoted yet: nothing to raise").isZero();
            boost.demoted(t);
            boost.requestArrived();
            boost.requestArrived(); // a burst: raised once
            assertThat(ThreadPriority.get(t)).isEqualTo(ThreadPriority.Policy.NORMAL);
            assertThat(boost.raiseCount()).isEqualTo(1);
            boost.demandServed();
            assertThat(ThreadPriority.get(t)).isEqualTo(ThreadPriority.Policy.IDLE);
            boost.demandServed(); // nothing raised: no change
            assertThat(ThreadPriority.get(t)).isEqualTo(ThreadPriority.Policy.IDLE);
            boost.released();
            boost.requestArrived();
            boost.close();
            assertThat(ThreadPriority.get(t)).as("released: the background's own end moves it").isEqualTo(ThreadPriority.Policy.IDLE);
            assertThat(ThreadPriority.currentTid()).isNotEqualTo(t).isPositive();
        } finally {
            done.countDown();
            background.join(10_000);
        }
    }

    @Test
    void anIdleSenderStarvedOfCpuIsPromotedForGoodAndOneThatSleepsIsNot() throws Exception {
        CompletableFuture<Long> tid = new CompletableFuture<>();
        java.util.concurrent.atomic.AtomicBoolean spin = new java.util.concurrent.atomic.AtomicBoolean();
        java.util.concurrent.atomic.AtomicBoolean stop = new java.util.concurrent.atomic.AtomicBoolean();
        Thread sender = Thread.ofPlatform().daemon().start(() -> { // sleeps (waits on purpose), then wants a CPU throughout
            ThreadPriority.setCurrentThread(ThreadPriority.Policy.IDLE);
            tid.complete(ThreadPriority.currentTid());
            while (!stop.get()) {
                if (!spin.get()) {
                    try {
                        Thread.sleep(5);
                    } catch (InterruptedException e) {
                        return;
                    }
                }
            }
        });
        long t = tid.get(10, TimeUnit.SECONDS);
        RestoreEventLog events = new RestoreEventLog();
        java.util.List<Thread> load = new java.util.ArrayList<>();
        try (DemandBoost boost = new DemandBoost("test", events, System.nanoTime(), java.time.Duration.ofMillis(400))) {
            boost.senderDemoted(t);
            Thread.sleep(1000); // a sender that sleeps is not starved
            assertThat(boost.promoted()).isFalse();
            assertThat(ThreadPriority.get(t)).isEqualTo(ThreadPriority.Policy.IDLE);
            spin.set(true);
            for (int i = 0; i < Runtime.getRuntime().availableProcessors(); i++) { // every CPU busy at normal priority
                load.add(Thread.ofPlatform().daemon().start(() -> {
                    while (!stop.get()) Thread.onSpinWait();
                }));
            }
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            // The promotion's event is logged after the threads are moved; promoted() turns true before (CI saw IDLE here).
            while (events.size() == 0 && System.nanoTime() < deadline) Thread.sleep(20);
            assertThat(boost.promoted()).isTrue();
            assertThat(ThreadPriority.get(t)).isEqualTo(ThreadPriority.Policy.NORMAL);
            assertThat(events.size()).isEqualTo(1);
            assertThat(events.get(0).type()).isEqualTo(RestoreEventLog.Type.BACKGROUND_PROMOTED);
            boost.requestArrived();
            boost.demandServed();
            assertThat(ThreadPriority.get(t)).as("promoted for good: demand served does not lower it").isEqualTo(ThreadPriority.Policy.NORMAL);
        } finally {
            stop.set(true);
            sender.join(10_000);
            for (Thread l : load) l.join(10_000);
        }
    }
}
