package dev.thaw.cli;

import dev.thaw.host.HugePagePool;
import java.io.PrintStream;
import java.util.Locale;

/**
 * {@code --huge-page-pool} of the bench and the demo: the pre-backed pool of 2 MiB pages ({@link HugePagePool}) their ws
 * restores take guest RAM from, reserved for the run and put back after, as an operator would keep one (thaw hugepages).
 */
final class PoolOption {
    static final String DESCRIPTION = "The pool of 2 MiB pages kept for restores (thaw hugepages) during this run: auto (default: the"
            + " largest guest's RAM, as root), off (none: ws restores take surplus pages, which this host charges about 6 ms per"
            + " 2 MiB to back again), or a size in MiB. Its reservation and first touch come before any restore and are not timed.";

    private PoolOption() {}

    /** The lease for {@code value} with guests of at most {@code largestGuestMiB}; a lease of nothing for off or without root. */
    static AutoCloseable hold(String value, long largestGuestMiB, PrintStream out) {
        long mib = switch (value.toLowerCase(Locale.ROOT)) {
            case "off", "0" -> 0;
            case "auto" -> HugePagePool.permitted() && HugePagePool.state().isPresent() ? largestGuestMiB : 0;
            default -> {
                try {
                    long n = Long.parseLong(value);
                    if (n < 0) throw new NumberFormatException();
                    yield n;
                } catch (NumberFormatException e) {
                    throw new IllegalArgumentException("--huge-page-pool: expected auto, off or a size in MiB, actual '" + value + "'");
                }
            }
        };
        if (mib == 0) {
            out.println("huge page pool: none (--huge-page-pool " + value + (value.equalsIgnoreCase("auto") ? ": not root" : "") + ")");
            return () -> {};
        }
        HugePagePool.Lease lease = HugePagePool.hold(HugePagePool.pagesFor(mib << 20));
        HugePagePool.Reserved r = lease.reserved();
        out.printf("huge page pool: %d 2 MiB pages for this run (%d before), %d touched in %.2f s, not timed%s%n", r.pageCount(),
                r.pageCountBefore(), r.touchedPageCount(), r.touchNanos() / 1e9, r.isShort() ? "; fewer than the " + r.pageCountAsked()
                        + " asked (fragmented memory): ws restores of larger guests take surplus pages" : "");
        return lease;
    }
}
