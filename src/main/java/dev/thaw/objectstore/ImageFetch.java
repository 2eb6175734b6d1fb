package dev.thaw.objectstore;

import dev.thaw.image.CheckpointImage;
import dev.thaw.image.DiskBases;
import dev.thaw.image.DiskIdentity;
import dev.thaw.image.ImageException;
import dev.thaw.image.Manifest;
import dev.thaw.image.PortableImage;
import dev.thaw.util.OwnerOnly;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.Set;
import java.util.UUID;
import java.util.function.Predicate;

/**
 * Fetches an image from object storage into a local directory: its manifest (checked: frame, checksum, fields), its files,
 * then its packs, the working set's queue-order copy first, each in large sequential range GETs, every byte checked
 * against the manifest's checksums as it arrives; a file lands under a temporary name and is renamed once whole and
 * checked. {@code thaw pull} then opens and verifies the image (every extent, every page's SHA-256) before renaming it
 * into place; a restore's cache ({@link ImageCache}) opens it as any restore does.
 */
public final class ImageFetch {
    /** One range GET's size: large and sequential, so that the working set's copy streams. */
    public static final long RANGE_BYTES = 8L << 20;

    private ImageFetch() {}

    /**
     * @param fetchedBytes         bytes fetched (manifest included)
     * @param reusedBytes          bytes of packs found already fetched (a restore's cache)
     * @param workingSetPackBytes  the working set's copy (0 without a working-set section)
     * @param workingSetSeconds    from the start until that copy was fetched and checked
     * @param fetchedPacks         the packs fetched, in the order they were
     * @param diskBaseBytes        of {@code fetchedBytes}, the disk bases' files
     */
    public record Report(String image, String imageId, Path directory, int fetchedObjects, long fetchedBytes, long reusedBytes,
                         long workingSetPackBytes, double workingSetSeconds, double seconds, java.util.List<String> fetchedPacks,
                         long diskBaseBytes) {}

    /** {@code thaw pull}: into {@code parent/NAME}, which must not exist; every checksum verified before it appears. */
    public static Report pull(ObjectStore store, S3Location.Image source, Path parent) {
        long start = System.nanoTime();
        Path target = parent.toAbsolutePath().normalize().resolve(source.name());
        if (Files.exists(target)) throw new IllegalArgumentException(target + ": expected no file of that name, actual one exists");
        Path temp = parent.toAbsolutePath().normalize().resolve("." + source.name() + ".partial-" + ProcessHandle.current().pid() + "-"
                + UUID.randomUUID().toString().substring(0, 8));
        try {
            OwnerOnly.createDirectories(temp.resolve(PortableImage.STORE));
            Fetched manifest = fetchManifest(store, source, temp);
            Progress p = fetchParts(store, source.location(), manifest.manifest(), temp, temp.resolve(PortableImage.STORE), n -> false, start, true);
            long baseBytes = 0;
            if (!manifest.manifest().disks().isEmpty()) {
                DiskBases listed = fetchDiskBasesList(store, source.location(), manifest.manifest());
                Bases b = fetchBases(store, source.location(), listed, temp.resolve(DiskBases.DIRECTORY));
                writeOwnerOnly(temp.resolve(DiskBases.FILE), b.carried().toJson());
                p.objects += b.objects() + 1;
                p.bytes += b.bytes();
                baseBytes = b.bytes();
            }
            try (CheckpointImage image = CheckpointImage.open(temp)) {
                image.verify();
            } catch (ImageException e) {
                throw new ObjectStoreException.Corrupt(source + ": " + e.getMessage(), e);
            }
            Files.move(temp, target, StandardCopyOption.ATOMIC_MOVE);
            return new Report(source.toString(), manifest.manifest().imageId(), target, p.objects + 1, p.bytes + manifest.bytes(), 0,
                    p.workingSetBytes, p.workingSetSeconds, (System.nanoTime() - start) / 1e9, p.fetchedPacks, baseBytes);
        } catch (IOException e) {
            throw new ObjectStoreException.Refused("cannot write " + temp + ": " + e, e);
        } finally {
            dev.thaw.util.FileTrees.deleteQuietly(temp);
        }
    }

