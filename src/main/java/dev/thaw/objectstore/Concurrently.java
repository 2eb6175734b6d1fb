package dev.thaw.objectstore;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * Independent requests at once, one virtual thread each: an open's GETs cost one round trip together instead of one each;
 * a multipart upload's parts share the wait for their answers. Every request is bounded by the store's own timeouts; once
 * one failed, those not yet started are not started, and the first failure (in the tasks' order) is thrown once all that
 * started have ended.
 */
final class Concurrently {
    /** One request: its result is what it fetched or sent, in bytes. */
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
        java.util.concurrent.Semaphore slots = new java.util.concurrent.Semaphore(Math.max(1, maxInFlight));
        java.util.concurrent.atomic.AtomicBoolean failed = new java.util.concurrent.atomic.AtomicBoolean();
        try (ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor()) {
            for (Task t : tasks) {
                futures.add(pool.submit(() -> {
                    slots.acquire();
                    try {
                        if (failed.get()) return null; // not started: another task failed
                        return t.run();
                    } catch (Throwable e) {
                        failed.set(true);
                        throw e;
                    } finally {
                        slots.release();
                    }
                }));
            }
        } // close() waits for every task
        List<Long> results = new ArrayList<>();
        Throwable first = null;
        for (Future<Long> f : futures) {
            try {
                results.add(await(f));
            } catch (IOException | RuntimeException | Error e) {
                if (first == null) first = e;
            }
        }
        switch (first) {
            case null -> {}
            case IOException io -> throw io;
            case RuntimeException r -> throw r;
            case Error err -> throw err;
            default -> throw new IllegalStateException(first);
        }
        return results;
    }

    /** A task's result, or its failure as it threw it (an interrupt as {@link ObjectStoreException.Unreachable}). */
    static <T> T await(Future<T> task) throws IOException {
        try {
            return task.get();
        } catch (ExecutionException e) {
            switch (e.getCause()) {
                case IOException io -> throw io;
                case RuntimeException r -> throw r;
                case Error err -> throw err;
                case InterruptedException i -> throw new ObjectStoreException.Unreachable("interrupted while transferring", i);
                default -> throw new IllegalStateException(e.getCause());
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new ObjectStoreException.Unreachable("interrupted while transferring", e);
        }
    }
}
