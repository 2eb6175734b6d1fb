package dev.thaw.measure;

import dev.thaw.estimate.Sizing;
import dev.thaw.restore.PostcopyRestore;
import dev.thaw.restore.Restorer;
import dev.thaw.restore.WorkingSetChoice;
import dev.thaw.util.ThreadPriority;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.Locale;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.OptionalInt;
import java.util.Set;

/**
 * Every way the demo and the bench restore a saved guest, in the order their tables list them:
 * QEMU's own (its stream from a file, {@code loadvm} of an internal snapshot), the kernel's demand
 * paging of a mapped RAM file, and Thaw's restores ({@link Restorer.Mode}) with each working set. What a method does differently
 * from its mode lives here ({@link #workingSetChoice}, {@link #tuned}); {@link MethodRestore} runs it.
 */
public enum RestoreMethod {
    QEMU_EAGER("QEMU eager", "qemu-eager"),
    QEMU_LOADVM("QEMU loadvm", "qemu-loadvm"),
    MAPPED_FILE("mapped RAM file", "mapped-file"),
    THAW_EAGER("Thaw eager", "eager"),
    THAW_LAZY("Thaw lazy", "lazy"),
    /** Ablation: lazy with the background stream in address order only (no fault regions), as before they existed. */
    THAW_LAZY_ADDRESS_ORDER("Thaw lazy (address order)", "lazy-address-order"),
    /** The working set learned from the lazy restore just before. */
    WS_LEARNED("Thaw ws (learned)", "ws-learned"),
    WS_DIRTY("Thaw ws (dirty)", "ws-dirty"),
    /**
     * The post-save trace completing the live probe's pages (save --estimator dirty,trace: the trace runs with the probe's pages
     * prefetched and adds what they missed): the demo's ws.
     */
    WS_TRACE("Thaw ws (trace)", "ws"),
    /** Ablation: ws (dirty) with the background threads (Thaw's sender, QEMU's postcopy/listen) at normal priority. */
    WS_DIRTY_NORMAL_PRIORITY("Thaw ws (dirty, normal prio.)", "ws-dirty-normal-priority"),
    /** Trial: ws (dirty) with demand pages on QEMU's postcopy-preempt channel. */
    WS_DIRTY_PREEMPT("Thaw ws (dirty, preempt)", "ws-dirty-preempt"),
    /** Trial: ws (dirty) prefetching the whole estimated working set (fraction 1 instead of HotRestore's 1/2). */
    WS_DIRTY_WHOLE("Thaw ws (dirty, whole set)", "ws-dirty-whole"),
    /** Ablation: ws (dirty) prefetching HotRestore's fixed half of the estimate (before the elastic size). */
    WS_DIRTY_HALF("Thaw ws (dirty, half)", "ws-dirty-half"),
    /**
     * Trial: the whole estimate, then the background paced to {@value #QUIET_BACKGROUND_MBPS} MB/s, so that the guest runs with
     * its working set and its faults but almost no background stream: does the stream itself slow the guest?
     */
    WS_DIRTY_QUIET("Thaw ws (dirty, whole, quiet)", "ws-dirty-quiet"),
    /**
     * Trial: as {@link #WS_DIRTY_QUIET} with the dirty,trace estimate, which leaves the guest almost nothing to fault on: is the
     * background stream what keeps a guest whose working set is in from running at full speed?
     */
    WS_TRACE_QUIET("Thaw ws (trace, whole, quiet)", "ws-trace-quiet"),
    /**
     * Trial: nothing prefetched before the guest runs; the dirty,trace estimate is the background's first pages, in queue order,
     * from the moment the guest runs (demand faults still jump ahead): does running at once beat pushing the set first?
     */
    WS_TRACE_STREAMED("Thaw ws (trace, streamed)", "ws-streamed"),
    /**
     * Ablation: ws (dirty,trace) with the rest of memory streamed at full speed while the guest computes too
     * ({@code --busy-background-mbps 0}), as every ws restore did before the tenth session.
     */
    WS_TRACE_UNPACED("Thaw ws (trace, unpaced)", "ws-unpaced"),
    /**
     * Trial: ws (dirty,trace) sending the prefetch's nearly full 2 MiB regions whole before the discard ({@code --whole-regions}),
     * each into a transparent huge page; no sooner at 512 MiB and later at 4 GiB (docs/benchmarks.md, eleventh session).
     */
    WS_TRACE_WHOLE_REGIONS("Thaw ws (trace, whole regions)", "ws-whole-regions"),
    /**
     * Trial: the whole dirty,trace estimate prefetched (fraction 1), the rest as {@link #WS_TRACE}: where the elastic size takes
     * half of a clustered estimate, does the half left to faults cost more than pushing it first?
     */
    WS_TRACE_WHOLE("Thaw ws (trace, whole set)", "ws-whole"),
    /** Trial: a quarter of the dirty,trace estimate prefetched, the rest of it first in the background. */
    WS_TRACE_QUARTER("Thaw ws (trace, quarter)", "ws-quarter"),
    /** Clones' trial: the background at SCHED_IDLE even where the guests' vCPUs fill the host (the starvation guard raises it). */
    WS_TRACE_IDLE_PRIORITY("Thaw ws (trace, idle prio.)", "ws-idle-priority"),
    /** Trial: ws (dirty) into guest RAM on 2 MiB hugetlb pages (whole 2 MiB units prefetched and faulted; no 4 KiB host pages after). */
    WS_DIRTY_HUGETLB("Thaw ws (dirty, hugetlb)", "ws-dirty-hugetlb"),
    /**
     * Trial: ws (trace) into guest RAM on 2 MiB hugetlb pages. On a host whose page-table updates trap to its hypervisor (this
     * machine's PVM: a 4 KiB first touch costs about 15 us, a 2 MiB one a few hundred us at most) every 4 KiB page placed costs.
     */
    WS_TRACE_HUGETLB("Thaw ws (trace, hugetlb)", "ws-hugetlb"),
    /** Trial: lazy into guest RAM on 2 MiB hugetlb pages (each request and background step moves a whole 2 MiB page). */
    THAW_LAZY_HUGETLB("Thaw lazy (hugetlb)", "lazy-hugetlb"),
    /**
     * Trial: ws (trace) with its working set placed by QEMU's listen thread after LISTEN, the guest held with -S until it is
     * (restore --placed-prefetch): no page fault in QEMU per prefetched page.
     */
    WS_TRACE_PLACED("Thaw ws (trace, placed)", "ws-placed"),
    /** Ablation: ws (trace) in 4 KiB guest RAM pages whatever the host (what {@link #WS_TRACE} was before it chose). */
    WS_TRACE_SMALL_PAGES("Thaw ws (trace, 4 KiB pages)", "ws-small-pages"),
    /**
     * Trial: ws (trace) into hugetlb guest RAM with the whole estimate prefetched (fraction 1), since a fault there moves 2 MiB:
     * later to run and to responsiveness than the elastic half at 1 GiB, W=256 contiguous (docs/benchmarks.md, sixteenth session).
     */
    WS_TRACE_HUGETLB_WHOLE("Thaw ws (trace, hugetlb, whole)", "ws-hugetlb-whole"),
    /**
     * Trial: Thaw's mapped restore ({@code --mode mapped}) with the dirty estimate: the kernel's demand paging of the image's RAM
     * file, the working set read into the page cache once QEMU has the device state (FaaSnap's loading set), merged by address.
     */
    WS_DIRTY_MAPPED("Thaw mapped (dirty)", "mapped-dirty"),
    /** Thaw's mapped restore with the post-save trace ({@link #WS_TRACE}'s estimate; save --estimator dirty,trace --ram-file). */
    WS_TRACE_MAPPED("Thaw mapped (trace)", "mapped");

