package dev.thaw.objectstore;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * Small independent requests at once, one virtual thread each: an open's GETs cost one round trip together instead of one
 * each. Every request is bounded by the store's own timeouts; the first failure is thrown once all have ended.
 */
final class Concurrently {
    /** One request: its result is what it fetched, in bytes. */
    interface Task {
        long run() throws IOException;
    }

    private Concurrently() {}

    /** Runs every task, waits for all, returns their results in order; throws the first failure (in the tasks' order). */
    static List<Long> run(List<Task> tasks) throws IOException {
        return run(tasks, Integer.MAX_VALUE);
    }

    /** As {@link #run(List)}, at most {@code maxInFlight} tasks at a time (large transfers: each holds a connection). */
    static List<Long> run(List<Task> tasks, int maxInFlight) throws IOException {
        List<Future<Long>> futures = new ArrayList<>();
        java.util.concurrent.Semaphore slots = new java.util.concurrent.Semaphore(maxInFlight);
        try (ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor()) {
            for (Task t : tasks) {
                futures.add(pool.submit(() -> {
                    slots.acquire();
                    try {
                        return t.run();
                    } finally {
                        slots.release();
                    }
                }));
            }
        } // close() waits for every task
        List<Long> results = new ArrayList<>();
        for (Future<Long> f : futures) results.add(await(f));
        return results;
    }

    /** A task's result, or its failure as it threw it. */
    static <T> T await(Future<T> task) throws IOException {
        try {
            return task.get();
        } catch (ExecutionException e) {
            switch (e.getCause()) {
                case IOException io -> throw io;
                case RuntimeException r -> throw r;
                case Error err -> throw err;
                default -> throw new IllegalStateException(e.getCause());
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new ObjectStoreException.Unreachable("interrupted while fetching", e);
        }
    }
}
