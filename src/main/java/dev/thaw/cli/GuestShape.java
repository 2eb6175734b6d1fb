package dev.thaw.cli;

import dev.thaw.guest.DemoGuest;
import picocli.CommandLine.Option;

/** The demo guest's size options, shared by the commands that boot one. */
final class GuestShape {
    @Option(names = "--memory-mib", defaultValue = "512", description = "Guest RAM in MiB (default ${DEFAULT-VALUE}).")
    long memoryMiB;

    @Option(names = "--total-mib", defaultValue = "192", description = "wsbench region T in MiB, at most RAM - 300 (default ${DEFAULT-VALUE}).")
    long totalMiB;

    @Option(names = "--ws-mib", defaultValue = "64", description = "wsbench working set W in MiB (default ${DEFAULT-VALUE}).")
    long wsMiB;

    DemoGuest toGuest() {
        return new DemoGuest(memoryMiB, totalMiB, wsMiB);
    }
}
