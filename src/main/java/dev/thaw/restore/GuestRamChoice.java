package dev.thaw.restore;

import dev.thaw.host.PageTouchProbe;
import java.util.function.Supplier;

/**
 * Which pages back a ws restore's guest RAM when the operator did not say ({@link PostcopyRestore.GuestRam#AUTO}). Pure: the
 * host's facts come in as values, its page-touch cost through a supplier that is called only when everything else already
 * favours 2 MiB pages (measuring it takes about 60 ms, once per boot).
 *
 * <p>Why: on a host whose hypervisor shadows the guest's page tables (this project's machines) the first access to every 4 KiB
 * page of a postcopy restore traps, 9-18 us each, which a restore into 2 MiB hugetlb pages pays once per 512 pages. The price
 * of 2 MiB pages is that every page moved is 2 MiB: a prefetch reads the whole of every region its pages touch, and a fault
 * after the start waits for 2 MiB. So they pay only where the working set fills its regions (a dense estimate: at most
 * {@code 1 / MIN_DENSITY} times its bytes read) and the 4 KiB touch is costly. Measured (docs/benchmarks.md, sixteenth session): 1 GiB, W=256 contiguous,
 * cold, two runs of 5: stall TTR medians 0.78 and 0.82 s against 2.49 and 2.31 s in 4 KiB pages; 4 GiB, W=256 scattered:
 * running after 16-18 s against 2.2-3.9 s (fifteenth session), which the density rule keeps in 4 KiB pages.
 */
public final class GuestRamChoice {
    /**
     * 2 MiB pages when the estimate's pages fill at least this share of their regions: at most 3.3x its bytes read. Here a 4 KiB
     * page costs 15-20 us to place and touch first, and 4 KiB more of the image 4-10 us to read (0.4-1 GB/s), so 2 MiB pages
     * break even near a density of 0.17-0.4; the demo's estimates sit at about 0.5, on either side from one save to the next
     * (docs/benchmarks.md, sixteenth session), which a threshold of 0.5 split into two different restores.
     */
    public static final double MIN_DENSITY = 0.3;
    /** Memory the host keeps beyond the guest's hugetlb pages, so that taking them cannot starve everything else. */
    public static final long HEADROOM_BYTES = 1L << 30;
    private static final long HUGE_PAGE_BYTES = HugePages.HUGE_PAGE_BYTES;
    /** Free 2 MiB blocks kept beyond the guest's (128 MiB). */
    static final long FREE_BLOCK_MARGIN = 64;

    /**
     * The choice and its reason, for {@code restore --json} and the progress line.
     *
     * @param guestRam what backs guest RAM: never {@link PostcopyRestore.GuestRam#AUTO}
     */
    public record Choice(PostcopyRestore.GuestRam guestRam, String reason) {
        public Choice {
            if (guestRam == PostcopyRestore.GuestRam.AUTO) {
                throw new IllegalArgumentException("guest RAM choice: expected DEFAULT, COLLAPSE_AFTER or HUGETLB, actual AUTO");
            }
        }

        /** What the operator asked for: nothing chosen. */
        public static Choice asked(PostcopyRestore.GuestRam guestRam) {
            return new Choice(guestRam, "as the restore's options said (--guest-ram, --hugetlb or --collapse-huge-pages)");
        }

        public boolean hugetlb() {
            return guestRam == PostcopyRestore.GuestRam.HUGETLB;
        }

        /** As {@code restore --json} names it: 4k, 4k-collapsed (collapsed after the restore) or hugetlb. */
        public String label() {
            return switch (guestRam) {
                case DEFAULT -> "4k";
                case COLLAPSE_AFTER -> "4k-collapsed";
                case HUGETLB -> "hugetlb";
                case AUTO -> throw new IllegalStateException("unreachable: AUTO is refused above");
            };
        }
    }

    /**
     * What the host offers.
     *
     * @param hugetlbPermitted whether this process may let QEMU take surplus hugetlb pages (root: the overcommit knob)
     * @param availableBytes   the kernel's MemAvailable
     * @param freeHugeBlocks   2 MiB blocks free in the kernel's buddy allocator ({@code /proc/buddyinfo}, orders 9 and up):
     *                         QEMU fails at once if the kernel cannot find the surplus pages, and this many it finds without
     *                         compacting memory
     * @param poolPageCount    free pages of the kernel's persistent 2 MiB pool ({@link dev.thaw.host.HugePagePool}): kept
     *                         backed by the hypervisor and outside MemAvailable, so a guest they hold needs neither of the above
     */
    public record Host(boolean hugetlbPermitted, long availableBytes, long freeHugeBlocks, long poolPageCount) {
        public Host(boolean hugetlbPermitted, long availableBytes, long freeHugeBlocks) {
            this(hugetlbPermitted, availableBytes, freeHugeBlocks, 0);
        }
    }

