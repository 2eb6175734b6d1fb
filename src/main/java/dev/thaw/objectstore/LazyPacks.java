package dev.thaw.objectstore;

import dev.thaw.image.PackBytes;
import dev.thaw.image.PortableImage;
import dev.thaw.util.OwnerOnly;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * Packs fetched while a restore reads them: each a sparse file of its full size in the cache, marked unfinished by a
 * {@code .partial} file beside it. Its frame, trailer and index are fetched first (three small range GETs), so the image
 * opens; then a background thread fetches every pack in the layout's order (the working set's copy first) in large
 * range GETs, while a reader's {@link #require} fetches what it needs now in small ones (the chunks of 64 KiB that one
 * extent spans). A chunk is fetched by one thread: another that needs it waits (at most {@link #WAIT}) and takes it over if
 * that thread's GET fails. A pack whose every chunk arrived is checked whole against the manifest's checksum before its
 * marker goes; one whose bytes are wrong keeps its marker and fails every later read of it.
 * Extents are checked as they are read, as from any local pack. Once every pack is whole and checked, {@code whenWhole}
 * runs (the cache releases its lock: the restore's packs are open, so an eviction cannot take them from it).
 */
public final class LazyPacks implements PackBytes, AutoCloseable {
    static final int CHUNK_BYTES = 64 << 10;
    static final Duration WAIT = Duration.ofSeconds(120);
    static final String PARTIAL = ".partial";

    private final ObjectStore store;
    private final Map<UUID, Pack> packs = new LinkedHashMap<>();
    private final Thread background;
    private final Runnable whenWhole;
    private volatile RuntimeException backgroundFailure;
    private long openingBytes;
    private final java.util.concurrent.atomic.LongAdder backgroundBytes = new java.util.concurrent.atomic.LongAdder();
    private final java.util.concurrent.atomic.LongAdder demandBytes = new java.util.concurrent.atomic.LongAdder();
    private final java.util.concurrent.atomic.LongAdder demandRequests = new java.util.concurrent.atomic.LongAdder();

    /** One pack being fetched. */
    private static final class Pack {
        final PortableImage.Part part;
        final String key;
        final Path file;
        final FileChannel out;
        final int chunkCount;
        final BitSet present = new BitSet();
        final BitSet inFlight = new BitSet();
        final ReentrantLock lock = new ReentrantLock();
        final Condition arrived = lock.newCondition();
        RuntimeException failure;

        Pack(PortableImage.Part part, String key, Path file) throws IOException {
            this.part = part;
            this.key = key;
            this.file = file;
            this.chunkCount = (int) ((part.byteSize() + CHUNK_BYTES - 1) / CHUNK_BYTES);
            Files.deleteIfExists(file);
            this.out = FileChannel.open(file, Set.of(StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE, StandardOpenOption.READ,
                    StandardOpenOption.SPARSE), OwnerOnly.FILE);
            out.truncate(0);
            if (part.byteSize() > 0) out.write(ByteBuffer.allocate(1), part.byteSize() - 1); // the full size, a hole before
        }
    }

    /**
     * Sparse files for {@code missing} (in fetch order) in {@code packDirectory}, each with its frame, trailer and index
     * fetched; the background fetch starts at once.
     */
    LazyPacks(ObjectStore store, S3Location location, Path packDirectory, List<PortableImage.Part> missing, String imageName,
              Runnable whenWhole) {
        this.store = store;
        this.whenWhole = whenWhole;
        try {
            List<Concurrently.Task> openings = new ArrayList<>();
            for (PortableImage.Part p : missing) {
                UUID id = packId(p.name());
                Files.deleteIfExists(packDirectory.resolve(p.name() + PARTIAL));
                Files.createFile(packDirectory.resolve(p.name() + PARTIAL), OwnerOnly.FILE);
                Pack pack = new Pack(p, location.key(S3Location.packObject(p.name())), packDirectory.resolve(p.name()));
                packs.put(id, pack);
                openings.add(() -> fetchOpening(id, pack));
            }
            // Every pack's frame, trailer and index at once: the open waits for one pack's three round trips, not for all.
            for (long n : Concurrently.run(openings)) openingBytes += n;
        } catch (IOException e) {
            close();
            throw new ObjectStoreException.Refused("cache: cannot write a pack of " + imageName + ": " + e, e);
        } catch (RuntimeException e) {
            close();
            throw e;
        }
        background = Thread.ofPlatform().name("objectstore-background").daemon().start(this::fetchAll);
    }

    /** A pack's frame, trailer and index (the trailer says where the index is); the bytes fetched. */
    private long fetchOpening(UUID id, Pack pack) throws IOException {
        long size = pack.part.byteSize();
        long bytes = fetchMissing(id, pack, 0, Math.min(size, 48));
        long tail = Math.min(size, 56); // the trailer (24) and the footer (32)
        bytes += fetchMissing(id, pack, size - tail, tail);
        ByteBuffer trailer = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
        pack.out.read(trailer, size - 56);
        long indexOffset = trailer.getLong(0);
        if (indexOffset > 0 && indexOffset < size - 56) bytes += fetchMissing(id, pack, indexOffset, size - 56 - indexOffset);
        return bytes;
    }

    private static UUID packId(String file) {
        return UUID.fromString(file.substring("pack-".length(), file.length() - ".thaw".length()));
    }

    /** Packs not yet whole: the background's work. */
    private void fetchAll() {
        try {
            for (Map.Entry<UUID, Pack> e : packs.entrySet()) {
                Pack p = e.getValue();
                for (long at = 0; at < p.part.byteSize(); at += ImageFetch.RANGE_BYTES) {
                    if (Thread.currentThread().isInterrupted()) return;
                    backgroundBytes.add(fetchMissing(e.getKey(), p, at, Math.min(ImageFetch.RANGE_BYTES, p.part.byteSize() - at)));
                }
                finish(p);
            }
            whenWhole.run();
        } catch (RuntimeException e) {
            backgroundFailure = e;
        }
    }

    /** Every chunk arrived: the whole file against the manifest's checksum, then the marker goes. */
    private void finish(Pack p) {
        PartCheck check = new PartCheck(p.part, store.url(p.key));
        ByteBuffer buffer = ByteBuffer.allocate(1 << 20);
        try {
            for (long at = 0; at < p.part.byteSize(); ) {
                buffer.clear();
                int n = p.out.read(buffer, at);
                if (n <= 0) break;
                check.update(buffer.array(), 0, n);
                at += n;
            }
            check.finish();
            p.out.force(true);
            Files.deleteIfExists(p.file.resolveSibling(p.file.getFileName() + PARTIAL));
        } catch (IOException e) {
            throw new ObjectStoreException.Refused("cache: cannot read back " + p.file + ": " + e, e);
        } catch (ObjectStoreException.Corrupt e) {
            p.lock.lock();
            try {
                p.failure = e;
                p.arrived.signalAll();
            } finally {
                p.lock.unlock();
            }
            throw e;
        }
    }

    @Override
    public void require(UUID packId, long offset, long length) {
        Pack p = packs.get(packId);
        if (p == null || length <= 0) return; // a pack that was whole in the cache already
        long fetched = fetchMissing(packId, p, offset, length);
        if (fetched > 0) {
            demandBytes.add(fetched);
            demandRequests.increment();
        }
    }

    /**
     * Fetches the chunks of the range nobody has or fetches, waits for those another thread fetches, and fetches itself any that
     * thread gave up on (a background GET that failed); the bytes it fetched. A failed GET poisons the pack only when what
     * arrived was wrong ({@link ObjectStoreException.Corrupt}): a store that did not answer once leaves the chunks to the next
     * reader, so one lost background request does not end a restore whose own small GET would work.
     */
    private long fetchMissing(UUID id, Pack p, long offset, long length) {
        int first = (int) (offset / CHUNK_BYTES);
        int last = (int) ((offset + length - 1) / CHUNK_BYTES);
        long fetched = 0;
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (true) {
            BitSet mine = new BitSet();
            p.lock.lock();
            try {
                if (p.failure != null) throw p.failure;
                for (int c = first; c <= last; c++) {
                    if (!p.present.get(c) && !p.inFlight.get(c)) mine.set(c);
                }
                p.inFlight.or(mine);
            } finally {
                p.lock.unlock();
            }
            try {
                for (int start = mine.nextSetBit(0); start >= 0; ) {
                    int end = mine.nextClearBit(start); // a run of chunks: one range GET
                    long from = (long) start * CHUNK_BYTES;
                    long to = Math.min(p.part.byteSize(), (long) end * CHUNK_BYTES);
                    get(p, from, to - from);
                    fetched += to - from;
                    markPresent(p, start, end);
                    start = mine.nextSetBit(end);
                }
            } catch (RuntimeException e) {
                p.lock.lock();
                try {
                    p.inFlight.andNot(mine);
                    if (e instanceof ObjectStoreException.Corrupt && p.failure == null) p.failure = e;
                    p.arrived.signalAll();
                } finally {
                    p.lock.unlock();
                }
                throw e;
            }
            if (awaitSettled(id, p, first, last, deadline)) return fetched;
        }
    }

    /** Chunks {@code [from, to)} arrived: readers waiting for them go on. */
    private static void markPresent(Pack p, int from, int to) {
        p.lock.lock();
        try {
            p.present.set(from, to);
            p.inFlight.clear(from, to);
            p.arrived.signalAll();
        } finally {
            p.lock.unlock();
        }
    }

    /**
     * Waits while a chunk of {@code [first, last]} is missing and another thread fetches it; true once all are present, false
     * when one is missing and nobody fetches it any more (the caller fetches it).
     */
    private boolean awaitSettled(UUID id, Pack p, int first, int last, long deadline) {
        p.lock.lock();
        try {
            while (true) {
                if (p.failure != null) throw p.failure;
                int missing = p.present.nextClearBit(first);
                if (missing > last) return true;
                for (int c = missing; c <= last; c++) {
                    if (!p.present.get(c) && !p.inFlight.get(c)) return false;
                }
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    throw new ObjectStoreException.Unreachable(store.url(p.key) + ": bytes " + (long) first * CHUNK_BYTES + " to "
                            + Math.min(p.part.byteSize(), (long) (last + 1) * CHUNK_BYTES) + ": expected within " + WAIT.toSeconds()
                            + " s (another thread fetches them), actual not yet", null);
                }
                try {
                    p.arrived.awaitNanos(left);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new ObjectStoreException.Unreachable("interrupted while waiting for pack " + id, e);
                }
            }
        } finally {
            p.lock.unlock();
        }
    }

    /**
     * One range GET into the pack's file, from a chunk boundary; each chunk is marked present as soon as its bytes are written,
     * so a reader waiting for one chunk of a long background GET goes on before the rest of it arrives.
     */
    private void get(Pack p, long from, long length) {
        byte[] buffer = new byte[(int) Math.min(length, 1 << 20)];
        long at = from;
        int marked = (int) (from / CHUNK_BYTES); // the first chunk of this GET not yet marked present
        try (InputStream in = store.getRange(p.key, from, length)) {
            for (int n; (n = in.read(buffer)) > 0; ) {
                ByteBuffer b = ByteBuffer.wrap(buffer, 0, n);
                while (b.hasRemaining()) at += p.out.write(b, at);
                int complete = at >= p.part.byteSize() ? p.chunkCount : (int) (at / CHUNK_BYTES);
                if (complete > marked) {
                    markPresent(p, marked, complete);
                    marked = complete;
                }
            }
        } catch (IOException e) {
            throw new ObjectStoreException.Unreachable("reading " + store.url(p.key) + " bytes " + from + "-" + (from + length - 1) + ": " + e, e);
        }
        if (at != from + length) {
            throw new ObjectStoreException.Corrupt(store.url(p.key) + ": bytes " + from + "-" + (from + length - 1) + ": expected " + length
                    + " bytes, actual " + (at - from) + " (the object is shorter than the manifest's " + p.part.byteSize() + ")", null);
        }
    }

    private boolean allPresent() {
        for (Pack p : packs.values()) {
            p.lock.lock();
            try {
                if (p.present.cardinality() < p.chunkCount) return false;
            } finally {
                p.lock.unlock();
            }
        }
        return true;
    }

    /** Bytes of the packs this fetches. */
    public long byteSize() {
        return packs.values().stream().mapToLong(p -> p.part.byteSize()).sum();
    }

    /**
     * What was fetched so far: each pack's frame, trailer and index before the image opened, then by the background and by
     * readers' demands.
     */
    public record Counts(long openingBytes, long backgroundBytes, long demandBytes, int demandRequests, boolean done) {}

    Counts counts() {
        return new Counts(openingBytes, backgroundBytes.sum(), demandBytes.sum(), demandRequests.intValue(),
                background != null && !background.isAlive() && backgroundFailure == null);
    }

    /** Waits for the background to fetch and check every pack; throws what it failed with. */
    void awaitAll(Duration timeout) throws InterruptedException {
        if (!background.join(timeout)) {
            throw new ObjectStoreException.Unreachable("the background fetch: expected every pack within " + timeout.toSeconds()
                    + " s, actual not yet (" + backgroundBytes.sum() + " bytes)", null);
        }
        if (backgroundFailure != null) throw backgroundFailure;
    }

    /**
     * Lets the background check the packs whole if every byte is here (a restore that completed read them all), for at most
     * {@link #WAIT}; otherwise stops it (an unfinished pack keeps its marker: the next fetch starts it anew). Closes the files.
     */
    @Override
    public void close() {
        if (background != null) {
            try {
                if (allPresent()) background.join(WAIT);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            background.interrupt();
            try {
                background.join(Duration.ofSeconds(35));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        List<Pack> all = new ArrayList<>(packs.values());
        for (Pack p : all) {
            try {
                p.out.close();
            } catch (IOException e) {
                // closing a file we wrote and forced, or are abandoning
            }
        }
    }
}
