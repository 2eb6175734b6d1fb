package dev.thaw.save;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.thaw.qemu.QmpClient;
import dev.thaw.qemu.QmpException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Optional;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A {@code thaw save}'s hold on a running guest, recorded beside the guest's QMP socket ({@code SOCKET.thaw-save.json}) from
 * before the save stops the guest until the save ends. A save killed with SIGKILL runs no cleanup, so the guest it stopped
 * stays paused; this record lets the next Thaw that touches the guest (its next save, {@code thaw save --recover}, the
 * {@code thaw boot} that owns it) see that a save which died had stopped a running guest, and resume it.
 *
 * @param thawPid             the saving Thaw
 * @param thawStartedAtMillis when that process started: a live process that reuses the pid started later
 * @param socketFileKey       the QMP socket's identity (device and inode): a QEMU started since at the same path is another guest
 * @param claimedAt           when the save took the hold, for messages
 */
public record SaveHold(long thawPid, long thawStartedAtMillis, String socketFileKey, String claimedAt) {
    private static final Logger log = LoggerFactory.getLogger(SaveHold.class);
    private static final ObjectMapper JSON = new ObjectMapper();
    public static final String SUFFIX = ".thaw-save.json";
    /** Run states a stopped save leaves: stopped by Thaw, after a completed migration, or while QEMU completed one. */
    static final List<String> LEFT_BY_A_SAVE = List.of("paused", "postmigrate", "finish-migrate");
    private static final List<String> MIGRATION_GOING = List.of("setup", "active", "device", "pre-switchover", "cancelling",
            "wait-unplug", "colo");
    /** How long a dead save's migration may take to fail by itself (QEMU's writes to a closed socket fail at once). */
    private static final Duration MIGRATION_END = Duration.ofSeconds(10);
    // Linux derives a process's start time from the boot time in whole seconds.
    private static final Duration START_TIME_SLACK = Duration.ofSeconds(2);

    /** What the recovery found and did. */
    public record Recovery(boolean resumed, String message) {}

    /** The hold file of the guest behind {@code socket}. */
    public static Path file(Path socket) {
        Path absolute = socket.toAbsolutePath();
        return absolute.resolveSibling(absolute.getFileName() + SUFFIX);
    }

    /** Whether the Thaw that took this hold is gone: no live process of that pid, or one started since. */
    public boolean ownerGone() {
        Optional<ProcessHandle> process = ProcessHandle.of(thawPid).filter(ProcessHandle::isAlive);
        if (process.isEmpty()) return true;
        Optional<Instant> start = process.get().info().startInstant();
        return start.isPresent() && Duration.between(Instant.ofEpochMilli(thawStartedAtMillis), start.get()).abs().compareTo(START_TIME_SLACK) > 0;
    }

