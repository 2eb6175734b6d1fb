package dev.thaw.qemu;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;

class JournalTest {
    @Test
    void cursorSeesOnlyWhatComesAfterIt() throws InterruptedException {
        Journal<String> journal = new Journal<>(100);
        journal.append("old");
        Journal<String>.Cursor cursor = journal.cursor();
        journal.append("a");
        journal.append("b");
        assertThat(cursor.next(Duration.ZERO)).contains("a");
        assertThat(cursor.drain()).containsExactly("b");
        assertThat(cursor.next(Duration.ofMillis(10))).isEmpty();
        assertThat(journal.cursorFromStart().drain()).containsExactly("old", "a", "b");
    }

    @Test
    void awaitSkipsToTheFirstMatchWrittenByAnotherThread() throws Exception {
        Journal<Integer> journal = new Journal<>(100);
        Journal<Integer>.Cursor cursor = journal.cursor();
        CompletableFuture<Optional<Integer>> waiter = CompletableFuture.supplyAsync(() -> {
            try {
                return cursor.await(i -> i > 2, Duration.ofSeconds(30));
            } catch (InterruptedException e) {
                throw new IllegalStateException(e);
            }
        });
        for (int i = 0; i < 5; i++) journal.append(i);
        assertThat(waiter.get()).contains(3);
        assertThat(cursor.next(Duration.ZERO)).contains(4);
    }

    @Test
    void closeEndsWaitsAtOnce() {
        Journal<String> journal = new Journal<>(10);
        Journal<String>.Cursor cursor = journal.cursor();
        CompletableFuture.runAsync(() -> journal.close("gone"));
        assertTimeoutPreemptively(Duration.ofSeconds(10), () -> assertThat(cursor.next(Duration.ofMinutes(10))).isEmpty());
        assertThat(journal.closedReason()).isEqualTo("gone");
    }

    @Test
    void dropsTheOldestBeyondCapacityAndCursorsSkipAhead() {
        Journal<Integer> journal = new Journal<>(3);
        Journal<Integer>.Cursor cursor = journal.cursor();
        for (int i = 0; i < 10; i++) journal.append(i);
        assertThat(journal.size()).isEqualTo(10);
        assertThat(journal.snapshot()).isEqualTo(List.of(7, 8, 9));
        assertThat(cursor.drain()).containsExactly(7, 8, 9);
    }

    @Test
    void aByteBudgetBoundsWhatIsKeptHoweverLongTheEntries() {
        Journal<String> journal = new Journal<>(1000, 100_000, s -> 2L * s.length());
        String line = "x".repeat(10_000); // 20,000 bytes each: the count alone would keep 20 MB
        for (int i = 0; i < 50; i++) journal.append(i + line);
        List<String> kept = journal.snapshot();
        assertThat(kept.stream().mapToLong(s -> 2L * s.length()).sum()).isLessThanOrEqualTo(100_000);
        assertThat(kept).isNotEmpty().last().asString().startsWith("49");
        assertThat(journal.size()).as("entries ever appended").isEqualTo(50);
        Journal<String> big = new Journal<>(10, 10, s -> 2L * s.length());
        big.append(line);
        assertThat(big.snapshot()).as("the newest entry stays even when it alone exceeds the budget").hasSize(1);
    }
}
