package dev.thaw.cli;

import dev.thaw.guest.GuestImage;
import dev.thaw.host.HostDoctor;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "guest", mixinStandardHelpOptions = true,
        description = "Builds the demo guest (or finds it in the cache) and prints where it is.")
final class GuestCommand implements Callable<Integer> {
    @Option(names = "--json", description = "Print the result as JSON.")
    boolean json;

    @Override
    public Integer call() {
        GuestImage image = HostDoctor.ensureReady(System.err).guest().orElseThrow();
        System.out.println(json ? Json.write(image) : "guest " + image.key() + " (" + image.kernelPackage() + ") in " + image.directory());
        return 0;
    }
}
