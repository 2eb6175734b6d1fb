/**
 * The page scheduler of a postcopy restore, pure: which page goes to the destination next.
 *
 * <p>No QEMU, no sockets, no threads, no clock of its own (callers pass the time): a
 * {@link dev.thaw.schedule.PageScheduler} decides, the restore session sends. Its rules, in the
 * order they apply (docs/protocol.md, "Scheduling"):
 *
 * <ol>
 *   <li><b>Once.</b> Every destination host page (a <em>unit</em>: one 4 KiB page, or 512 for a
 *       2 MiB hugetlb block) is handed out at most once.</li>
 *   <li><b>Prefetch.</b> Before the guest starts, the working set in the order given; with
 *       {@code wholeRegionPrefetch} (a trial, off by default) first its nearly full 2 MiB regions of 4 KiB blocks
 *       whole (at least 256 of its non-zero pages in the set, at most 64 not),
 *       each region's non-zero pages before its zero ones, so that each may land in one transparent
 *       huge page ({@link dev.thaw.schedule.PageScheduler#wholeRegions}).</li>
 *   <li><b>Discard.</b> One unit not prefetched is discarded on the destination before the prefetch
 *       (POSTCOPY_ADVISE discarded all of guest RAM already; after whole regions, which go before
 *       it, exactly what is not prefetched); there must be one (QEMU 7.2 deadlocks in LISTEN
 *       otherwise): if everything would be prefetched, the last unit of the first block is taken
 *       back and sent after LISTEN instead.</li>
 *   <li><b>Demand first.</b> A requested page goes at once, with {@code neighbourPages} pages after
 *       it on 4 KiB blocks (HotRestore sends 4 per fault); a request for a page handed out already
 *       is a duplicate and sends nothing.</li>
 *   <li><b>Fault regions.</b> After a demand fault the background stream sends the rest of the
 *       fault's aligned region (from the fault onwards, then the region's start), newest fault
 *       first.</li>
 *   <li><b>Predicted queue</b>, then <b>address order</b> of the non-zero pages left. Zero pages are
 *       never sent in the background: after EOF a page never sent reads as zero.</li>
 *   <li><b>Chunks.</b> Background chunks start at {@link dev.thaw.schedule.SchedulePolicy#MIN_CHUNK_PAGES}
 *       pages, double after every chunk without a request in between, up to {@code maxChunkPages},
 *       and fall back to the minimum at each request (CRIU's lazy-pages rule).</li>
 *   <li><b>Hold and pace.</b> No background before {@code holdBackgroundNanos} after the guest
 *       starts (tracing); then at most {@code backgroundBytesPerSecond}, and with a busy pace at most
 *       {@code busyBackgroundBytesPerSecond} while the guest's vCPUs compute ({@link dev.thaw.schedule.BusyPace}),
 *       once the predicted queue and the fault regions are sent (the address order's pages only).
 *       Demand is never held.</li>
 * </ol>
 */
package dev.thaw.schedule;
