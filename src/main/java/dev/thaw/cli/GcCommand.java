package dev.thaw.cli;

import dev.thaw.image.Store;
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
                "--forget-missing."})
final class GcCommand implements Callable<Integer> {
    @Parameters(index = "0", description = "The store directory (thaw save --store).")
    Path store;

    @Option(names = "--forget-missing", description = "Drop listed images whose directory is gone, and free their packs.")
    boolean forgetMissing;

    @Option(names = "--json", description = "Print the report as JSON.")
    boolean json;

    @Override
    public Integer call() {
        Store.GcReport r = Store.open(store).collectGarbage(forgetMissing);
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
}
