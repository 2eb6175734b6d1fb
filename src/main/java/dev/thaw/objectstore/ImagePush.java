package dev.thaw.objectstore;

import dev.thaw.image.CheckpointImage;
import dev.thaw.image.Manifest;
import dev.thaw.image.PortableImage;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;

/**
 * {@code thaw push IMAGE s3://BUCKET/PREFIX}: the image's files and packs, then its manifest last, so that a reader sees the
 * image whole or not at all. Packs are shared by every image under the prefix: one already there (same name, size and
 * footer checksum) is not uploaded again. Nothing is uploaded that does not match the checksums the manifest records.
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
        S3Location.Image target = new S3Location.Image(destination, name);
        long start = System.nanoTime();
        try (CheckpointImage image = CheckpointImage.open(imageDirectory)) {
            Manifest m = image.manifest();
            if (!m.disks().isEmpty()) {
                throw new ObjectStoreException.Unsupported("image " + image.directory() + " has disks " + m.disks().stream()
                        .map(Manifest.Disk::base).toList() + ": pushing disk bases is not built yet, expected an image without disks");
            }
            PortableImage.Portable portable = PortableImage.portable(image);
            PortableImage.Layout layout = PortableImage.layout(portable.manifest());
            Counts counts = new Counts();
            for (PortableImage.Part f : layout.files()) {
                upload(store, destination.key(S3Location.fileObject(m.imageId(), f.name())), image.directory().resolve(f.name()), f, counts);
            }
            for (PortableImage.Part p : layout.packs()) {
                upload(store, destination.key(S3Location.packObject(p.name())), image.storeDirectory().resolve(p.name()), p, counts);
            }
            Optional<byte[]> mac = portable.mac();
            if (mac.isPresent()) {
                store.put(destination.key(S3Location.macObject(m.imageId(), portable.checksum())), mac.get());
                counts.uploaded(mac.get().length);
            }
            // Last: until this object exists, the bucket has no image of this name (or still the previous one, whole).
            store.put(destination.key(target.manifestObject()), portable.file());
            counts.uploaded(portable.file().length);
            return new Report(target.toString(), m.imageId(), counts.uploadedObjects, counts.uploadedBytes, counts.skippedObjects,
                    counts.skippedBytes, portable.rewritten(), (System.nanoTime() - start) / 1e9);
        }
    }

    private static final class Counts {
        int uploadedObjects;
        long uploadedBytes;
        int skippedObjects;
        long skippedBytes;

        void uploaded(long bytes) {
            uploadedObjects++;
            uploadedBytes += bytes;
        }
    }

    private static void upload(ObjectStore store, String key, Path file, PortableImage.Part part, Counts counts) {
        if (alreadyThere(store, key, part)) {
            counts.skippedObjects++;
            counts.skippedBytes += part.byteSize();
            return;
        }
        check(file, part);
        store.put(key, file);
        counts.uploaded(part.byteSize());
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
