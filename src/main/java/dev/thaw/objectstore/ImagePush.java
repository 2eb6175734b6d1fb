package dev.thaw.objectstore;

import dev.thaw.image.CheckpointImage;
import dev.thaw.image.DiskBases;
import dev.thaw.image.DiskIdentity;
import dev.thaw.image.ImageException;
import dev.thaw.image.Manifest;
import dev.thaw.image.PortableImage;
import dev.thaw.image.Qcow2Chain;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * {@code thaw push IMAGE s3://BUCKET/PREFIX}: the image's files and packs, then its manifest last, so that a reader sees the
 * image whole or not at all. Packs are shared by every image under the prefix: one already there (same name, size and
 * footer checksum) is not uploaded again. Nothing is uploaded that does not match the checksums the manifest records. It
 * holds the prefix's {@link BucketLock} throughout, so that no gc deletes a pack it skipped before its manifest names it.
 */
public final class ImagePush {
    private ImagePush() {}

    /**
     * @param uploadedBytes bytes sent (the manifest included)
     * @param skippedBytes  bytes of objects already in the bucket with the same size and checksum
     */
    public record Report(String image, String imageId, int uploadedObjects, long uploadedBytes, int skippedObjects, long skippedBytes,
                         boolean manifestRewritten, double seconds) {}

    public static Report push(ObjectStore store, Path imageDirectory, S3Location destination, String name) {
        return push(store, imageDirectory, destination, name, dev.thaw.util.ThawPaths.cacheDir());
    }

    /** @param cacheDirectory where the disk bases' hashes are cached ({@link BaseHashes}) */
    static Report push(ObjectStore store, Path imageDirectory, S3Location destination, String name, Path cacheDirectory) {
        S3Location.Image target = new S3Location.Image(destination, name);
        long start = System.nanoTime();
        try (CheckpointImage image = CheckpointImage.open(imageDirectory);
             BucketLock lock = BucketLock.acquire(store, destination, BucketLock.Kind.PUSH)) {
            Manifest m = image.manifest();
            Counts counts = new Counts();
            // The bases first: the manifest uploaded records their list's SHA-256, which binds the list to it (and its MAC).
            DiskBases bases = m.disks().isEmpty() ? null : pushBases(store, destination, image, counts, cacheDirectory);
            PortableImage.Portable portable = PortableImage.portable(image, bases == null ? null : bases.sha256());
            PortableImage.Layout layout = PortableImage.layout(portable.manifest());
            // Files and packs several at a time: over a link with a round trip of milliseconds one PUT at a time waits more than
            // it sends. The manifest still goes last, once every one of them is there.
            List<Concurrently.Task> uploads = new ArrayList<>();
            for (PortableImage.Part f : layout.files()) {
                uploads.add(() -> upload(store, destination.key(S3Location.fileObject(m.imageId(), f.name())), image.directory().resolve(f.name()),
                        f, counts));
            }
            for (PortableImage.Part p : layout.packs()) {
                uploads.add(() -> upload(store, destination.key(S3Location.packObject(p.name())), image.storeDirectory().resolve(p.name()), p,
                        counts));
            }
            try {
                Concurrently.run(uploads, UPLOADS_IN_FLIGHT);
            } catch (IOException e) {
                throw new ObjectStoreException.Refused("push of " + imageDirectory + ": " + e.getMessage(), e);
            }
            if (bases != null) {
                byte[] list = bases.toJson();
                store.put(destination.key(S3Location.diskBasesObject(m.imageId())), list);
                counts.uploaded(list.length);
            }
            Optional<byte[]> mac = portable.mac();
            if (mac.isPresent()) {
                store.put(destination.key(S3Location.macObject(m.imageId(), portable.checksum())), mac.get());
                counts.uploaded(mac.get().length);
            }
            lock.confirm();
            // Last: until this object exists, the bucket has no image of this name (or still the previous one, whole).
            store.put(destination.key(target.manifestObject()), portable.file());
            counts.uploaded(portable.file().length);
            return new Report(target.toString(), m.imageId(), counts.uploadedObjects, counts.uploadedBytes, counts.skippedObjects,
                    counts.skippedBytes, portable.rewritten(), (System.nanoTime() - start) / 1e9);
        }
    }

    /**
     * Uploads every file of every disk's chain (the base, then each backing file QEMU opens below it) as an object named by
     * the SHA-256 of its bytes, unless one of that name and size is there already; each checked first against the identity the
     * image recorded (the base's, in the manifest; a referenced backing file's, in the disk references; a carried copy's, in
     * its list), and again after its upload, so that a file written meanwhile is refused, its object deleted. The list.
     */
    private static DiskBases pushBases(ObjectStore store, S3Location destination, CheckpointImage image, Counts counts, Path cacheDirectory) {
        List<String> backing = image.backingFileChanges();
        if (!backing.isEmpty()) {
            throw new ImageException.Corrupt(image.directory(), 0, String.join("; ", backing) + ": a push carries the disk state the save"
                    + " froze: put the backing files back as they were, or save the guest again");
        }
        List<Manifest.Disk> disks = image.manifest().disks();
        List<DiskBases.Disk> listed = new ArrayList<>();
        for (int i = 0; i < disks.size(); i++) {
            Manifest.Disk d = disks.get(i);
            Path base = image.diskBase(i);
            List<Path> chain;
            try {
                chain = image.carriedBases().isPresent() ? image.carriedBases().get().chainOf(image.directory(), i)
                        : d.format().equals("qcow2") ? Qcow2Chain.whole(base) : List.of(base);
            } catch (IOException e) {
                throw new ObjectStoreException.Unsupported("image " + image.directory() + ": disk " + d.node() + " (base " + base
                        + "): its backing chain cannot be carried: " + e.getMessage());
            }
            List<DiskBases.Layer> layers = new ArrayList<>();
            for (int l = 0; l < chain.size(); l++) {
                Path file = chain.get(l);
                String what = "disk " + d.node() + (l == 0 ? " base " : " backing layer " + l + " ") + file;
                String format;
                DiskIdentity identity;
                try {
                    identity = DiskIdentity.of(file);
                    format = l == 0 ? d.format() : Qcow2Chain.formatOf(file);
                } catch (IOException e) {
                    throw new ObjectStoreException.Refused("image " + image.directory() + ": " + what + " cannot be read: " + e.getMessage(), e);
                }
                int disk = i;
                int layer = l;
                // A local backing file that no reference names has no recorded identity: the base's header names it, its bytes go as they are.
                DiskIdentity recorded = l == 0 ? d.identity()
                        : image.carriedBases().map(b -> b.disks().get(disk).layers().get(layer).identity()).orElse(null);
                if (recorded != null && !recorded.differencesTo(identity).isEmpty()) {
                    throw new ImageException.Corrupt(file, 0, "image " + image.directory() + ": " + what + " changed since the save: "
                            + String.join("; ", recorded.differencesTo(identity)) + ". A push carries the disk state the save froze: put it back"
                            + " as it was, or save the guest again");
                }
                String sha = uploadBase(store, destination, file, identity, "image " + image.directory() + ": " + what, counts, cacheDirectory);
                layers.add(new DiskBases.Layer(format, identity, sha, null));
            }
            listed.add(new DiskBases.Disk(d.node(), List.copyOf(layers)));
        }
        return new DiskBases(List.copyOf(listed));
    }

    /**
     * One file of a chain as {@code bases/SHA256} (not sent when an object of that name and size is there), its identity
     * checked again after the upload: a file written meanwhile is refused and its object deleted. Its SHA-256: cached by its
     * identity once computed, so that a later push over the same base finds its object without reading the base
     * ({@link BaseHashes}); computed from the bytes whenever the object is not there.
     */
    private static String uploadBase(ObjectStore store, S3Location destination, Path file, DiskIdentity identity, String what, Counts counts,
                                     Path cacheDirectory) {
        Optional<String> cached = BaseHashes.cached(cacheDirectory, identity);
        if (cached.isPresent() && alreadyThere(store, destination, cached.get(), identity, counts)) return cached.get();
        String sha = sha256(file);
        BaseHashes.record(cacheDirectory, identity, sha);
        if (alreadyThere(store, destination, sha, identity, counts)) return sha;
        String key = destination.key(S3Location.baseObject(sha));
        store.put(key, file);
        try {
            List<String> changed = identity.differencesTo(DiskIdentity.of(file));
            if (!changed.isEmpty()) throw new IOException("changed while it was uploaded: " + String.join("; ", changed));
        } catch (IOException e) {
            store.delete(key);
            throw new ObjectStoreException.Refused(what + ": " + e.getMessage() + "; its object " + store.url(key) + " deleted", e);
        }
        counts.uploaded(identity.byteSize());
        return sha;
    }

    /** Whether the base's object {@code bases/SHA256} is there, of its size (then counted as skipped). */
    private static boolean alreadyThere(ObjectStore store, S3Location destination, String sha, DiskIdentity identity, Counts counts) {
        PortableImage.Part part = new PortableImage.Part(sha, identity.byteSize(), new PortableImage.Check.Sha256(sha));
        if (!alreadyThere(store, destination.key(S3Location.baseObject(sha)), part)) return false;
        counts.skipped(part.byteSize());
        return true;
    }

    /** SHA-256 of all of {@code file}'s bytes, hex. */
    private static String sha256(Path file) {
        try (InputStream in = Files.newInputStream(file)) {
            java.security.MessageDigest sha = java.security.MessageDigest.getInstance("SHA-256");
            byte[] buffer = new byte[1 << 20];
            for (int n; (n = in.read(buffer)) > 0; ) sha.update(buffer, 0, n);
            return java.util.HexFormat.of().formatHex(sha.digest());
        } catch (IOException e) {
            throw new ObjectStoreException.Refused("cannot read " + file + " to upload it: " + e, e);
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Objects uploaded at once: each a connection and a 1 MiB buffer; enough to fill a link whose round trip is 10 ms. */
    static final int UPLOADS_IN_FLIGHT = 4;

    /** What a push moved; several uploads count at once. */
    private static final class Counts {
        int uploadedObjects;
        long uploadedBytes;
        int skippedObjects;
        long skippedBytes;

        synchronized void uploaded(long bytes) {
            uploadedObjects++;
            uploadedBytes += bytes;
        }

        synchronized void skipped(long bytes) {
            skippedObjects++;
            skippedBytes += bytes;
        }
    }

    /** One file as one object unless there; its size. */
    private static long upload(ObjectStore store, String key, Path file, PortableImage.Part part, Counts counts) {
        if (alreadyThere(store, key, part)) {
            counts.skipped(part.byteSize());
            return part.byteSize();
        }
        check(file, part);
        store.put(key, file);
        counts.uploaded(part.byteSize());
        return part.byteSize();
    }

    /** The local file matches its manifest's record (read once; the upload reads it again, from the page cache). */
    private static void check(Path file, PortableImage.Part part) {
        PartCheck check = new PartCheck(part, file.toString());
        byte[] buffer = new byte[1 << 20];
        try (InputStream in = Files.newInputStream(file)) {
            for (int n; (n = in.read(buffer)) > 0; ) check.update(buffer, 0, n);
        } catch (IOException e) {
            throw new ObjectStoreException.Refused("cannot read " + file + " to upload it: " + e, e);
        }
        check.finish();
    }

    /**
     * An object of this key with the same size and, for a framed file, the same whole-file checksum in its footer (one
     * small range GET): the same immutable file, since packs and image files are named by random ids.
     */
    private static boolean alreadyThere(ObjectStore store, String key, PortableImage.Part part) {
        Optional<Long> size = store.size(key);
        if (size.isEmpty()) return false;
        if (size.get() != part.byteSize()) {
            throw new ObjectStoreException.Corrupt(store.url(key) + ": expected " + part.byteSize() + " bytes (the image's manifest), actual "
                    + size.get() + ": another file under this file's name; remove it to push this image", null);
        }
        if (!(part.check() instanceof PortableImage.Check.FileChecksum f)) return true;
        byte[] footer;
        try (InputStream in = store.getRange(key, part.byteSize() - 32, 32)) {
            footer = in.readNBytes(32);
        } catch (IOException e) {
            throw new ObjectStoreException.Unreachable("reading the footer of " + store.url(key) + ": " + e, e);
        }
        String actual = footer.length == 32 ? Long.toHexString(ByteBuffer.wrap(footer).order(ByteOrder.LITTLE_ENDIAN).getLong(16)) : "none";
        if (!actual.equals(f.hex())) {
            throw new ObjectStoreException.Corrupt(store.url(key) + ": footer checksum: expected " + f.hex() + " (the image's manifest),"
                    + " actual " + actual + ": another or damaged file under this file's name; remove it to push this image", null);
        }
        return true;
    }
}
