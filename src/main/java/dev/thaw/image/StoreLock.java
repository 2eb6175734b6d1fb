package dev.thaw.image;

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
 */
final class StoreLock {
    static final String FILE = "store.lock";
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
        long stamp = inProcess.readLock();
        try {
            synchronized (this) {
                if (sharedHolders == 0) {
                    FileChannel channel = open();
                    lockOrClose(channel, true);
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
                    closeQuietly(sharedChannel);
                    sharedChannel = null;
                }
            }
            inProcess.unlockRead(stamp);
        });
    }

    Held exclusive() {
        long stamp = inProcess.writeLock();
        FileChannel channel;
        try {
            channel = open();
            lockOrClose(channel, false);
        } catch (RuntimeException e) {
            inProcess.unlockWrite(stamp);
            throw e;
        }
        return once(() -> {
            closeQuietly(channel);
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

    private void lockOrClose(FileChannel channel, boolean shared) {
        try {
            channel.lock(0, Long.MAX_VALUE, shared); // blocks while another process holds a conflicting lock
        } catch (IOException e) {
            closeQuietly(channel);
            throw new ImageException.CannotWrite(file, "cannot lock the store (" + (shared ? "shared" : "exclusive") + "): " + e, e);
        }
    }

    private static Held once(Runnable release) {
        java.util.concurrent.atomic.AtomicBoolean released = new java.util.concurrent.atomic.AtomicBoolean();
        return () -> {
            if (released.compareAndSet(false, true)) release.run();
        };
    }

    private static void closeQuietly(FileChannel channel) {
        try {
            channel.close();
        } catch (IOException e) {
            // closing releases the lock either way
        }
    }
}
