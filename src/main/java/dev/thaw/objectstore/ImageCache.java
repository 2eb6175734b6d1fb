package dev.thaw.objectstore;

import dev.thaw.image.DiskBases;
import dev.thaw.image.PortableImage;
import dev.thaw.util.FileTrees;
import dev.thaw.util.OwnerOnly;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.FileTime;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;

/**
 * The bounded local cache a restore from object storage fetches into ({@code CACHE/objectstore}): packs in {@code packs/},
 * shared by the images fetched (a pack is fetched once for all the images that name it: clones, successive saves), and
 * each image version's files in {@code images/IMAGE-ID-MANIFEST-CHECKSUM/}, whose {@code store} links to {@code packs/}.
 * Before a fetch, the least recently used packs and image versions the image does not need are deleted until what stays
 * plus what the image still needs fits the bound; an image larger than the bound is refused before anything is fetched.
 * One fetch at a time (the directory's {@code cache.lock}, waited for at most {@link #LOCK_TIMEOUT}; a restore's fetch holds
 * it until its packs are whole and checked, not for the guest's life).
 *
 * <p>A restore reads the fetched image as it reads a local one: it opens it (every metadata checksum) and checks each
 * extent as it reads it. It never writes into the bucket.
 */
public final class ImageCache {
    private static final org.slf4j.Logger log = org.slf4j.LoggerFactory.getLogger(ImageCache.class);
    public static final long DEFAULT_MAX_BYTES = 16L << 30;
    public static final String MAX_BYTES_ENV = "THAW_OBJECTSTORE_CACHE_BYTES";
    static final Duration LOCK_TIMEOUT = Duration.ofMinutes(5);

    private final Path root;
    private final long maxBytes;

    public ImageCache(Path root, long maxBytes) {
        if (maxBytes <= 0) throw new IllegalArgumentException("cache bound: expected a positive number of bytes, actual " + maxBytes);
        this.root = root.toAbsolutePath().normalize();
        this.maxBytes = maxBytes;
    }

    /** Where the cache is when {@value #DIRECTORY_ENV} (or the system property {@value #DIRECTORY_PROPERTY}) does not say. */
    public static final String DIRECTORY_ENV = "THAW_OBJECTSTORE_CACHE";
    public static final String DIRECTORY_PROPERTY = "thaw.objectstore.cache";

    /**
     * {@value #DIRECTORY_ENV} or {@code CACHE/objectstore}, bounded by {@value #MAX_BYTES_ENV} (bytes) or
     * {@link #DEFAULT_MAX_BYTES}.
     */
    public static ImageCache standard() {
        String directory = System.getenv(DIRECTORY_ENV) != null ? System.getenv(DIRECTORY_ENV) : System.getProperty(DIRECTORY_PROPERTY);
        String bound = System.getenv(MAX_BYTES_ENV);
        long max;
        try {
            max = bound == null || bound.isBlank() ? DEFAULT_MAX_BYTES : Long.parseLong(bound.strip());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(MAX_BYTES_ENV + ": expected a number of bytes, actual '" + bound + "'", e);
        }
        return new ImageCache(directory != null && !directory.isBlank() ? Path.of(directory)
                : dev.thaw.util.ThawPaths.cacheDir().resolve("objectstore"), max);
    }

    public Path root() {
        return root;
    }

    /**
     * The image, fetched (or found) in the cache: its directory, which {@code CheckpointImage.open} takes like any other.
     *
     * @param evictedBytes what was deleted to make room
     */
    public record Fetched(Path directory, ImageFetch.Report report, long evictedBytes) {}

    public Fetched fetch(ObjectStore store, S3Location.Image source) {
        try (Opened o = open(store, source, false)) {
            return new Fetched(o.directory(), o.report(), o.evictedBytes());
        }
    }

