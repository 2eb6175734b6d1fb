package dev.thaw.image;

import dev.thaw.util.Closing;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.locks.StampedLock;

/**
 * A store's lock: a POSIX record lock ({@link FileChannel#lock}) on {@code STORE/store.lock}, shared by
 * writers (saves, working-set attaches), exclusive for {@code rm} and {@code gc}. The JVM holds one
 * file lock per process and throws on overlapping ones, so the holders inside this process are
 * counted under a {@link StampedLock} (whose stamps, unlike a ReentrantReadWriteLock's, may be
 * released by another thread than the one that took them: a save may commit on another thread).
 * Every wait for it ends after {@link #WAIT} (a save that another process has stopped holds its shared lock as long as it is
 * stopped) with an error saying so.
 */
final class StoreLock {
    static final String FILE = "store.lock";
    /** How long a writer, {@code rm} or {@code gc} waits for the lock before it gives up. */
    static final java.time.Duration WAIT = java.time.Duration.ofMinutes(10);
    private static final long POLL_MILLIS = 50;
    private static final Map<Path, StoreLock> LOCKS = new ConcurrentHashMap<>();

    private final Path file;
    private final StampedLock inProcess = new StampedLock();
    private FileChannel sharedChannel; // open while sharedHolders > 0; closing it releases the file lock
    private int sharedHolders;

    /** Releases the lock once; later calls do nothing. */
    interface Held extends AutoCloseable {
        @Override
        void close();
    }

    private StoreLock(Path file) {
        this.file = file;
    }

    /** One per store and process: keyed by the real path, since two names of one lock file would overlap in this JVM. */
    static StoreLock of(Path storeDirectory) {
        Path key;
        try {
            key = storeDirectory.toRealPath();
        } catch (IOException e) {
            throw new ImageException.Missing(storeDirectory, "cannot be resolved: " + e, e);
        }
        return LOCKS.computeIfAbsent(key, d -> new StoreLock(d.resolve(FILE)));
    }

    Held shared() {
        return shared(WAIT);
    }

    Held shared(java.time.Duration wait) {
        long deadline = System.nanoTime() + wait.toNanos();
        long stamp = inProcessStamp(false, wait);
        try {
            synchronized (this) {
                if (sharedHolders == 0) {
                    FileChannel channel = open();
                    lockOrClose(channel, true, deadline, wait);
                    sharedChannel = channel;
                }
                sharedHolders++;
            }
        } catch (RuntimeException e) {
            inProcess.unlockRead(stamp);
            throw e;
        }
        return once(() -> {
            synchronized (this) {
                if (--sharedHolders == 0) {
                    Closing.quietly(sharedChannel);
                    sharedChannel = null;
                }
            }
            inProcess.unlockRead(stamp);
        });
    }

    Held exclusive() {
        return exclusive(WAIT);
    }

    Held exclusive(java.time.Duration wait) {
        long deadline = System.nanoTime() + wait.toNanos();
        long stamp = inProcessStamp(true, wait);
        FileChannel channel;
        try {
            channel = open();
            lockOrClose(channel, false, deadline, wait);
        } catch (RuntimeException e) {
            inProcess.unlockWrite(stamp);
            throw e;
        }
        return once(() -> {
            Closing.quietly(channel);
            inProcess.unlockWrite(stamp);
        });
    }

    private FileChannel open() {
        try {
            return FileChannel.open(file, Set.of(StandardOpenOption.CREATE, StandardOpenOption.READ, StandardOpenOption.WRITE),
                    dev.thaw.util.OwnerOnly.FILE);
        } catch (IOException e) {
            throw new ImageException.CannotWrite(file, "cannot open the store's lock file: " + e, e);
        }
    }

    /** This process's own holders first: a gc waits for this JVM's saves here, not on the file. */
    private long inProcessStamp(boolean exclusive, java.time.Duration wait) {
        long stamp;
        try {
            stamp = exclusive ? inProcess.tryWriteLock(wait.toNanos(), java.util.concurrent.TimeUnit.NANOSECONDS)
                    : inProcess.tryReadLock(wait.toNanos(), java.util.concurrent.TimeUnit.NANOSECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new ImageException.CannotWrite(file, "interrupted while waiting for the store's lock", e);
        }
        if (stamp == 0) throw timedOut(exclusive, wait, "this process");
        return stamp;
    }

    /** The file lock, polled until {@code deadline}: {@link FileChannel#lock} would wait for another process without end. */
    private void lockOrClose(FileChannel channel, boolean shared, long deadline, java.time.Duration wait) {
        try {
            while (channel.tryLock(0, Long.MAX_VALUE, shared) == null) {
                if (System.nanoTime() - deadline >= 0) throw timedOut(!shared, wait, "another process (a save, rm or gc)");
                Thread.sleep(POLL_MILLIS);
            }
        } catch (IOException e) {
            Closing.quietly(channel);
            throw new ImageException.CannotWrite(file, "cannot lock the store (" + (shared ? "shared" : "exclusive") + "): " + e, e);
        } catch (InterruptedException e) {
            Closing.quietly(channel);
            Thread.currentThread().interrupt();
            throw new ImageException.CannotWrite(file, "interrupted while waiting for the store's lock", e);
        } catch (RuntimeException e) {
            Closing.quietly(channel);
            throw e;
        }
    }

    private ImageException timedOut(boolean exclusive, java.time.Duration wait, String holder) {
        return new ImageException.CannotWrite(file, String.format("waited %.1f s for the store's %s lock; %s holds a conflicting one:"
                + " expected it released, actual still held%s", wait.toNanos() / 1e9, exclusive ? "exclusive" : "shared", holder,
                exclusive ? " (a save holds its shared lock as long as it runs, stopped with its QEMU too: try again once it ends)"
                        : " (an rm or gc: try again once it ends)"), null);
    }

    private static Held once(Runnable release) {
        java.util.concurrent.atomic.AtomicBoolean released = new java.util.concurrent.atomic.AtomicBoolean();
        return () -> {
            if (released.compareAndSet(false, true)) release.run();
        };
    }
}