    /** The background's pace in the quiet trial, MB/s. */
    public static final int QUIET_BACKGROUND_MBPS = 16;

    private final String label;
    private final String shortName;

    RestoreMethod(String label, String shortName) {
        this.label = label;
        this.shortName = shortName;
    }

    /** How the bench's tables name it. */
    public String label() {
        return label;
    }

    /** How the demo's table names it: Thaw's restores by their {@code --mode}, ws being the image's own dirty,trace estimate. */
    public String shortName() {
        return shortName;
    }

    /** The name {@code --methods} takes: {@code qemu-eager}, {@code ws-dirty}, ... */
    public String key() {
        return name().toLowerCase(Locale.ROOT).replace('_', '-');
    }

    /** Thaw's restore mode of this method; empty for QEMU's and the kernel's. */
    public Optional<Restorer.Mode> thawMode() {
        return switch (this) {
            case QEMU_EAGER, QEMU_LOADVM, MAPPED_FILE -> Optional.empty();
            case WS_DIRTY_MAPPED, WS_TRACE_MAPPED -> Optional.of(Restorer.Mode.MAPPED);
            case THAW_EAGER -> Optional.of(Restorer.Mode.EAGER);
            case THAW_LAZY, THAW_LAZY_ADDRESS_ORDER, THAW_LAZY_HUGETLB -> Optional.of(Restorer.Mode.LAZY);
            case WS_LEARNED, WS_DIRTY, WS_TRACE, WS_DIRTY_NORMAL_PRIORITY, WS_DIRTY_PREEMPT, WS_DIRTY_WHOLE, WS_DIRTY_HALF, WS_DIRTY_QUIET, WS_DIRTY_HUGETLB,
                 WS_TRACE_QUIET, WS_TRACE_WHOLE, WS_TRACE_STREAMED, WS_TRACE_QUARTER, WS_TRACE_UNPACED, WS_TRACE_WHOLE_REGIONS, WS_TRACE_IDLE_PRIORITY, WS_TRACE_HUGETLB, WS_TRACE_PLACED,
                 WS_TRACE_SMALL_PAGES, WS_TRACE_HUGETLB_WHOLE -> Optional.of(Restorer.Mode.WS);
        };
    }