    /** The most a manifest object may hold (a 4 GiB image's is a few MiB): the bucket is not trusted to say. */
    static final long MAX_MANIFEST_BYTES = 256L << 20;
    /** The most an {@code image.mac} object may hold: one hex MAC and a newline. */
    static final long MAX_MAC_BYTES = 4096;

    /** The manifest fetched into {@code directory}, checked, and its bytes. */
    record Fetched(Manifest manifest, String checksum, long bytes) {}

    static Fetched fetchManifest(ObjectStore store, S3Location.Image source, Path directory) throws IOException {
        String key = source.location().key(source.manifestObject());
        byte[] bytes;
        try {
            bytes = store.get(key, MAX_MANIFEST_BYTES);
        } catch (ObjectStoreException.NotFound e) {
            if (e.getMessage().startsWith("bucket ")) throw e;
            throw new ObjectStoreException.NotFound("no image " + source.name() + " under " + source.location() + ": expected the object "
                    + store.url(key) + ", actual none", e);
        }
        Path file = directory.resolve(PortableImage.MANIFEST);
        writeOwnerOnly(file, bytes);
        try {
            Manifest m = PortableImage.readManifest(file);
            return new Fetched(m, PortableImage.fileChecksum(bytes), bytes.length);
        } catch (ImageException e) {
            throw new ObjectStoreException.Corrupt(store.url(key) + ": " + e.getMessage(), e);
        }
    }

    /** The most an image's list of disk bases may hold (a few hundred bytes a file). */
    static final long MAX_DISK_BASES_BYTES = 1L << 20;

    /**
     * The image's list of disk bases in the bucket, checked against its manifest: the SHA-256 the manifest records (which its
     * MAC covers), disks, nodes, the bases' identities.
     */
    static DiskBases fetchDiskBasesList(ObjectStore store, S3Location location, Manifest m) {
        String key = location.key(S3Location.diskBasesObject(m.imageId()));
        byte[] json;
        try {
            json = store.get(key, MAX_DISK_BASES_BYTES);
        } catch (ObjectStoreException.NotFound e) {
            if (e.getMessage().startsWith("bucket ")) throw e;
            throw new ObjectStoreException.NotFound("the image has disks " + m.disks().stream().map(Manifest.Disk::node).toList()
                    + ": expected the list of their bases " + store.url(key) + ", actual none", e);
        }
        try {
            return DiskBases.parse(json, m, Path.of(DiskBases.FILE), false);
        } catch (ImageException e) {
            throw new ObjectStoreException.Corrupt(store.url(key) + ": " + e.getMessage(), e);
        }
    }

    /**
     * The list with each file's copy (relative to the image directory), the objects and bytes fetched.
     */
    record Bases(DiskBases carried, int objects, long bytes, long reusedBytes) {}