    /**
     * The image in the cache with its files fetched and its packs either all fetched ({@code lazy} false) or, those not
     * whole in the cache yet, fetched while a restore reads them: {@link Opened#packBytes} for {@code CheckpointImage.open}.
     * Holds the cache's lock until every pack is whole and checked (or it is closed).
     */
    public Opened open(ObjectStore store, S3Location.Image source, boolean lazy) {
        long start = System.nanoTime();
        FileChannel lockFile = null;
        FileLock lock = null;
        try {
            Path packs = OwnerOnly.createDirectories(root.resolve("packs"));
            Path images = OwnerOnly.createDirectories(root.resolve("images"));
            Path bases = OwnerOnly.createDirectories(root.resolve(BASES));
            lockFile = FileChannel.open(root.resolve("cache.lock"), Set.of(StandardOpenOption.CREATE, StandardOpenOption.WRITE), OwnerOnly.FILE);
            lock = lock(lockFile);
            removeUnfinished(packs);
            removeUnfinishedCopies(bases);
            long locked = System.nanoTime();
            Path scratch = OwnerOnly.createDirectories(images.resolve(".fetch-" + UUID.randomUUID().toString().substring(0, 8)));
            try {
                ImageFetch.Fetched manifest = ImageFetch.fetchManifest(store, source, scratch);
                long manifestAt = System.nanoTime();
                Path directory = images.resolve(manifest.manifest().imageId() + "-" + manifest.checksum());
                PortableImage.Layout layout = PortableImage.layout(manifest.manifest());
                Set<String> needed = new java.util.HashSet<>();
                List<PortableImage.Part> missingPacks = new ArrayList<>();
                for (PortableImage.Part p : layout.packs()) {
                    needed.add(p.name());
                    if (!Files.isRegularFile(packs.resolve(p.name()))) missingPacks.add(p);
                }
                // Disk bases: fetched whole before the restore starts (QEMU reads them, and their identities are checked first).
                DiskBases listedBases = manifest.manifest().disks().isEmpty() ? null
                        : ImageFetch.fetchDiskBasesList(store, source.location(), manifest.manifest());
                java.util.Map<String, Long> neededBases = new java.util.HashMap<>();
                if (listedBases != null) {
                    for (DiskBases.Disk d : listedBases.disks()) {
                        for (DiskBases.Layer l : d.layers()) neededBases.put(DiskBases.copyName(l), l.identity().byteSize());
                    }
                }
                long baseBytes = neededBases.values().stream().mapToLong(Long::longValue).sum();
                long missingBaseBytes = neededBases.entrySet().stream().filter(e -> !Files.isRegularFile(bases.resolve(e.getKey())))
                        .mapToLong(java.util.Map.Entry::getValue).sum();
                long missingPackBytes = missingPacks.stream().mapToLong(PortableImage.Part::byteSize).sum();
                long missing = missingPackBytes + missingBaseBytes;
                long need = layout.byteSize() + manifest.bytes() + baseBytes;
                if (need > maxBytes) {
                    throw new ObjectStoreException.Unsupported(source + ": expected an image of at most " + maxBytes + " bytes (the cache's"
                            + " bound, " + MAX_BYTES_ENV + "), actual " + need + " bytes");
                }
                boolean haveFiles = Files.isRegularFile(directory.resolve(PortableImage.MANIFEST));
                long evicted = evict(packs, images, bases, needed, neededBases.keySet(), directory, missing + (haveFiles ? 0 : need - baseBytes
                        - layout.packs().stream().mapToLong(PortableImage.Part::byteSize).sum()));
                ImageFetch.Bases fetchedBases = listedBases == null ? null
                        : ImageFetch.fetchBases(store, source.location(), listedBases, bases);
                if (fetchedBases != null && !haveFiles) {
                    // images/ID-CHECKSUM/bases -> CACHE/bases: the list names its copies there, as a pulled image's
                    Files.createSymbolicLink(scratch.resolve(DiskBases.DIRECTORY), Path.of("..", "..", BASES));
                    ImageFetch.writeOwnerOnly(scratch.resolve(DiskBases.FILE), fetchedBases.carried().toJson());
                }
                java.util.function.Predicate<String> skip = lazy ? n -> true : n -> Files.isRegularFile(packs.resolve(n));
                if (!haveFiles) {
                    // images/ID-CHECKSUM/store -> CACHE/packs
                    Files.createSymbolicLink(scratch.resolve(PortableImage.STORE), Path.of("..", "..", "packs"));
                }
                ImageFetch.Progress progress = ImageFetch.fetchParts(store, source.location(), manifest.manifest(), scratch, packs, skip,
                        start, !haveFiles);
                if (!haveFiles) Files.move(scratch, directory, StandardCopyOption.ATOMIC_MOVE);
                long filesAt = System.nanoTime();
                FileChannel held = lockFile;
                boolean arriving = lazy && !missingPacks.isEmpty();
                // The lock goes once nothing can take the image's packs from its reader: every pack whole, and the image open
                // (its packs' files open: an eviction by another fetch can then unlink them, not take them away).
                AtomicInteger pending = new AtomicInteger(arriving ? 2 : 1);
                Runnable settled = () -> {
                    if (pending.decrementAndGet() == 0) release(held);
                };
                LazyPacks lazyPacks = arriving ? new LazyPacks(store, source.location(), packs, missingPacks, source.toString(), settled) : null;
                long indexesAt = System.nanoTime();
                FileTime now = FileTime.fromMillis(System.currentTimeMillis());
                Files.setLastModifiedTime(directory, now);
                for (String n : needed) Files.setLastModifiedTime(packs.resolve(n), now);
                for (String n : neededBases.keySet()) touch(bases.resolve(n + USED), now);
                long reused = lazy ? layout.packs().stream().mapToLong(PortableImage.Part::byteSize).sum() - missingPackBytes : progress.reusedBytes;
                if (fetchedBases != null) {
                    progress.objects += fetchedBases.objects() + 1;
                    progress.bytes += fetchedBases.bytes();
                    reused += fetchedBases.reusedBytes();
                }
                ImageFetch.Report report = new ImageFetch.Report(source.toString(), manifest.manifest().imageId(), directory,
                        progress.objects + 1, progress.bytes + manifest.bytes(), reused, progress.workingSetBytes,
                        progress.workingSetSeconds, (System.nanoTime() - start) / 1e9, List.copyOf(progress.fetchedPacks),
                        fetchedBases == null ? 0 : fetchedBases.bytes());
                Opened opened = new Opened(directory, report, evicted, lazyPacks, lockFile, lock, settled, new Phases((locked - start) / 1e9,
                        (manifestAt - locked) / 1e9, (filesAt - manifestAt) / 1e9, (indexesAt - filesAt) / 1e9));
                lockFile = null; // the Opened owns it now
                return opened;
            } finally {
                FileTrees.deleteQuietly(scratch);
            }
        } catch (IOException e) {
            throw new ObjectStoreException.Refused("cache " + root + ": " + e, e);
        } finally {
            if (lockFile != null) release(lockFile);
        }
    }