    /**
     * Which working set a Thaw restore by this method takes and how much of it it prefetches: the image's own section (the
     * demo's estimate, or the one the bench attaches just before the restore; never a trace an earlier restore left beside
     * it), elastic unless a trial or an ablation fixes the fraction or the pages. Lazy and eager take none.
     */
    public WorkingSetChoice workingSetChoice() {
        OptionalDouble fraction = switch (this) {
            case WS_DIRTY_WHOLE, WS_DIRTY_QUIET, WS_TRACE_QUIET, WS_TRACE_WHOLE, WS_TRACE_HUGETLB_WHOLE -> OptionalDouble.of(1.0);
            case WS_DIRTY_HALF -> OptionalDouble.of(Sizing.HOTRESTORE.prefetchFraction());
            case WS_TRACE_QUARTER -> OptionalDouble.of(0.25);
            default -> OptionalDouble.empty();
        };
        OptionalInt pages = this == WS_TRACE_STREAMED ? OptionalInt.of(0) : OptionalInt.empty();
        return new WorkingSetChoice(WorkingSetChoice.Source.IMAGE, pages, fraction);
    }

    /**
     * A lazy or ws restore's options as this method changes them (its ablation or trial); the others' are their mode's. Guest RAM
     * is chosen as {@code thaw restore} chooses it ({@link PostcopyRestore.GuestRam#AUTO}) unless the method fixes it; the trials
     * that shape the prefetch for 4 KiB pages (whole regions into transparent huge pages, placed pages) keep 4 KiB pages.
     */
    public PostcopyRestore.Options tuned(PostcopyRestore.Options options) {
        return switch (this) {
            case WS_TRACE_SMALL_PAGES, WS_TRACE_WHOLE_REGIONS, WS_TRACE_PLACED -> methodOwn(options.withGuestRam(PostcopyRestore.GuestRam.DEFAULT));
            default -> methodOwn(options.guestRam() == PostcopyRestore.GuestRam.DEFAULT ? options.withGuestRam(PostcopyRestore.GuestRam.AUTO) : options);
        };
    }