    /**
     * Takes the hold for a save of the guest behind {@code socket} (a guest that is not running needs none: nothing to
     * resume); {@link Claim#close} releases it. Refuses a guest a live save holds. Asks QEMU with the save's patience
     * ({@code qmpTimeout}, see {@link Saver.Options#qmpTimeout}).
     */
    public static Claim claim(Path socket, QmpClient qmp, Duration qmpTimeout) {
        Path file = file(socket);
        read(file).filter(h -> !h.ownerGone()).ifPresent(h -> {
            throw new SaveException("cannot save " + qmp.peer() + " (" + socket + "): a save by Thaw pid " + h.thawPid()
                    + " holds it since " + h.claimedAt(), null);
        });
        if (!qmp.queryStatus(qmpTimeout).running()) return new Claim(null);
        ProcessHandle self = ProcessHandle.current();
        SaveHold hold = new SaveHold(self.pid(), self.info().startInstant().map(Instant::toEpochMilli).orElse(0L),
                fileKey(socket).orElse(""), Instant.now().toString());
        try {
            Path temporary = file.resolveSibling(file.getFileName() + "." + self.pid() + ".tmp");
            JSON.writeValue(temporary.toFile(), hold);
            Files.move(temporary, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            return new Claim(file);
        } catch (IOException e) {
            log.warn("cannot record the save's hold on {} in {}: {} (if this Thaw is killed, the guest it stopped stays paused"
                    + " until cont)", qmp.peer(), file, e.toString());
            return new Claim(null);
        }
    }

    /**
     * Resumes the guest behind {@code socket} if a save that died (its Thaw gone) had stopped it while it ran, and it is
     * still as such a save leaves it: paused, postmigrate or finish-migrate, with no migration going on. Removes the dead
     * save's hold whatever it finds. Empty when no dead save holds the guest (none, or a live one: it resumes the guest itself).
     */
    public static Optional<Recovery> resumeIfLeftPaused(Path socket, QmpClient qmp) {
        Path file = file(socket);
        Optional<SaveHold> found = read(file);
        if (found.isEmpty() || !found.get().ownerGone()) return Optional.empty();
        SaveHold hold = found.get();
        String dead = "a save by Thaw pid " + hold.thawPid() + " that died (killed?) had held the guest of " + socket + " since "
                + hold.claimedAt();
        if (!hold.socketFileKey().equals(fileKey(socket).orElse(""))) {
            delete(file);
            return Optional.of(new Recovery(false, dead + ", at a QMP socket since replaced (another QEMU): its record removed"));
        }
        String migration = awaitMigrationEnd(qmp);
        if (MIGRATION_GOING.contains(migration)) {
            return Optional.of(new Recovery(false, dead + "; a migration is " + migration + " now: the guest is left as it is"));
        }
        QmpClient.RunState state = qmp.queryStatus();
        delete(file);
        if (!LEFT_BY_A_SAVE.contains(state.status())) {
            return Optional.of(new Recovery(false, dead + "; the guest is " + state.status() + " now: left as it is"));
        }
        qmp.cont();
        return Optional.of(new Recovery(true, dead + " and left it " + state.status() + " (its migration "
                + (migration.isEmpty() ? "none" : migration) + "): resumed the guest, which was running before that save"));
    }

    private static String awaitMigrationEnd(QmpClient qmp) {
        long deadline = System.nanoTime() + MIGRATION_END.toNanos();
        while (true) {
            String status = qmp.queryMigrate().status();
            if (!MIGRATION_GOING.contains(status) || System.nanoTime() > deadline) return status;
            try {
                Thread.sleep(20);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new QmpException.ConnectionLost(qmp.peer(), "query-migrate", "interrupted while waiting for a dead save's migration", e);
            }
        }
    }

    /** The hold recorded in {@code file}; a damaged one is reported and ignored (Thaw wrote it; a crash may have cut it). */
    static Optional<SaveHold> read(Path file) {
        if (!Files.isRegularFile(file, LinkOption.NOFOLLOW_LINKS)) return Optional.empty();
        try {
            return Optional.of(JSON.readValue(file.toFile(), SaveHold.class));
        } catch (IOException e) {
            log.warn("ignoring {}: expected a save's hold on a guest, actual unreadable: {}", file, e.getMessage());
            return Optional.empty();
        }
    }

    private static Optional<String> fileKey(Path socket) {
        try {
            Object key = Files.readAttributes(socket, BasicFileAttributes.class).fileKey();
            return Optional.ofNullable(key).map(Object::toString);
        } catch (IOException e) {
            return Optional.empty();
        }
    }

    private static void delete(Path file) {
        try {
            Files.deleteIfExists(file);
        } catch (IOException e) {
            log.warn("cannot remove {}: {}", file, e.toString());
        }
    }

    /** A save's hold, released when the save ends (whatever its outcome: a failed save resumes the guest itself). */
    public static final class Claim implements AutoCloseable {
        private final Path file;

        private Claim(Path file) {
            this.file = file;
        }

        @Override
        public void close() {
            if (file != null) delete(file);
        }
    }
}
