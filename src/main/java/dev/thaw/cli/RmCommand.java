package dev.thaw.cli;

import dev.thaw.image.Store;
import dev.thaw.objectstore.BucketGc;
import dev.thaw.objectstore.ObjectStore;
import dev.thaw.objectstore.S3Location;
import dev.thaw.restore.RamFiles;
import dev.thaw.restore.RestoreTraces;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "rm", mixinStandardHelpOptions = true,
        description = {"Remove an image.",
                "Removes an image directory. An image in a shared store first leaves the store's list of images (under the",
                "store's exclusive lock); its packs are deleted by the next thaw gc STORE unless another image uses them.",
                "Never delete such an image by hand: gc would then refuse to run until told --forget-missing.",
                "The restore traces, the RAM file and the restores' disk overlays beside it (IMAGE.restores/, IMAGE.ram/,",
                "IMAGE.disks/) go with it; the disks' bases, outside the image, stay.",
                "s3://BUCKET/PREFIX/NAME removes the image's name (its manifest) from the bucket; thaw gc s3://BUCKET/PREFIX then",
                "deletes its objects that no other image there uses."})
final class RmCommand implements Callable<Integer> {
    @Parameters(index = "0", description = "The image directory, or s3://BUCKET/PREFIX/NAME.")
    String image;

    @Option(names = "--json", description = "Print what was removed as JSON.")
    boolean json;

    /** What {@code --json} prints: {@code store} null for an image with its own store. */
    record Result(Path image, String imageId, Path store, boolean tracesRemoved, boolean ramFileRemoved) {}

    @Override
    public Integer call() {
        if (S3Location.isS3(image)) return removeFromBucket(S3Location.parseImage(image));
        Store.Removed removed = Store.removeImage(Path.of(image));
        boolean traces = RestoreTraces.deleteFor(removed.image());
        boolean ram = RamFiles.deleteFor(removed.image());
        boolean overlays = dev.thaw.restore.RestoreDisks.deleteFor(removed.image());
        String also = (traces ? " and its restore traces" : "") + (ram ? " and its RAM file" : "")
                + (overlays ? " and its restores' disk overlays" : "");
        if (json) {
            System.out.println(Json.write(new Result(removed.image(), removed.imageId(), removed.store(), traces, ram)));
        } else if (removed.store() == null) {
            System.out.printf("removed image %s (%s), its own store%s%n", removed.image(), removed.imageId(), also);
        } else {
            System.out.printf("removed image %s (%s)%s; thaw gc %s deletes the packs no other image uses%n", removed.image(),
                    removed.imageId(), also, removed.store());
        }
        return 0;
    }

    private int removeFromBucket(S3Location.Image name) {
        try (ObjectStore store = new ObjectStore(ObjectStore.Settings.fromEnvironment(), name.location().bucket())) {
            BucketGc.Removed removed = BucketGc.removeImage(store, name);
            if (json) {
                System.out.println(Json.write(removed));
            } else {
                System.out.printf("removed image %s (%s); thaw gc %s deletes the objects no other image uses%n", removed.image(),
                        removed.imageId().isEmpty() ? "its manifest unreadable" : removed.imageId(), name.location());
            }
            return 0;
        }
    }
}
