package dev.thaw.restore;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** All clones start or none: the parallel start and its cleanup, without QEMU. */
class ClonesStartTest {
    @Test
    void startsEveryCloneAtOnceInOrder() {
        CountDownLatch all = new CountDownLatch(3);
        List<String> started = Clones.startAll(List.of("a", "b", "c"), i -> {
            all.countDown();
            try {
                // Each waits for the others: they run at once, or this times out.
                if (!all.await(10, TimeUnit.SECONDS)) throw new IllegalStateException("not started at once");
            } catch (InterruptedException e) {
                throw new IllegalStateException(e);
            }
            return "vm" + i;
        }, vm -> { throw new AssertionError("nothing to close"); });
        assertThat(started).containsExactly("vm0", "vm1", "vm2");
    }

    @Test
    void oneFailedCloneClosesTheOthersAndIsNamed() {
        ConcurrentLinkedQueue<String> closed = new ConcurrentLinkedQueue<>();
        assertThatThrownBy(() -> Clones.startAll(List.of("web-1", "web-2", "web-3", "web-4"), i -> {
            if (i == 1) throw new RestoreException("web-2: the incoming migration failed", null);
            if (i == 3) {
                try {
                    Thread.sleep(200); // after web-2's failure, so that web-2's is the first in time
                } catch (InterruptedException e) {
                    // interrupted by web-2's failure: fails all the same
                }
                throw new IllegalArgumentException("bad");
            }
            return "vm" + i;
        }, closed::add)).isInstanceOf(RestoreException.class)
                .hasMessage("clone web-2 (2 of 4) failed: web-2: the incoming migration failed")
                .satisfies(e -> assertThat(e.getSuppressed()).singleElement().extracting(Throwable::getMessage)
                        .isEqualTo("clone web-4 (4 of 4) failed: bad"));
        assertThat(closed).containsExactlyInAnyOrder("vm0", "vm2");
    }

    @Test
    void theFirstFailureInterruptsTheClonesStillRestoring() {
        ConcurrentLinkedQueue<String> closed = new ConcurrentLinkedQueue<>();
        long started = System.nanoTime();
        assertThatThrownBy(() -> Clones.startAll(List.of("a", "b"), i -> {
            if (i == 0) throw new RestoreException("a: QEMU exited", null);
            try {
                Thread.sleep(60_000); // a restore that would go on for a minute
                return "vm" + i;
            } catch (InterruptedException e) {
                throw new RestoreException("b: interrupted", e);
            }
        }, closed::add)).isInstanceOf(RestoreException.class).hasMessage("clone a (1 of 2) failed: a: QEMU exited")
                .satisfies(e -> assertThat(e.getSuppressed()).singleElement().extracting(Throwable::getMessage)
                        .isEqualTo("clone b (2 of 2) failed: b: interrupted"));
        assertThat(closed).isEmpty();
        assertThat(System.nanoTime() - started).as("b was stopped, not waited for").isLessThan(TimeUnit.SECONDS.toNanos(30));
    }

    @Test
    void theFailureThrownIsTheFirstInTimeNotInCloneOrder() {
        // Seen on the real QEMU: clone 2's QEMU killed, clone 1 then interrupted in a QMP write; the cause is clone 2's failure.
        assertThatThrownBy(() -> Clones.startAll(List.of("a", "b"), i -> {
            if (i == 1) throw new RestoreException("b: QEMU exited", null);
            try {
                Thread.sleep(60_000);
                return "vm" + i;
            } catch (InterruptedException e) {
                throw new RestoreException("a: QMP write failed: null", e);
            }
        }, vm -> {})).isInstanceOf(RestoreException.class).hasMessage("clone b (2 of 2) failed: b: QEMU exited")
                .satisfies(e -> assertThat(e.getSuppressed()).singleElement().extracting(Throwable::getMessage)
                        .isEqualTo("clone a (1 of 2) failed: a: QMP write failed: null"));
    }

    @Test
    void clonesNotRestoredByTheDeadlineAreStoppedAndTheOnesThatStartedClosed() {
        ConcurrentLinkedQueue<String> closed = new ConcurrentLinkedQueue<>();
        assertThatThrownBy(() -> Clones.startAll(List.of("a", "b"), i -> {
            if (i == 0) return "vm0";
            try {
                Thread.sleep(60_000);
                return "vm1";
            } catch (InterruptedException e) {
                throw new RestoreException("b: interrupted", e);
            }
        }, closed::add, java.time.Duration.ofMillis(300))).isInstanceOf(RestoreException.class)
                .hasMessage("clones: expected all 2 restored within 0 s, actual 1 by then");
        assertThat(closed).containsExactly("vm0");
    }

    @Test
    void aCloseThatFailsDoesNotKeepTheOthersOpen() {
        ConcurrentLinkedQueue<String> closed = new ConcurrentLinkedQueue<>();
        assertThatThrownBy(() -> Clones.startAll(List.of("a", "b", "c"), i -> {
            if (i == 2) throw new RestoreException("c: failed", null);
            return "vm" + i;
        }, vm -> {
            closed.add(vm);
            if (vm.equals("vm0")) throw new IllegalStateException("vm0 would not quit");
        })).isInstanceOf(RestoreException.class).hasMessage("clone c (3 of 3) failed: c: failed")
                .satisfies(e -> assertThat(e.getSuppressed()).extracting(Throwable::getMessage).contains("vm0 would not quit"));
        assertThat(closed).containsExactly("vm0", "vm1");
    }
}
