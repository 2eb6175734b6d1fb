package dev.thaw.util;

import java.io.Closeable;
import java.io.IOException;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongSupplier;

/**
 * Ends a blocking transfer that stopped making progress: when the progress counter has not moved
 * for {@code stallTimeout}, it closes the channel, which makes the blocked read or write fail at once.
 * The socket APIs of the JDK have no read timeout for channels; this is that timeout.
 */
public final class StallWatchdog implements AutoCloseable {
    private final Thread thread;
    private volatile boolean stalled;
    private volatile boolean closed;

    public StallWatchdog(String name, LongSupplier progress, Duration stallTimeout, Closeable toClose) {
        AtomicLong last = new AtomicLong(progress.getAsLong());
        this.thread = Thread.ofPlatform().daemon().name("stall-watchdog-" + name).start(() -> {
            long lastChange = System.nanoTime();
            while (!closed) {
                try {
                    Thread.sleep(Math.min(250, Math.max(1, stallTimeout.toMillis() / 4)));
                } catch (InterruptedException e) {
                    return;
                }
                long now = progress.getAsLong();
                if (now != last.get()) {
                    last.set(now);
                    lastChange = System.nanoTime();
                } else if (System.nanoTime() - lastChange > stallTimeout.toNanos() && !closed) {
                    stalled = true;
                    try {
                        toClose.close();
                    } catch (IOException e) {
                        // closing to unblock; nothing else to do
                    }
                    return;
                }
            }
        });
    }

    /** True if the watchdog closed the channel because nothing moved. */
    public boolean stalled() {
        return stalled;
    }

    @Override
    public void close() {
        closed = true;
        thread.interrupt();
    }
}