    /**
     * Every file of the list's chains into {@code directory} (named by {@link DiskBases#copyName}; one already there with the
     * recorded identity is kept), each checked as it arrives against its SHA-256 and then its identity; the image's
     * {@value DiskBases#FILE} names them in its {@value DiskBases#DIRECTORY} directory, which is {@code directory} or links to it.
     */
    static Bases fetchBases(ObjectStore store, S3Location location, DiskBases listed, Path directory) throws IOException {
        OwnerOnly.createDirectories(directory);
        List<DiskBases.Disk> disks = new java.util.ArrayList<>();
        java.util.Set<String> done = new java.util.HashSet<>();
        int objects = 0;
        long bytes = 0;
        long reused = 0;
        for (DiskBases.Disk d : listed.disks()) {
            List<DiskBases.Layer> layers = new java.util.ArrayList<>();
            for (DiskBases.Layer layer : d.layers()) {
                String name = DiskBases.copyName(layer);
                Path copy = directory.resolve(name);
                if (done.add(name)) {
                    if (hasIdentity(copy, layer.identity())) {
                        reused += layer.identity().byteSize();
                    } else {
                        String key = location.key(S3Location.baseObject(layer.sha256()));
                        java.nio.file.attribute.FileTime time = java.nio.file.attribute.FileTime.from(java.time.Instant.parse(layer.identity().modifiedAt()));
                        fetch(store, key, new PortableImage.Part(layer.sha256(), layer.identity().byteSize(), new PortableImage.Check.Sha256(layer.sha256())),
                                copy, "the image's list of disk bases", temp -> Files.setLastModifiedTime(temp, time));
                        DiskIdentity now = DiskIdentity.of(copy);
                        if (!layer.identity().differencesTo(now).isEmpty()) {
                            Files.deleteIfExists(copy);
                            throw new ObjectStoreException.Corrupt(store.url(key) + " (disk " + d.node() + "): its copy's identity: "
                                    + String.join("; ", layer.identity().differencesTo(now)) + " (expected: the image's)", null);
                        }
                        objects++;
                        bytes += layer.identity().byteSize();
                    }
                }
                layers.add(layer.withFile(DiskBases.DIRECTORY + "/" + name));
            }
            disks.add(new DiskBases.Disk(d.node(), List.copyOf(layers)));
        }
        return new Bases(new DiskBases(List.copyOf(disks)), objects, bytes, reused);
    }

    /** Whether {@code copy} is there with the identity a layer recorded (a copy damaged since is fetched anew). */
    private static boolean hasIdentity(Path copy, DiskIdentity identity) throws IOException {
        if (!Files.isRegularFile(copy, java.nio.file.LinkOption.NOFOLLOW_LINKS)) return false;
        if (identity.differencesTo(DiskIdentity.of(copy)).isEmpty()) return true;
        Files.delete(copy);
        return false;
    }

    static final class Progress {
        int objects;
        long bytes;
        long reusedBytes;
        long workingSetBytes;
        double workingSetSeconds;
        final java.util.List<String> fetchedPacks = new java.util.ArrayList<>();
    }

    /**
     * The image's files into {@code imageDirectory} and its packs into {@code packDirectory} (those {@code have} says are
     * there already are skipped), the working set's pack first; also its MAC, if the bucket has one for this manifest.
     */
    static Progress fetchParts(ObjectStore store, S3Location location, Manifest m, Path imageDirectory, Path packDirectory,
                               Predicate<String> have, long startNanos, boolean files) throws IOException {
        PortableImage.Layout layout = PortableImage.layout(m);
        Progress progress = new Progress();
        if (files) {
            // The files at once (small, independent): one round trip for all of them rather than one each.
            List<Concurrently.Task> gets = new java.util.ArrayList<>();
            for (PortableImage.Part f : layout.files()) {
                gets.add(() -> {
                    fetch(store, location.key(S3Location.fileObject(m.imageId(), f.name())), f, imageDirectory.resolve(f.name()));
                    return f.byteSize();
                });
            }
            for (long n : Concurrently.run(gets)) {
                progress.objects++;
                progress.bytes += n;
            }
            fetchMac(store, location, m, imageDirectory).ifPresent(n -> {
                progress.objects++;
                progress.bytes += n;
            });
        }
        boolean hasWorkingSet = m.files().stream().anyMatch(f -> f.kind().equals("working_set"));
        boolean first = true;
        for (PortableImage.Part p : layout.packs()) {
            if (have.test(p.name())) {
                progress.reusedBytes += p.byteSize();
            } else {
                fetch(store, location.key(S3Location.packObject(p.name())), p, packDirectory.resolve(p.name()));
                progress.objects++;
                progress.bytes += p.byteSize();
                progress.fetchedPacks.add(p.name());
            }
            if (first && hasWorkingSet) {
                progress.workingSetBytes = p.byteSize();
                progress.workingSetSeconds = (System.nanoTime() - startNanos) / 1e9;
            }
            first = false;
        }
        return progress;
    }