    private PostcopyRestore.Options methodOwn(PostcopyRestore.Options options) {
        return switch (this) {
            case THAW_LAZY_ADDRESS_ORDER -> options.withPolicy(options.policy().withFaultRegionPages(0));
            case WS_DIRTY_NORMAL_PRIORITY -> options.withBackgroundPriority(ThreadPriority.Policy.NORMAL);
            case WS_TRACE_IDLE_PRIORITY -> options.withBackgroundPriority(ThreadPriority.Policy.IDLE);
            case WS_DIRTY_PREEMPT -> options.withTransport(options.transport().withPreempt(true));
            case WS_DIRTY_HUGETLB, WS_TRACE_HUGETLB, THAW_LAZY_HUGETLB, WS_TRACE_HUGETLB_WHOLE -> options.withGuestRam(PostcopyRestore.GuestRam.HUGETLB);
            case WS_TRACE_UNPACED -> options.withPolicy(options.policy().withBusyBackgroundBytesPerSecond(0));
            case WS_TRACE_WHOLE_REGIONS -> options.withPolicy(options.policy().withWholeRegionPrefetch(true));
            case WS_TRACE_PLACED -> options.withTransport(options.transport().withPlacedPrefetch(true));
            case WS_DIRTY_QUIET, WS_TRACE_QUIET -> options.withPolicy(options.policy().withBackgroundBytesPerSecond(QUIET_BACKGROUND_MBPS * 1_000_000L));
            default -> options;
        };
    }

    /** What {@code --modes} runs unless told otherwise: every method but the ablations and trials. */
    public static Set<RestoreMethod> defaults() {
        return EnumSet.complementOf(EnumSet.of(THAW_LAZY_ADDRESS_ORDER, WS_DIRTY_NORMAL_PRIORITY, WS_DIRTY_PREEMPT, WS_DIRTY_WHOLE,
                WS_DIRTY_HALF, WS_DIRTY_QUIET, WS_DIRTY_HUGETLB, WS_DIRTY_MAPPED, WS_TRACE_QUIET, WS_TRACE_WHOLE, WS_TRACE_STREAMED,
                WS_TRACE_QUARTER, WS_TRACE_UNPACED, WS_TRACE_WHOLE_REGIONS, WS_TRACE_IDLE_PRIORITY, WS_TRACE_HUGETLB, THAW_LAZY_HUGETLB, WS_TRACE_PLACED,
                WS_TRACE_SMALL_PAGES, WS_TRACE_HUGETLB_WHOLE));
    }

    /** Whether it maps the image's RAM file (the bench writes the file when one of its methods does). */
    public boolean mapsRamFile() {
        return this == MAPPED_FILE || thawMode().orElse(null) == Restorer.Mode.MAPPED;
    }

    /** The method whose working-set estimate this one restores with (an ablation or trial shares its original's). */
    public RestoreMethod estimate() {
        return switch (this) {
            case WS_DIRTY_NORMAL_PRIORITY, WS_DIRTY_PREEMPT, WS_DIRTY_WHOLE, WS_DIRTY_HALF, WS_DIRTY_QUIET, WS_DIRTY_HUGETLB, WS_DIRTY_MAPPED -> WS_DIRTY;
            case WS_TRACE_MAPPED, WS_TRACE_QUIET, WS_TRACE_WHOLE, WS_TRACE_STREAMED, WS_TRACE_QUARTER, WS_TRACE_UNPACED, WS_TRACE_WHOLE_REGIONS,
                 WS_TRACE_IDLE_PRIORITY, WS_TRACE_HUGETLB, WS_TRACE_PLACED, WS_TRACE_SMALL_PAGES, WS_TRACE_HUGETLB_WHOLE -> WS_TRACE;
            default -> this;
        };
    }

    public static RestoreMethod parse(String key) {
        for (RestoreMethod m : values()) {
            if (m.key().equals(key)) return m;
        }
        throw new IllegalArgumentException("restore method: expected one of "
                + Arrays.stream(values()).map(RestoreMethod::key).toList() + ", actual '" + key + "'");
    }
}
