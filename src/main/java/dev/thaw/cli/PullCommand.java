package dev.thaw.cli;

import dev.thaw.objectstore.ImageFetch;
import dev.thaw.objectstore.ObjectStore;
import dev.thaw.objectstore.S3Location;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "pull", mixinStandardHelpOptions = true,
        description = {"Download an image from S3 or any S3-compatible object store.",
                "Fetches s3://BUCKET/PREFIX/NAME into DIR/NAME (with its own store): every file and pack in range GETs, each",
                "checked against the manifest's checksums as it arrives; then the whole image is verified (every extent,",
                "every page's SHA-256) before DIR/NAME appears. Endpoint, region and credentials as for thaw push."})
final class PullCommand implements Callable<Integer> {
    @Parameters(index = "0", description = "The image: s3://BUCKET/PREFIX/NAME.")
    String source;

    @Parameters(index = "1", description = "The directory to put it in (as DIR/NAME).")
    Path directory;

    @Option(names = "--json", description = "Print the report as JSON.")
    boolean json;

    @Override
    public Integer call() {
        S3Location.Image from = S3Location.parseImage(source);
        try (ObjectStore store = new ObjectStore(ObjectStore.Settings.fromEnvironment(), from.location().bucket())) {
            ImageFetch.Report r = ImageFetch.pull(store, from, directory);
            if (json) {
                System.out.println(Json.write(r));
                return 0;
            }
            System.out.printf("pulled %s into %s in %.2f s: %d objects, %.1f MiB (%.1f MB/s), every checksum verified%n", r.image(),
                    r.directory(), r.seconds(), r.fetchedObjects(), r.fetchedBytes() / 1048576.0,
                    r.fetchedBytes() / 1e6 / Math.max(r.seconds(), 1e-9));
            return 0;
        }
    }
}
