package dev.thaw.save;

import dev.thaw.qemu.QmpClient;
import dev.thaw.qemu.QmpException;
import dev.thaw.util.FileTrees;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Undoes a save that SIGINT or SIGTERM interrupts, through a JVM shutdown hook (SIGKILL runs nothing:
 * the next save removes what it left, see ImageWriter). The JVM runs its hooks while the save's own
 * thread goes on, so the hook cancels the migration, which ends the save's stream and makes the save
 * fail as any failed save does: it deletes its partial image and resumes a guest that was running.
 * The hook waits for that, and does it itself if the save's thread has not within {@link #SAVE_CLEANUP}.
 */
final class InterruptGuard implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(InterruptGuard.class);
    static final Duration SAVE_CLEANUP = Duration.ofSeconds(20);
    private static final Duration QMP_TIMEOUT = Duration.ofSeconds(10);

    private final QmpClient qmp;
    private final boolean wasRunning;
    private final Thread hook;
    private final CountDownLatch saveEnded = new CountDownLatch(1);
    private final Set<Path> partialImages = ConcurrentHashMap.newKeySet();
    private volatile boolean interrupted;

    private InterruptGuard(QmpClient qmp, boolean wasRunning) {
        this.qmp = qmp;
        this.wasRunning = wasRunning;
        this.hook = new Thread(this::undo, "thaw-save-interrupted");
    }

    /** Guards a save of the guest behind {@code qmp} until {@link #close()}; its first question waits up to {@code qmpTimeout}. */
    static InterruptGuard install(QmpClient qmp, Duration qmpTimeout) {
        InterruptGuard guard = new InterruptGuard(qmp, qmp.queryStatus(qmpTimeout).running());
        Runtime.getRuntime().addShutdownHook(guard.hook);
        return guard;
    }

    boolean wasRunning() {
        return wasRunning;
    }

    /** A partial image to delete if the save's thread does not. */
    void writing(Path partialImage) {
        partialImages.add(partialImage);
    }

    /** Throws once a signal arrived, so that no new migration starts after the hook cancelled the last. */
    void check() {
        if (interrupted) throw new SaveException("save of " + qmp.peer() + " interrupted by a signal", null);
    }

    private void undo() {
        interrupted = true;
        log.warn("interrupted: cancelling the save of {}{}", qmp.peer(), wasRunning ? " and resuming the guest" : "");
        cancelAndResume();
        try {
            if (saveEnded.await(SAVE_CLEANUP.toMillis(), TimeUnit.MILLISECONDS)) return;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        log.warn("the save of {} did not end within {} s of the signal: cleaning up for it", qmp.peer(), SAVE_CLEANUP.toSeconds());
        cancelAndResume();
        partialImages.forEach(FileTrees::deleteQuietly);
    }

    private void cancelAndResume() {
        try {
            if (!qmp.isOpen()) return;
            qmp.execute("migrate_cancel", null, QMP_TIMEOUT); // a no-op without a migration
            if (wasRunning) qmp.cont();
        } catch (QmpException e) {
            log.warn("cannot cancel the save of {} or resume its guest: {}", qmp.peer(), e.getMessage());
        }
    }

    @Override
    public void close() {
        saveEnded.countDown();
        try {
            Runtime.getRuntime().removeShutdownHook(hook);
        } catch (IllegalStateException e) {
            // the JVM is shutting down: the hook runs, and returns at once now that the save ended
        }
    }
}
