package dev.thaw.objectstore;

import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * Keeps a push and a gc of one prefix apart. A push skips packs the bucket already has; a gc running meanwhile, which has not
 * seen the push's manifest (written last), would delete them under it. So each writes a lock object,
 * {@code PREFIX/locks/KIND-ID.json}, then lists {@code PREFIX/locks/}: a push that finds a live gc lock, or a gc that finds
 * any other live lock, deletes its own and stops. With S3's read-after-write consistency, of two that race at least one
 * sees the other (each lists after its own write is done), so a push and a gc never both go on; two pushes do.
 *
 * <p>A lock is live while it is rewritten: its holder writes it again every {@link #REFRESH}, and a lock not written for
 * {@code staleAfter} (a holder that died) is ignored and, by a gc, deleted. Times are the service's own (each lock's
 * last-modified against the one just written), never this host's clock.
 */
public final class BucketLock implements AutoCloseable {
    /** A lock not rewritten for this long belongs to a process that died. */
    public static final Duration STALE_AFTER = Duration.ofMinutes(10);
    static final Duration REFRESH = Duration.ofMinutes(1);
    static final String DIRECTORY = "locks/";

    /** What holds the prefix; 0 is reserved. */
    public enum Kind {
        INVALID, PUSH, GC;

        String word() {
            return name().toLowerCase(java.util.Locale.ROOT);
        }
    }

    private final ObjectStore store;
    private final String key;
    private final byte[] body;
    private final ScheduledExecutorService refresher;
    private final Duration staleAfter;
    private volatile boolean lost;

    private BucketLock(ObjectStore store, String key, byte[] body, Duration staleAfter, Duration refresh) {
        this.store = store;
        this.staleAfter = staleAfter;
        this.key = key;
        this.body = body;
        this.refresher = Executors.newSingleThreadScheduledExecutor(Thread.ofPlatform().daemon().name("thaw-bucket-lock").factory());
        refresher.scheduleWithFixedDelay(this::refresh, refresh.toMillis(), refresh.toMillis(), TimeUnit.MILLISECONDS);
    }

    /** Takes the prefix for {@code kind}, or throws {@link ObjectStoreException.Busy} naming the lock in the way. */
    public static BucketLock acquire(ObjectStore store, S3Location location, Kind kind) {
        return acquire(store, location, kind, STALE_AFTER, REFRESH);
    }

    static BucketLock acquire(ObjectStore store, S3Location location, Kind kind, Duration staleAfter, Duration refresh) {
        if (kind == Kind.INVALID) throw new IllegalArgumentException("kind: expected PUSH or GC, actual INVALID");
        String key = location.key(DIRECTORY + kind.word() + "-" + UUID.randomUUID() + ".json");
        byte[] body;
        try {
            body = JSON.writeValueAsBytes(new Holder(kind.word(), hostName(), ProcessHandle.current().pid()));
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
        store.put(key, body);
        boolean held = false;
        try {
            Instant now = store.lastModified(key).orElseThrow(() -> new ObjectStoreException.Refused(store.url(key)
                    + ": expected the lock just written, actual none (a service without read-after-write consistency cannot be"
                    + " shared by a push and a gc)", null));
            for (Live other : live(store, location, now, staleAfter)) {
                if (other.key().equals(key)) continue;
                if (kind == Kind.GC || other.kind() == Kind.GC) {
                    throw new ObjectStoreException.Busy(location + ": a " + other.kind().word() + " holds this prefix (lock "
                            + store.url(other.key()) + ", last written " + other.lastModified() + "): a " + kind.word()
                            + " does not run beside it; run it again once that ends (a lock its holder stops rewriting is ignored "
                            + staleAfter.toMinutes() + " min after its last write)");
                }
            }
            held = true;
            return new BucketLock(store, key, body, staleAfter, refresh);
        } finally {
            if (!held) store.delete(key);
        }
    }

    private static final com.fasterxml.jackson.databind.ObjectMapper JSON = new com.fasterxml.jackson.databind.ObjectMapper();

    /** What a lock object says of its holder, for the operator who finds it in the way. */
    record Holder(String kind, String host, long pid) {}

    private static String hostName() {
        try {
            return java.nio.file.Files.readString(java.nio.file.Path.of("/proc/sys/kernel/hostname")).strip();
        } catch (java.io.IOException e) {
            return "unknown";
        }
    }

    /** A lock in the listing, not stale at {@code now}. */
    record Live(String key, Kind kind, Instant lastModified) {}

    static List<Live> live(ObjectStore store, S3Location location, Instant now, Duration staleAfter) {
        return store.list(location.key(DIRECTORY)).stream()
                .filter(o -> isLock(o.key().substring(location.key("").length())))
                .filter(o -> !o.lastModified().isBefore(now.minus(staleAfter)))
                .map(o -> new Live(o.key(), kindOf(o.key()), o.lastModified()))
                .toList();
    }

    /** The locks in the listing that are stale at {@code now}: a gc deletes them. */
    static List<ObjectStore.Listed> stale(ObjectStore store, S3Location location, Instant now, Duration staleAfter) {
        return store.list(location.key(DIRECTORY)).stream()
                .filter(o -> isLock(o.key().substring(location.key("").length())))
                .filter(o -> o.lastModified().isBefore(now.minus(staleAfter))).toList();
    }

    private static final java.util.regex.Pattern LOCK = java.util.regex.Pattern.compile(
            "locks/(push|gc)-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\\.json");

    /** A key relative to the prefix that names a lock. */
    static boolean isLock(String relative) {
        return LOCK.matcher(relative).matches();
    }

    static Kind kindOf(String key) {
        String name = key.substring(key.lastIndexOf('/') + 1);
        for (Kind k : Kind.values()) if (k != Kind.INVALID && name.startsWith(k.word() + "-")) return k;
        return Kind.INVALID;
    }

    /** The service's time of this lock's last write. */
    Instant lastModified() {
        return store.lastModified(key).orElseThrow(() -> new ObjectStoreException.NotFound(store.url(key)
                + ": expected this process's lock, actual none (deleted by another process)", null));
    }

    /**
     * Throws unless this lock has been live all along: rewritten in time and never deleted, as a gc deletes a lock it found
     * stale before it sweeps. A push calls it before it writes its manifest: once its lock was lost, a gc may have deleted
     * objects the push skipped or uploaded.
     */
    public void confirm() {
        java.util.Optional<Instant> written = lost ? java.util.Optional.empty() : store.lastModified(key);
        if (written.isEmpty() || lost) {
            throw new ObjectStoreException.Busy(store.url(key) + ": expected this process's lock, actual none: it went stale (not"
                    + " rewritten for " + staleAfter.toMinutes() + " min) and a gc may have deleted what this process wrote; run it again");
        }
    }

    private void refresh() {
        try {
            // Never rewrite a lock that a gc deleted as stale: confirm() must see it gone.
            if (store.lastModified(key).isEmpty()) {
                lost = true;
                refresher.shutdown();
                return;
            }
            store.put(key, body);
        } catch (RuntimeException e) {
            // The next refresh tries again; a lock not rewritten for STALE_AFTER is ignored by others.
            System.err.println("thaw: could not rewrite the lock " + store.url(key) + ": " + e.getMessage());
        }
    }

    @Override
    public void close() {
        refresher.shutdownNow();
        try {
            refresher.awaitTermination(30, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        store.delete(key);
    }
}
