package dev.thaw.cli;

import dev.thaw.objectstore.ImageCache;
import dev.thaw.objectstore.ImageFetch;
import dev.thaw.objectstore.ObjectStore;
import dev.thaw.objectstore.S3Location;
import java.io.PrintStream;
import java.nio.file.Path;

/** A command's IMAGE argument: a directory, or {@code s3://BUCKET/PREFIX/NAME}, fetched into the standard cache first. */
final class ObjectStoreImages {
    private ObjectStoreImages() {}

    static Path localDirectory(String image, PrintStream status) {
        if (!S3Location.isS3(image)) return Path.of(image);
        S3Location.Image source = S3Location.parseImage(image);
        ImageCache cache = ImageCache.standard();
        try (ObjectStore store = new ObjectStore(ObjectStore.Settings.fromEnvironment(), source.location().bucket())) {
            ImageCache.Fetched f = cache.fetch(store, source);
            ImageFetch.Report r = f.report();
            status.printf("fetched %s into %s in %.2f s: %.1f MiB in %d objects (%.1f MB/s), %.1f MiB already cached%s%s%n", source,
                    f.directory(), r.seconds(), r.fetchedBytes() / 1048576.0, r.fetchedObjects(), r.fetchedBytes() / 1e6 / Math.max(r.seconds(), 1e-9),
                    r.reusedBytes() / 1048576.0, r.workingSetPackBytes() > 0 ? String.format("; working set's copy (%.1f MiB) by %.2f s",
                            r.workingSetPackBytes() / 1048576.0, r.workingSetSeconds()) : "",
                    f.evictedBytes() > 0 ? String.format("; %.1f MiB evicted", f.evictedBytes() / 1048576.0) : "");
            return f.directory();
        }
    }
}
