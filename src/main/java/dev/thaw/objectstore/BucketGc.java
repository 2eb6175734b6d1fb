package dev.thaw.objectstore;

import dev.thaw.image.DiskBases;
import dev.thaw.image.Manifest;
import dev.thaw.image.PortableImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * {@code thaw gc s3://BUCKET/PREFIX}: deletes the objects under a prefix that no image's manifest names. Mark and sweep, as
 * the local store's gc: every {@code PREFIX/NAME.thaw} is read and checked, and what it names is kept (its files, the MAC of
 * its version, its packs, its list of disk bases and every base that list names); every other object of Thaw's shapes under
 * {@code files/}, {@code packs/} and {@code bases/} is deleted. Objects of any other shape are never touched (another prefix
 * nested under this one, anything of the user's), but one of Thaw's directories holding an object of a shape Thaw does not
 * write stops the gc before it deletes anything: the prefix is not one this gc understands.
 *
 * <p>It runs under the prefix's {@link BucketLock} (no push meanwhile: a push skips packs already there, which this gc could
 * delete before the push's manifest names them). A manifest that cannot be read stops it too, deleting nothing: without it,
 * what that image uses is unknown ({@code thaw rm} removes such a name). A restore reading an image that was removed or
 * replaced in the bucket may fail once its objects are gone; an image in the bucket is never affected.
 */
public final class BucketGc {
    private BucketGc() {}

    private static final Pattern UUID_TEXT = Pattern.compile("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}");
    private static final Pattern PACK = Pattern.compile("packs/pack-[0-9a-f-]{36}\\.thaw");
    private static final Pattern BASE = Pattern.compile("bases/[0-9a-f]{64}");
    private static final Pattern MANIFEST = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,127}\\.thaw");

    /** One image the gc found: its name under the prefix and id. */
    public record Image(String name, String imageId) {}

    /**
     * @param keptObjectCount      objects an image names (manifests included)
     * @param deletedObjects       deleted, or with {@code dryRun} to be deleted, relative to the prefix
     * @param missingObjects       objects an image names that the bucket does not hold (a damaged image; nothing deleted them)
     * @param otherObjectCount     objects of no shape of Thaw's, left alone
     * @param staleLockCount       locks of processes that died, deleted
     */
    public record Report(String location, List<Image> images, int keptObjectCount, long keptByteSize, List<String> deletedObjects,
                         long freedByteSize, List<String> missingObjects, int otherObjectCount, int staleLockCount, boolean dryRun,
                         double seconds) {}

    public static Report collect(ObjectStore store, S3Location location, boolean dryRun) {
        return collect(store, location, dryRun, BucketLock.STALE_AFTER, BucketLock.REFRESH);
    }

    static Report collect(ObjectStore store, S3Location location, boolean dryRun, Duration staleAfter, Duration refresh) {
        long start = System.nanoTime();
        try (BucketLock lock = BucketLock.acquire(store, location, BucketLock.Kind.GC, staleAfter, refresh)) {
            Instant now = lock.lastModified();
            // Stale locks go first, before anything is swept: a push whose lock went stale then finds it gone (BucketLock.confirm).
            List<ObjectStore.Listed> stale = BucketLock.stale(store, location, now, staleAfter);
            if (!dryRun) store.deleteAll(stale.stream().map(ObjectStore.Listed::key).toList());
            String root = location.key("");
            List<ObjectStore.Listed> listing = store.list(root);
            Set<String> stored = new HashSet<>();
            List<String> manifests = new ArrayList<>();
            int other = 0;
            for (ObjectStore.Listed o : listing) {
                String relative = o.key().substring(root.length());
                switch (shapeOf(relative)) {
                    case MANIFEST -> manifests.add(relative);
                    case STORED -> stored.add(o.key());
                    case LOCK, FOLDER -> {}
                    case OTHER -> other++;
                    case INVALID, UNEXPECTED -> throw new ObjectStoreException.Refused(location + ": " + store.url(o.key()) + ": expected under "
                            + relative.substring(0, relative.indexOf('/') + 1) + " only what a push writes (" + expectedShape(relative)
                            + "), actual another name: not a prefix this gc understands (another prefix nested in it?); nothing deleted", null);
                }
            }

            Set<String> kept = new HashSet<>();
            List<Image> images = new ArrayList<>();
            Path scratch = Files.createTempDirectory("thaw-gc-");
            try {
                for (String manifest : manifests) {
                    String name = manifest.substring(0, manifest.length() - ".thaw".length());
                    mark(store, new S3Location.Image(location, name), scratch, kept).ifPresent(image -> {
                        images.add(image);
                        kept.add(manifest);
                    });
                }
            } finally {
                dev.thaw.util.FileTrees.deleteQuietly(scratch);
            }

            Set<String> present = new HashSet<>();
            List<String> deleted = new ArrayList<>();
            List<String> deletedKeys = new ArrayList<>();
            long freed = 0;
            long keptBytes = 0;
            for (ObjectStore.Listed o : listing) {
                String relative = o.key().substring(root.length());
                present.add(relative);
                if (kept.contains(relative)) {
                    keptBytes += o.byteSize();
                } else if (stored.contains(o.key())) {
                    deleted.add(relative);
                    deletedKeys.add(o.key());
                    freed += o.byteSize();
                }
            }
            List<String> missing = kept.stream().filter(k -> !present.contains(k) && !isMac(k)).sorted().toList();
            if (!dryRun) store.deleteAll(deletedKeys);
            int keptCount = (int) kept.stream().filter(present::contains).count();
            return new Report(location.toString(), List.copyOf(images), keptCount, keptBytes, List.copyOf(deleted), freed, missing, other,
                    stale.size(), dryRun, (System.nanoTime() - start) / 1e9);
        } catch (IOException e) {
            throw new ObjectStoreException.Refused("gc of " + location + ": cannot use a temporary directory: " + e, e);
        }
    }

    /** What {@code thaw rm s3://BUCKET/PREFIX/NAME} removed: the name, and the id of the image it named. */
    public record Removed(String image, String imageId) {}

    /**
     * Removes an image's name from the bucket: its manifest object, nothing else. Its other objects go at the next gc of the
     * prefix unless another image uses them. A manifest that cannot be read is removed all the same (that is how a damaged
     * name that stops the gc goes), its id then empty.
     */
    public static Removed removeImage(ObjectStore store, S3Location.Image image) {
        String key = image.location().key(image.manifestObject());
        String imageId = "";
        Path scratch = null;
        try {
            scratch = Files.createTempDirectory("thaw-rm-");
            imageId = ImageFetch.fetchManifest(store, image, scratch).manifest().imageId();
        } catch (ObjectStoreException.Corrupt e) {
            // removed below, unread
        } catch (IOException e) {
            throw new ObjectStoreException.Refused("rm " + image + ": cannot use a temporary directory: " + e, e);
        } finally {
            if (scratch != null) dev.thaw.util.FileTrees.deleteQuietly(scratch);
        }
        store.delete(key);
        return new Removed(image.toString(), imageId);
    }

    /** Reads one image's manifest (and its list of disk bases) and adds what it names to {@code kept}. */
    private static java.util.Optional<Image> mark(ObjectStore store, S3Location.Image image, Path scratch, Set<String> kept)
            throws IOException {
        Path directory = Files.createDirectory(scratch.resolve(image.name()));
        ImageFetch.Fetched fetched;
        try {
            fetched = ImageFetch.fetchManifest(store, image, directory);
        } catch (ObjectStoreException.NotFound e) {
            if (e.getMessage().startsWith("bucket ")) throw e;
            return java.util.Optional.empty(); // removed since the listing (thaw rm): what it named is no longer kept for it
        } catch (ObjectStoreException.Corrupt e) {
            throw new ObjectStoreException.Corrupt(e.getMessage() + "; gc deleted nothing: what the image " + image.name() + " uses is"
                    + " unknown (thaw rm " + image + " removes the name)", e);
        }
        Manifest m = fetched.manifest();
        PortableImage.Layout layout = PortableImage.layout(m);
        for (PortableImage.Part f : layout.files()) kept.add(S3Location.fileObject(m.imageId(), f.name()));
        for (PortableImage.Part p : layout.packs()) kept.add(S3Location.packObject(p.name()));
        // The MAC of this version, where the image has one (a MAC object is optional: not listed as missing without it).
        kept.add(S3Location.macObject(m.imageId(), fetched.checksum()));
        if (!m.disks().isEmpty()) {
            kept.add(S3Location.diskBasesObject(m.imageId()));
            DiskBases listed = ImageFetch.fetchDiskBasesList(store, image.location(), m);
            for (DiskBases.Disk d : listed.disks()) for (DiskBases.Layer l : d.layers()) kept.add(S3Location.baseObject(l.sha256()));
        }
        return java.util.Optional.of(new Image(image.name(), m.imageId()));
    }

    private static boolean isMac(String relative) {
        return relative.startsWith("files/") && relative.endsWith(".mac");
    }

    enum Shape { INVALID, MANIFEST, STORED, LOCK, FOLDER, OTHER, UNEXPECTED }

    /** What an object under the prefix is, by its key relative to the prefix. */
    static Shape shapeOf(String relative) {
        // A "directory" (a key ending in a slash: a console's folder marker, or what a filesystem-backed service lists).
        if (relative.isEmpty() || relative.endsWith("/")) return Shape.FOLDER;
        int slash = relative.indexOf('/');
        if (slash < 0) return MANIFEST.matcher(relative).matches() ? Shape.MANIFEST : Shape.OTHER;
        return switch (relative.substring(0, slash + 1)) {
            case "packs/" -> PACK.matcher(relative).matches() ? Shape.STORED : Shape.UNEXPECTED;
            case "bases/" -> BASE.matcher(relative).matches() ? Shape.STORED : Shape.UNEXPECTED;
            case "files/" -> {
                String[] parts = relative.split("/", 3);
                yield parts.length == 3 && UUID_TEXT.matcher(parts[1]).matches() && !parts[2].isEmpty() ? Shape.STORED : Shape.UNEXPECTED;
            }
            case BucketLock.DIRECTORY -> BucketLock.isLock(relative) ? Shape.LOCK : Shape.UNEXPECTED;
            default -> Shape.OTHER;
        };
    }

    private static String expectedShape(String relative) {
        if (relative.startsWith("packs/")) return "packs/pack-UUID.thaw";
        if (relative.startsWith("bases/")) return "bases/SHA256";
        if (relative.startsWith(BucketLock.DIRECTORY)) return "locks/push-UUID.json or locks/gc-UUID.json";
        return "files/IMAGE-ID/NAME";
    }
}