    /** {@code image.mac} for this manifest version, if one was pushed; its size. */
    private static java.util.Optional<Long> fetchMac(ObjectStore store, S3Location location, Manifest m, Path imageDirectory)
            throws IOException {
        byte[] manifestFile = Files.readAllBytes(imageDirectory.resolve(PortableImage.MANIFEST));
        String checksum = PortableImage.fileChecksum(manifestFile);
        String key = location.key(S3Location.macObject(m.imageId(), checksum));
        java.util.Optional<byte[]> found = store.getIfExists(key, MAX_MAC_BYTES);
        if (found.isEmpty()) return java.util.Optional.empty();
        byte[] mac = found.get();
        writeOwnerOnly(imageDirectory.resolve(PortableImage.MAC), mac);
        return java.util.Optional.of((long) mac.length);
    }

    /** One object into {@code target} by range GETs, checked as it arrives, renamed into place once whole. */
    static void fetch(ObjectStore store, String key, PortableImage.Part part, Path target) throws IOException {
        fetch(store, key, part, target, "manifest", temp -> {});
    }

    /** What is done to a fetched file once whole and checked, before it is renamed into place. */
    interface BeforeRename {
        void accept(Path temp) throws IOException;
    }

    /**
     * {@link #fetch}, with {@code beforeRename} applied to the whole, checked file under its temporary name; {@code recordedIn}
     * names what recorded its size and checksum, for the errors.
     */
    static void fetch(ObjectStore store, String key, PortableImage.Part part, Path target, String recordedIn, BeforeRename beforeRename)
            throws IOException {
        fetch(store, key, part, target, recordedIn, beforeRename, RANGES_IN_FLIGHT);
    }

