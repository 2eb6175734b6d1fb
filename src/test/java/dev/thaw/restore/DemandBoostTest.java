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
            DemandBoost boost = new DemandBoost();
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
            assertThat(ThreadPriority.get(t)).as("released: the background's own end moves it").isEqualTo(ThreadPriority.Policy.IDLE);
            assertThat(ThreadPriority.currentTid()).isNotEqualTo(t).isPositive();
        } finally {
            done.countDown();
            background.join(10_000);
        }
    }
}
