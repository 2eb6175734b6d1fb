package dev.thaw.cli;

import dev.thaw.image.Store;
import dev.thaw.objectstore.BucketGc;
import dev.thaw.objectstore.ObjectStore;
import dev.thaw.objectstore.S3Location;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "gc", mixinStandardHelpOptions = true,
        description = {"Delete the packs of a shared store that no image uses.",
                "Mark and sweep under the store's exclusive lock (it waits for saves into the store to finish): keeps every",
                "pack the manifest of an image in the store's list names, deletes the others and the leftovers of saves that",
                "died. Refuses, deleting nothing, when a listed image's directory is gone (removed or moved by hand) unless",
                "--forget-missing.",
                "s3://BUCKET/PREFIX: the same for images pushed there (thaw push), under a lock that keeps pushes to the prefix",
                "out while it runs (and it waits for none: a push running makes it stop, deleting nothing). It exits 1 when an",
                "image names an object the bucket does not hold."})
final class GcCommand implements Callable<Integer> {
    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Parameters(index = "0", description = "The store directory (thaw save --store), or s3://BUCKET/PREFIX (thaw push).")
    String store;

    @Option(names = "--dry-run", description = "Only for s3://: say what would be deleted, delete nothing.")
    boolean dryRun;

    @Option(names = "--forget-missing", description = "Drop listed images whose directory is gone, and free their packs.")
    boolean forgetMissing;

    @Option(names = "--json", description = "Print the report as JSON.")
    boolean json;

    @Override
    public Integer call() {
        if (S3Location.isS3(store)) return collectBucket(S3Location.parse(store));
        if (dryRun) throw new picocli.CommandLine.ParameterException(spec.commandLine(), "--dry-run: expected with s3://BUCKET/PREFIX, actual a"
                + " store directory (its gc deletes only what no image in the store's list uses)");
        Store.GcReport r = Store.open(Path.of(store)).collectGarbage(forgetMissing);
        if (json) {
            System.out.println(Json.write(r));
            return 0;
        }
        System.out.printf("store %s: %d images, %d packs kept; deleted %d packs (%.1f MiB) and %d temporary files%n", r.store(),
                r.liveImages().size(), r.keptPackCount(), r.deletedPacks().size(), r.freedByteSize() / 1048576.0,
                r.deletedTemporaryFileCount());
        for (Path p : r.forgottenImages()) System.out.println("forgot image " + p);
        return 0;
    }

    private int collectBucket(S3Location location) {
        if (forgetMissing) throw new picocli.CommandLine.ParameterException(spec.commandLine(), "--forget-missing: expected with a store"
                + " directory, actual " + location + " (thaw rm s3://BUCKET/PREFIX/NAME removes a name from a bucket)");
        try (ObjectStore s3 = new ObjectStore(ObjectStore.Settings.fromEnvironment(), location.bucket())) {
            BucketGc.Report r = BucketGc.collect(s3, location, dryRun);
            if (json) {
                System.out.println(Json.write(r));
                return 0;
            }
            System.out.printf("%s: %d images, %d objects (%.1f MiB) kept; %s %d objects (%.1f MiB)%s%s in %.2f s%n", r.location(),
                    r.images().size(), r.keptObjectCount(), r.keptByteSize() / 1048576.0, r.dryRun() ? "would delete" : "deleted",
                    r.deletedObjects().size(), r.freedByteSize() / 1048576.0,
                    r.staleLockCount() == 0 ? "" : " and " + r.staleLockCount() + " stale locks",
                    r.otherObjectCount() == 0 ? "" : "; " + r.otherObjectCount() + " objects not Thaw's left alone", r.seconds());
            if (r.dryRun()) for (String o : r.deletedObjects()) System.out.println("  " + o);
            for (String o : r.missingObjects()) System.out.println("missing (an image names it, the bucket has none): " + o);
            return r.missingObjects().isEmpty() ? 0 : 1;
        }
    }
}