    /**
     * Where an open's time went, in order.
     *
     * @param lockSeconds       creating the cache's directories, taking its lock, removing packs a dead Thaw left unfinished
     * @param manifestSeconds   the manifest's GET and its checks
     * @param filesSeconds      evicting, then the image's files (and its MAC, if any); 0 when they were cached
     * @param packIndexesSeconds the sparse packs' frames, trailers and indexes (three small range GETs per pack not cached)
     */
    public record Phases(double lockSeconds, double manifestSeconds, double filesSeconds, double packIndexesSeconds) {
        /** "lock 0.00 s, manifest 0.01 s, files 0.02 s, pack indexes 0.03 s" */
        public String describe() {
            return String.format("lock %.3f s, manifest %.3f s, files %.3f s, pack indexes %.3f s", lockSeconds, manifestSeconds, filesSeconds,
                    packIndexesSeconds);
        }
    }

    /**
     * An image ready in the cache, and the cache's lock until closed.
     *
     * @param lazyPacks the packs still arriving, or null when every pack is whole
     * @param phases    where opening it took its time
     */
    public record Opened(Path directory, ImageFetch.Report report, long evictedBytes, LazyPacks lazyPacks, FileChannel lockFile,
                         FileLock lock, Runnable imageOpened, Phases phases) implements AutoCloseable {
        /** What {@code CheckpointImage.open} asks for each extent's bytes. */
        public dev.thaw.image.PackBytes packBytes() {
            return lazyPacks == null ? dev.thaw.image.PackBytes.LOCAL : lazyPacks;
        }

        /**
         * Opens the image over its packs (arriving or whole), then lets the cache's lock go once every pack is whole too: until
         * its packs are open, another fetch's eviction could remove them.
         */
        public dev.thaw.image.CheckpointImage openImage() {
            dev.thaw.image.CheckpointImage image = dev.thaw.image.CheckpointImage.open(directory, packBytes());
            imageOpened.run();
            return image;
        }

        /** Bytes fetched so far by the background and by readers' demands, and whether every pack is whole and checked. */
        public LazyPacks.Counts counts() {
            return lazyPacks == null ? new LazyPacks.Counts(0, 0, 0, 0, true) : lazyPacks.counts();
        }

        /** Waits until every pack arrived and was checked whole. */
        public void awaitAll(Duration timeout) throws InterruptedException {
            if (lazyPacks != null) lazyPacks.awaitAll(timeout);
        }

        @Override
        public void close() {
            if (lazyPacks != null) lazyPacks.close();
            release(lockFile);
        }
    }

