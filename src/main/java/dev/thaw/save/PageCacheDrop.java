package dev.thaw.save;

import dev.thaw.guest.GuestAgent;
import dev.thaw.image.Manifest;
import dev.thaw.qemu.QemuProcesses;
import dev.thaw.qemu.QmpClient;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;

/**
 * {@code thaw save --drop-caches}: before the save stops the guest, its agent runs {@code sync} and writes 1 to
 * {@code /proc/sys/vm/drop_caches}, which frees the guest's clean page cache (1, not 2 or 3: those also free slab objects,
 * dentries and inodes, little memory whose rebuilding costs the restored guest metadata reads). Freed pages keep their
 * bytes unless the guest reports them free: with a balloon's {@code free-page-reporting=on} QEMU discards them a few
 * seconds later (the guest kernel reports free 2 MiB blocks 2 s after a free), so this waits until QEMU's resident memory
 * has settled; they are then zero, and the save elides them. Without reporting the drop is done but the pages stay as they
 * were, and so does the image's size.
 */
final class PageCacheDrop {
    static final Duration AGENT_READY = Duration.ofSeconds(10);
    /** Longer than the guest kernel's 2 s reporting delay. */
    static final Duration SETTLED_FOR = Duration.ofSeconds(3);
    static final Duration SETTLE_TIMEOUT = Duration.ofSeconds(30);
    private static final long SETTLED_BYTES = 1 << 20;
    private static final Duration POLL = Duration.ofMillis(100);

    private PageCacheDrop() {}

    /** Drops the running guest's clean page cache through the agent on {@code agentSocket}; throws, touching nothing else, if it cannot. */
    static Manifest.PageCacheDrop drop(QmpClient qmp, Path agentSocket, Duration qmpTimeout) {
        long started = System.nanoTime();
        QmpClient.RunState state = qmp.queryStatus(qmpTimeout);
        if (!state.running()) {
            throw new SaveException("cannot drop the page cache of " + qmp.peer() + " (--drop-caches): expected a running guest, whose"
                    + " agent drops it, actual " + state.status() + "; nothing was saved", null);
        }
        if (!Files.exists(agentSocket)) {
            throw new SaveException("cannot drop the page cache of " + qmp.peer() + " (--drop-caches): expected the guest agent's socket"
                    + " at " + agentSocket + ", actual none; the guest was not stopped and nothing was saved", null);
        }
        QemuProcesses.Found qemu;
        try {
            qemu = QemuProcesses.serving(agentSocket);
        } catch (IllegalArgumentException e) {
            throw new SaveException("cannot drop the page cache of " + qmp.peer() + " (--drop-caches): " + e.getMessage()
                    + "; the guest was not stopped and nothing was saved", e);
        }
        boolean reporting = qemu.argv().stream().anyMatch(a -> a.contains("free-page-reporting=on"));
        GuestAgent.CacheDrop dropped;
        try (GuestAgent agent = GuestAgent.connect(agentSocket, qmp.peer())) {
            agent.awaitReady(AGENT_READY);
            dropped = agent.dropCaches();
        } catch (GuestAgent.AgentException e) {
            throw new SaveException("cannot drop the page cache of " + qmp.peer() + " (--drop-caches: the guest's agent on " + agentSocket
                    + "): " + e.getMessage() + "; the guest was not stopped and nothing was saved", e);
        }
        if (reporting) awaitResidentSettled(qemu.pid());
        return new Manifest.PageCacheDrop(dropped.dropCachesValue(), dropped.buffersBytesBefore() + dropped.cachedBytesBefore(),
                dropped.buffersBytesAfter() + dropped.cachedBytesAfter(), dropped.freeBytesBefore(), dropped.freeBytesAfter(), reporting,
                System.nanoTime() - started);
    }

    /**
     * Waits until QEMU's resident memory moved by less than 1 MiB for {@link #SETTLED_FOR}: the reported pages discarded. A
     * guest that keeps allocating may never settle; after {@link #SETTLE_TIMEOUT} the save goes on (what was discarded is).
     */
    private static void awaitResidentSettled(long pid) {
        long deadline = System.nanoTime() + SETTLE_TIMEOUT.toNanos();
        long reference = residentBytes(pid);
        long since = System.nanoTime();
        try {
            while (System.nanoTime() < deadline) {
                Thread.sleep(POLL);
                long now = residentBytes(pid);
                if (Math.abs(now - reference) >= SETTLED_BYTES) {
                    reference = now;
                    since = System.nanoTime();
                } else if (System.nanoTime() - since >= SETTLED_FOR.toNanos()) {
                    return;
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new SaveException("interrupted while waiting for the guest's free pages to be reported; nothing was saved", e);
        }
    }

    /** QEMU's resident set ({@code /proc/PID/statm}'s second field, in pages). */
    private static long residentBytes(long pid) {
        Path statm = Path.of("/proc", Long.toString(pid), "statm");
        try {
            String[] fields = Files.readString(statm).trim().split(" ");
            return Long.parseLong(fields[1]) * 4096;
        } catch (IOException | RuntimeException e) {
            throw new SaveException("cannot read " + statm + " (the guest's QEMU, waiting for its free pages to be reported): "
                    + e.getMessage() + "; nothing was saved", e);
        }
    }
}
