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

    @Option(names = "--layout", defaultValue = "contiguous", converter = LayoutConverter.class,
            description = "Where wsbench's working set lies in its region: contiguous (the first W MiB) or scattered (W/T of its"
                    + " 4 KiB pages at random, spread evenly) (default ${DEFAULT-VALUE}).")
    DemoGuest.Layout layout;

    DemoGuest toGuest() {
        return new DemoGuest(memoryMiB, totalMiB, wsMiB, layout);
    }

    /** {@code contiguous} / {@code scattered}; picocli names the option in the error of a bad value. */
    static final class LayoutConverter implements picocli.CommandLine.ITypeConverter<DemoGuest.Layout> {
        @Override
        public DemoGuest.Layout convert(String value) {
            return DemoGuest.Layout.parse(value.trim());
        }
    }
}
