package dev.thaw.cli;

import dev.thaw.objectstore.ImagePush;
import dev.thaw.objectstore.ObjectStore;
import dev.thaw.objectstore.S3Location;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "push", mixinStandardHelpOptions = true,
        description = {"Upload an image to S3 or any S3-compatible object store.",
                "Puts the image under s3://BUCKET/PREFIX as NAME (default: the image directory's name): its files, its packs",
                "(shared by every image under the prefix: a pack already there is not uploaded again), then its manifest,",
                "last, so that a reader never sees half an image. Every file is checked against the manifest's checksums",
                "before it is sent. Endpoint, region and credentials come from the standard AWS environment and files",
                "(AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,",
                "~/.aws/config and credentials); a custom endpoint is addressed path-style. An image with disks takes its",
                "disk bases along: every file of each base's qcow2 chain as an object named by the SHA-256 of its bytes",
                "(PREFIX/bases/, shared by every image under the prefix: one already there is not uploaded again), each",
                "checked against the identity the save recorded before and after its upload."})
final class PushCommand implements Callable<Integer> {
    @Parameters(index = "0", description = "The image directory.")
    Path image;

    @Parameters(index = "1", description = "Where: s3://BUCKET or s3://BUCKET/PREFIX.")
    String destination;

    @Option(names = "--name", description = "The image's name in the bucket (default: the image directory's name).")
    String name;

    @Option(names = "--json", description = "Print the report as JSON.")
    boolean json;

    @Override
    public Integer call() {
        S3Location to = S3Location.parse(destination);
        String as = name != null ? name : image.toAbsolutePath().normalize().getFileName().toString();
        try (ObjectStore store = new ObjectStore(ObjectStore.Settings.fromEnvironment(), to.bucket())) {
            ImagePush.Report r = ImagePush.push(store, image, to, as);
            if (json) {
                System.out.println(Json.write(r));
                return 0;
            }
            System.out.printf("pushed %s as %s in %.2f s: %d objects, %.1f MiB uploaded (%.1f MB/s); %d objects, %.1f MiB already"
                            + " there%s%n", image, r.image(), r.seconds(), r.uploadedObjects(), r.uploadedBytes() / 1048576.0,
                    r.uploadedBytes() / 1e6 / Math.max(r.seconds(), 1e-9), r.skippedObjects(), r.skippedBytes() / 1048576.0,
                    r.manifestRewritten() ? " (its manifest names the image's own store, not the shared one)" : "");
            return 0;
        }
    }
}