    private static void release(FileChannel lockFile) {
        try {
            lockFile.close(); // releases the lock
        } catch (IOException e) {
            // nothing written through it
        }
    }

    /** Where the disk bases' copies are, shared by the images fetched: named by content and recorded time ({@link DiskBases#copyName}). */
    static final String BASES = "bases";
    /**
     * Beside a base's copy, an empty file whose modification time says when an image last needed it (the copy's own time is
     * the one its save recorded, which the restore's identity check compares).
     */
    static final String USED = ".used";

    private static void touch(Path file, FileTime time) throws IOException {
        if (!Files.exists(file)) Files.write(file, new byte[0]);
        Files.setLastModifiedTime(file, time);
    }

    /** Copies of bases a fetch left half-written (killed before its rename): deleted. Under the lock. */
    private static void removeUnfinishedCopies(Path bases) throws IOException {
        try (Stream<Path> s = Files.list(bases)) {
            for (Path p : s.filter(p -> p.getFileName().toString().contains(".tmp-")).toList()) Files.deleteIfExists(p);
        }
    }

    /** Packs a fetch left unfinished (their {@code .partial} marker): deleted, to be fetched anew. Under the lock. */
    private static void removeUnfinished(Path packs) throws IOException {
        try (Stream<Path> s = Files.list(packs)) {
            for (Path marker : s.filter(p -> p.getFileName().toString().endsWith(LazyPacks.PARTIAL)).toList()) {
                String pack = marker.getFileName().toString();
                Files.deleteIfExists(marker.resolveSibling(pack.substring(0, pack.length() - LazyPacks.PARTIAL.length())));
                Files.deleteIfExists(marker);
            }
        }
    }

    static FileLock lock(FileChannel channel) throws IOException {
        long deadline = System.nanoTime() + LOCK_TIMEOUT.toNanos();
        while (true) {
            FileLock lock;
            try {
                lock = channel.tryLock();
            } catch (java.nio.channels.OverlappingFileLockException e) {
                lock = null; // held by another fetch of this process (restores served by one thaw serve): wait as for another Thaw's
            }
            if (lock != null) return lock;
            if (System.nanoTime() > deadline) {
                throw new IOException("another fetch (of this or another Thaw) holds the cache's lock: expected it within "
                        + LOCK_TIMEOUT.toSeconds() + " s, actual not");
            }
            try {
                Thread.sleep(100);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException("interrupted while waiting for the cache's lock", e);
            }
        }
    }

    /** Where the restores of a cached image keep their overlays: {@code IMAGE.disks/} (RestoreDisks#directoryFor). */
    private static Path overlaysOf(Path image) {
        return image.resolveSibling(image.getFileName() + ".disks");
    }

    /**
     * Whether {@code directory} holds a file (a restore's overlay): an empty one, or one of empty directories (left by a
     * failed restore, or by a user who deleted the overlays), pins nothing. A link there (to the overlays a restore put under
     * its {@code --disk-dir}) pins while its target holds a file; a link whose target is gone or empty pins nothing.
     */
    static boolean holdsOverlays(Path directory) throws IOException {
        return holdsFiles(directory, true);
    }

