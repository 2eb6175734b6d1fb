package dev.thaw.cli;

import dev.thaw.image.PackBytes;
import dev.thaw.objectstore.ImageCache;
import dev.thaw.objectstore.ImageFetch;
import dev.thaw.objectstore.ObjectStore;
import dev.thaw.objectstore.S3Location;
import java.io.PrintStream;
import java.nio.file.Path;

/**
 * A command's IMAGE argument: a directory, or {@code s3://BUCKET/PREFIX/NAME}, opened in the standard cache with its files
 * fetched and its packs arriving while the restore reads them (the working set's copy first in the background, demand
 * reads in small range GETs).
 */
final class ObjectStoreImages {
    private ObjectStoreImages() {}

    /** Where the image is and how its pack bytes come; closing it ends a background fetch and releases the cache. */
    record Source(Path directory, PackBytes packBytes, ImageCache.Opened opened, ObjectStore store) implements AutoCloseable {
        /** The image, opened (for one in the cache, the cache's lock goes once it is open and its packs whole). */
        dev.thaw.image.CheckpointImage openImage() {
            return opened != null ? opened.openImage() : dev.thaw.image.CheckpointImage.open(directory, packBytes);
        }

        @Override
        public void close() {
            if (opened != null) opened.close();
            if (store != null) store.close();
        }
    }

    static Source open(String image, PrintStream status) {
        if (!S3Location.isS3(image)) return new Source(Path.of(image), PackBytes.LOCAL, null, null);
        S3Location.Image source = S3Location.parseImage(image);
        long start = System.nanoTime();
        ObjectStore store = new ObjectStore(ObjectStore.Settings.fromEnvironment(), source.location().bucket());
        try {
            double client = (System.nanoTime() - start) / 1e9;
            ImageCache.Opened o = ImageCache.standard().open(store, source, true);
            ImageFetch.Report r = o.report();
            long arriving = o.lazyPacks() == null ? 0 : o.lazyPacks().byteSize();
            status.printf("opened %s in %s in %.2f s: its files (%.1f MiB)%s fetched, %.1f MiB cached already, %.1f MiB of packs arriving"
                            + " (the working set's copy first; what the restore reads sooner, in small range GETs)%s; client %.3f s, %s, %d GETs,"
                            + " %d HEADs%n", source, o.directory(),
                    r.seconds(), (r.fetchedBytes() - r.diskBaseBytes()) / 1048576.0, r.diskBaseBytes() > 0
                            ? String.format(" and disk bases (%.1f MiB)", r.diskBaseBytes() / 1048576.0) : "", r.reusedBytes() / 1048576.0, arriving / 1048576.0,
                    o.evictedBytes() > 0 ? String.format("; %.1f MiB evicted", o.evictedBytes() / 1048576.0) : "", client, o.phases().describe(),
                    store.requests().gets(), store.requests().heads());
            return new Source(o.directory(), o.packBytes(), o, store);
        } catch (RuntimeException e) {
            store.close();
            throw e;
        }
    }
}