    /**
     * What the restore is.
     *
     * @param ws              a ws restore (a lazy one moves every page by fault: 2 MiB each)
     * @param cloneCount      guests restored at once from the image
     * @param prefetchPages   pages the ws restore prefetches
     * @param estimateDensity the estimate's pages over their 2 MiB regions, times 512
     * @param guestRamBytes   the guest's RAM
     * @param smallPageTrial  a trial that shapes the prefetch for 4 KiB pages ({@code --placed-prefetch}, {@code --whole-regions})
     */
    public record Restore(boolean ws, int cloneCount, long prefetchPages, double estimateDensity, long guestRamBytes,
                          boolean smallPageTrial) {
        /** A lazy restore of {@code cloneCount} guests: nothing prefetched. */
        public static Restore lazy(int cloneCount) {
            return new Restore(false, cloneCount, 0, 0, 0, false);
        }
    }

    private GuestRamChoice() {}

    public static Choice choose(Restore restore, Host host, Supplier<PageTouchProbe.Result> pageTouch) {
        if (!restore.ws()) return small("a lazy restore: every page comes by fault, and a fault in 2 MiB pages moves 2 MiB");
        if (restore.prefetchPages() == 0) return small("nothing prefetched: every page comes by fault");
        if (restore.smallPageTrial()) return small("--placed-prefetch and --whole-regions shape the prefetch for 4 KiB pages");
        if (restore.cloneCount() > 1) {
            return small(restore.cloneCount() + " clones at once (2 MiB pages for several guests at once are not measured)");
        }
        if (restore.estimateDensity() < MIN_DENSITY) {
            return small(String.format("a scattered estimate (its pages fill %.0f%% of their 2 MiB regions): 2 MiB pages would read"
                    + " %.1fx its bytes", 100 * restore.estimateDensity(), 1 / Math.max(restore.estimateDensity(), 1.0 / 512)));
        }
        if (!host.hugetlbPermitted()) return small("hugetlb pages need root (the kernel's nr_overcommit_hugepages for 2 MiB pages)");
        if (restore.guestRamBytes() % HUGE_PAGE_BYTES != 0) {
            return small("the guest's RAM, " + restore.guestRamBytes() + " bytes, is not a whole number of 2 MiB pages");
        }
        boolean pooled = host.poolPageCount() >= restore.guestRamBytes() / HUGE_PAGE_BYTES;
        if (!pooled) {
            Choice unpooled = withoutPool(restore, host);
            if (unpooled != null) return unpooled;
        }
        PageTouchProbe.Result touch;
        try {
            touch = pageTouch.get();
        } catch (RuntimeException e) { // a kernel without MADV_POPULATE_WRITE or transparent huge pages: nothing to gain known
            return small("the page-touch probe failed: " + e.getMessage());
        }
        if (!touch.fourKiBCostly()) {
            return small(String.format("a 4 KiB page's first touch costs %.2f us here (2 MiB: %.2f us per 4 KiB): not worth 2 MiB"
                    + " faults", touch.fourKiBMicrosPerPage(), touch.hugeMicrosPerPage()));
        }
        return new Choice(PostcopyRestore.GuestRam.HUGETLB, String.format("2 MiB hugetlb pages%s: a 4 KiB page's first touch costs"
                + " %.1f us here (2 MiB: %.2f us per 4 KiB), and the estimate fills %.0f%% of its 2 MiB regions",
                pooled ? " from the pre-backed pool (" + host.poolPageCount() + " free)" : "",
                touch.fourKiBMicrosPerPage(), touch.hugeMicrosPerPage(), 100 * restore.estimateDensity()));
    }

    /** Whether the kernel can give a guest surplus pages without starving the host: null if so, else 4 KiB pages and why. */
    private static Choice withoutPool(Restore restore, Host host) {
        if (host.availableBytes() < restore.guestRamBytes() + HEADROOM_BYTES) {
            return small(String.format("the host has %d MiB available, less than the guest's %d MiB and %d MiB to spare",
                    host.availableBytes() >> 20, restore.guestRamBytes() >> 20, HEADROOM_BYTES >> 20));
        }
        // A margin: the working set is read ahead into the page cache while QEMU takes its pages.
        long needed = restore.guestRamBytes() / HUGE_PAGE_BYTES + FREE_BLOCK_MARGIN;
        if (host.freeHugeBlocks() < needed) {
            return small(String.format("the kernel has %d free 2 MiB blocks, fewer than the guest's %d and %d to spare (fragmented"
                    + " memory)", host.freeHugeBlocks(), needed - FREE_BLOCK_MARGIN, FREE_BLOCK_MARGIN));
        }
        return null;
    }

    private static Choice small(String why) {
        return new Choice(PostcopyRestore.GuestRam.DEFAULT, "4 KiB pages: " + why);
    }
}