    /** Whether the tree holds a regular file; links are followed one level only (a link to a link, or a cycle, pins nothing). */
    private static boolean holdsFiles(Path directory, boolean followLinks) throws IOException {
        if (!Files.isDirectory(directory, java.nio.file.LinkOption.NOFOLLOW_LINKS)) return false;
        try (Stream<Path> s = Files.walk(directory)) {
            for (Path p : s.filter(p -> !Files.isDirectory(p, java.nio.file.LinkOption.NOFOLLOW_LINKS)).toList()) {
                if (!Files.isSymbolicLink(p)) return true;
                Path target = Files.readSymbolicLink(p);
                if (followLinks && target.isAbsolute() && holdsFiles(target, false)) return true;
            }
            return false;
        }
    }

    /** Deletes least recently used packs and image versions this fetch does not need until {@code incoming} more fits. */
    private long evict(Path packs, Path images, Path bases, Set<String> needed, Set<String> neededBases, Path keep, long incoming)
            throws IOException {
        record Entry(Path path, long bytes, FileTime used) {}
        List<Entry> candidates = new ArrayList<>();
        long total = 0;
        try (Stream<Path> s = Files.list(packs)) {
            for (Path p : s.filter(p -> p.getFileName().toString().endsWith(".thaw")).toList()) {
                long bytes = Files.size(p);
                total += bytes;
                if (!needed.contains(p.getFileName().toString())) candidates.add(new Entry(p, bytes, Files.getLastModifiedTime(p)));
            }
        }
        // An image whose restores' disk overlays lie beside it (IMAGE.disks/) keeps its files and its bases' copies, which
        // those overlays name as their backing: evicting them would leave the restored guests' disks without a base.
        Set<Path> pinnedImages = new java.util.HashSet<>();
        Set<String> pinnedBases = new java.util.HashSet<>(neededBases);
        try (Stream<Path> s = Files.list(images)) {
            for (Path d : s.filter(d -> !d.getFileName().toString().endsWith(".disks")).toList()) {
                if (!holdsOverlays(overlaysOf(d))) continue;
                pinnedImages.add(d);
                Path list = d.resolve(DiskBases.FILE);
                if (!Files.isRegularFile(list)) continue;
                try {
                    pinnedBases.addAll(DiskBases.copyNames(list));
                } catch (IOException | RuntimeException e) {
                    // One damaged list must not fail every fetch: its image stays, its copies become evictable.
                    log.warn("cache {}: {} cannot be read ({}): its image is kept for the overlays beside it, its bases' copies are not",
                            root, list, e.toString());
                }
            }
        }
        try (Stream<Path> s = Files.list(bases)) {
            for (Path p : s.filter(p -> !p.getFileName().toString().endsWith(USED) && !p.getFileName().toString().contains(".tmp-")).toList()) {
                long bytes = Files.size(p);
                total += bytes;
                Path used = p.resolveSibling(p.getFileName() + USED);
                FileTime at = Files.exists(used) ? Files.getLastModifiedTime(used) : FileTime.fromMillis(0);
                if (!pinnedBases.contains(p.getFileName().toString())) candidates.add(new Entry(p, bytes, at));
            }
        }
        try (Stream<Path> s = Files.list(images)) {
            // IMAGE.disks/ beside an image holds restored guests' disk overlays: theirs, not the cache's to evict
            for (Path d : s.filter(d -> !d.getFileName().toString().startsWith(".") && !d.getFileName().toString().endsWith(".disks")).toList()) {
                long bytes = FileTrees.size(d);
                total += bytes;
                if (!d.equals(keep) && !pinnedImages.contains(d)) candidates.add(new Entry(d, bytes, Files.getLastModifiedTime(d)));
            }
        }
        candidates.sort(Comparator.comparing(Entry::used));
        long evicted = 0;
        for (Entry e : candidates) {
            if (total + incoming <= maxBytes) break;
            FileTrees.deleteQuietly(e.path());
            Files.deleteIfExists(e.path().resolveSibling(e.path().getFileName() + USED));
            total -= e.bytes();
            evicted += e.bytes();
        }
        return evicted;
    }
}