    /** {@link #fetch(ObjectStore, String, PortableImage.Part, Path, String, BeforeRename)} with at most {@code rangesInFlight} GETs at once. */
    static void fetch(ObjectStore store, String key, PortableImage.Part part, Path target, String recordedIn, BeforeRename beforeRename,
                      int rangesInFlight) throws IOException {
        OwnerOnly.createDirectories(target.getParent());
        Path temp = target.resolveSibling(target.getFileName() + ".tmp-" + UUID.randomUUID().toString().substring(0, 8));
        PartCheck check = new PartCheck(part, store.url(key), recordedIn);
        byte[] buffer = new byte[1 << 20];
        try (FileChannel out = FileChannel.open(temp, Set.of(StandardOpenOption.CREATE_NEW, StandardOpenOption.READ, StandardOpenOption.WRITE),
                OwnerOnly.FILE)) {
            if (part.byteSize() == 0) {
                check.update(buffer, 0, 0);
            } else if (part.byteSize() <= RANGE_BYTES) {
                fetchRange(store, key, part, 0, part.byteSize(), out, buffer, check); // one range: checked as it arrives
            } else {
                fetchRanges(store, key, part, out, check, Math.max(1, rangesInFlight));
            }
            check.finish();
            out.force(true);
            beforeRename.accept(temp);
            Files.move(temp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } finally {
            Files.deleteIfExists(temp);
        }
    }

    /**
     * How many range GETs of one object are in flight at once: one connection's GETs, one after another, leave it idle for a
     * round trip between ranges and stay under what one TCP stream carries over a long round trip. {@code
     * -Dthaw.rangesInFlight=1}: one GET at a time, for comparison.
     */
    static final int RANGES_IN_FLIGHT = Integer.getInteger("thaw.rangesInFlight", 4);

    /**
     * An object larger than one range: {@code inFlight} range GETs at once, each written at its own offset, and the
     * checksum run over the ranges in order as each is whole (read back from the page cache), so that it overlaps the later
     * GETs. At most that many ranges are ahead of the checksum.
     */
    private static void fetchRanges(ObjectStore store, String key, PortableImage.Part part, FileChannel out, PartCheck check, int inFlight)
            throws IOException {
        long rangeCount = (part.byteSize() + RANGE_BYTES - 1) / RANGE_BYTES;
        byte[] checkBuffer = new byte[1 << 20];
        java.util.ArrayDeque<java.util.concurrent.Future<Long>> window = new java.util.ArrayDeque<>();
        try (java.util.concurrent.ExecutorService pool = java.util.concurrent.Executors.newVirtualThreadPerTaskExecutor()) {
            java.util.function.LongConsumer submit = r -> {
                long at = r * RANGE_BYTES;
                long length = Math.min(RANGE_BYTES, part.byteSize() - at);
                window.add(pool.submit(() -> fetchRange(store, key, part, at, length, out, new byte[1 << 20], null)));
            };
            try {
                long next = 0;
                for (; next < rangeCount && next < inFlight; next++) submit.accept(next);
                for (long r = 0; r < rangeCount; r++) {
                    long got = Concurrently.await(window.poll()); // ranges end out of order: each checked once in, in order
                    if (next < rangeCount) submit.accept(next++); // range r is in: the next GET goes beside its check
                    checkRange(out, r * RANGE_BYTES, got, check, checkBuffer);
                }
            } finally {
                // a failure: the ranges still in flight are abandoned (each bounded by the store's timeouts) before the file goes
                for (java.util.concurrent.Future<Long> f : window) f.cancel(true);
                pool.shutdownNow();
            }
        }
    }

    /**
     * Bytes {@code [at, at + length)} of the object by one range GET, written at {@code at} and fed to {@code inOrder} as they
     * arrive when it is given (the range is the next the checksum needs); its length, or Corrupt if short or long.
     */
    private static long fetchRange(ObjectStore store, String key, PortableImage.Part part, long at, long length, FileChannel out, byte[] buffer,
                                   PartCheck inOrder) throws IOException {
        long got = 0;
        try (InputStream in = store.getRange(key, at, length)) {
            for (int n; got < length && (n = in.read(buffer, 0, (int) Math.min(buffer.length, length - got))) > 0; ) {
                if (inOrder != null) inOrder.update(buffer, 0, n);
                ByteBuffer b = ByteBuffer.wrap(buffer, 0, n);
                while (b.hasRemaining()) got += out.write(b, at + got);
            }
            if (got == length && in.read() >= 0) got++; // longer than asked: the range's answer is not what was asked
        }
        if (got > length) {
            throw new ObjectStoreException.Corrupt(store.url(key) + ": bytes " + at + "-" + (at + length - 1) + ": expected " + length
                    + " bytes, actual more (the service did not answer the range asked for)", null);
        }
        if (got < length) {
            throw new ObjectStoreException.Corrupt(store.url(key) + ": bytes " + at + "-" + (at + length - 1) + ": expected " + length
                    + " bytes, actual " + got + " (the object is shorter than the manifest's " + part.byteSize() + ")", null);
        }
        return got;
    }

    /** Runs the checksum over bytes {@code [at, at + length)} of the file just written. */
    private static void checkRange(FileChannel file, long at, long length, PartCheck check, byte[] buffer) throws IOException {
        for (long done = 0; done < length; ) {
            ByteBuffer b = ByteBuffer.wrap(buffer, 0, (int) Math.min(buffer.length, length - done));
            int n = file.read(b, at + done);
            if (n < 0) throw new IOException(file + ": expected " + length + " bytes from " + at + ", actual end of file at " + (at + done));
            check.update(buffer, 0, n);
            done += n;
        }
    }

    static void writeOwnerOnly(Path file, byte[] bytes) throws IOException {
        try (FileChannel out = FileChannel.open(file, Set.of(StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE), OwnerOnly.FILE)) {
            ByteBuffer b = ByteBuffer.wrap(bytes);
            while (b.hasRemaining()) out.write(b);
            out.force(true);
        }
    }
}
