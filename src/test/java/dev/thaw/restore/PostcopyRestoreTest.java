package dev.thaw.restore;

import dev.thaw.estimate.PageRef;
import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.guest.GuestAgent;
import dev.thaw.image.CheckpointImage;
import dev.thaw.qemu.QemuVm;
import dev.thaw.testing.RestoredGuest;
import dev.thaw.testing.TestHost;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Lazy and working-set restore on the real QEMU: memory identical, migration completed, every page accounted for. */
class PostcopyRestoreTest {
    @TempDir
    static Path dir;
    static Path imageDir;
    static GuestAgent.MemSum before;
    static long lastSeqBefore;

    @BeforeAll
    static void saveTheDemoGuest() throws Exception {
        RestoredGuest.SavedGuest saved = RestoredGuest.saveSmallGuest("thaw-test-postcopy-src", dir.resolve("image"));
        imageDir = saved.imageDir();
        before = saved.before();
        lastSeqBefore = saved.lastSeqBefore();
    }

    private static PostcopyRestore.Result restoreAndCheck(PostcopyRestore.Options options) throws Exception {
        return restoreAndCheck(options, vm -> {});
    }

    private static PostcopyRestore.Result restoreAndCheck(PostcopyRestore.Options options, java.util.function.Consumer<QemuVm> check)
            throws Exception {
        try (CheckpointImage image = CheckpointImage.open(imageDir)) {
            PostcopyRestore.Result r = PostcopyRestore.restore(image, options, s -> {});
            try (QemuVm vm = r.vm()) {
                System.err.printf("%s: running %.2f s, completed %.2f s, %d demand faults (%d duplicate requests), %d prefetched,"
                                + " %d demand pages, %d background, %d zero unsent of %d%n", options.vmName(), r.runningNanos() / 1e9,
                        r.completedNanos() / 1e9, r.demandFaults(), r.duplicateRequests(), r.prefetchedPages(), r.demandPages(),
                        r.backgroundPages(), r.zeroPagesUnsent(), r.pageCount());
                assertThat(vm.qmp().queryMigrate().completed()).isTrue();
                assertThat(vm.qmp().queryStatus().running()).isTrue();
                check.accept(vm);
                assertThat(r.prefetchedPages() + r.demandPages() + r.backgroundPages() + r.zeroPagesUnsent())
                        .as("every page accounted for").isEqualTo(r.pageCount());
                // QEMU 7.2 deadlocked when EOF reached it before its main thread had loaded the device state (PageSender.Health#mayEnd).
                assertThat(eventNanos(r, RestoreEventLog.Type.EOF_SENT)).as("EOF after QEMU ran the guest")
                        .isGreaterThanOrEqualTo(eventNanos(r, RestoreEventLog.Type.RUNNING));
                RestoredGuest.assertSameMemoryAndRunsOn(vm, before, lastSeqBefore);
            }
            return r;
        }
    }

    @Test
    void aFailureWhileQemuStartsKillsItAndGivesBackItsHugetlbPages() throws Exception {
        // QEMU is launched before the prefetch is planned (the two overlap): a working set the scheduler refuses fails after the
        // launch began, and that QEMU must not outlive the restore, nor its surplus-page allowance.
        long allowedBefore = overcommitted();
        java.util.Set<Long> qemusBefore = qemuChildren();
        try (CheckpointImage image = CheckpointImage.open(imageDir)) {
            int pageCount = image.ramBlocks().getFirst().pageCount();
            org.assertj.core.api.Assertions.assertThatThrownBy(() -> PostcopyRestore.restore(image,
                            PostcopyRestore.Options.ws("thaw-test-launch-abandoned", List.of(new PageRef(0, pageCount + 7)), List.of())
                                    .withGuestRam(PostcopyRestore.GuestRam.HUGETLB), s -> {}))
                    .hasMessageContaining(Integer.toString(pageCount + 7));
        }
        // At once, not eventually: a command exits right after such a failure, and the launch's daemon thread with it. The refusal
        // comes within milliseconds, while QEMU takes 0.2 s to come up, so this fails if the restore did not wait for the launch.
        assertThat(qemuChildren()).as("no QEMU left by the failed restore").isEqualTo(qemusBefore);
        assertThat(overcommitted()).as("the surplus pages allowed for it given back").isEqualTo(allowedBefore);
    }

    private static long overcommitted() throws java.io.IOException {
        return Long.parseLong(java.nio.file.Files.readString(HugePages.overcommitKnob()).strip());
    }

    private static java.util.Set<Long> qemuChildren() {
        return ProcessHandle.current().descendants().filter(h -> h.info().command().orElse("").contains("qemu-system"))
                .map(ProcessHandle::pid).collect(java.util.stream.Collectors.toSet());
    }

    @Test
    void wsRestoreIntoHugetlbGuestRam() throws Exception {
        // What auto chooses on a host with costly 4 KiB pages: a dense working set (here the first half of pc.ram's non-zero
        // pages) prefetched in whole 2 MiB pages, the rest by fault and in the background, 2 MiB at a time.
        List<PageRef> ws = new java.util.ArrayList<>();
        try (CheckpointImage image = CheckpointImage.open(imageDir)) {
            int half = image.ramBlocks().getFirst().pageCount() / 2;
            for (int p = 0; p < half; p++) if (!image.isZero(0, p)) ws.add(new PageRef(0, p));
        }
        long reservedBefore = Long.parseLong(java.nio.file.Files.readString(HugePages.overcommitKnob()).strip());
        long ramBytes = TestHost.SMALL_GUEST.memoryMiB() << 20;
        PostcopyRestore.Result r = restoreAndCheck(PostcopyRestore.Options.ws("thaw-test-hugetlb", ws, List.of())
                        .withGuestRam(PostcopyRestore.GuestRam.HUGETLB),
                vm -> assertThat(HugePages.guestRamMapping(vm.pid(), ramBytes)).as("guest RAM mapping")
                        .hasValueSatisfying(m -> assertThat(m.flags()).as("VmFlags of a hugetlb mapping").contains("ht")));
        // Every prefetch, request and background step moves whole 2 MiB pages of pc.ram.
        assertThat(r.prefetchedPages()).isPositive();
        assertThat(r.prefetchedPages() % 512).isZero();
        assertThat(r.demandPages() % 512).isZero();
        assertThat(Long.parseLong(java.nio.file.Files.readString(HugePages.overcommitKnob()).strip()))
                .as("the reserved hugetlb pages are released with the VM").isEqualTo(reservedBefore);
    }

    @Test
    void lazyRestoreWithTheBackgroundInAddressOrderOnly() throws Exception {
        // The default follows each fault's 2 MiB region; without it the stream goes by address alone: both must restore it all.
        PostcopyRestore.Result r = restoreAndCheck(PostcopyRestore.Options.lazy("thaw-test-address-order")
                .withPolicy(dev.thaw.schedule.SchedulePolicy.defaults().withFaultRegionPages(0)));
        assertThat(r.backgroundPages()).isPositive();
    }

    @Test
    void lazyRestoreWithDemandPagesOnThePreemptChannel() throws Exception {
        PostcopyRestore.Options options = PostcopyRestore.Options.lazy("thaw-test-preempt");
        PostcopyRestore.Result r = restoreAndCheck(options.withTransport(options.transport().withPreempt(true)));
        assertThat(r.demandFaults()).isPositive();
        assertThat(r.backgroundPages()).isPositive();
        assertThat(hasEvent(r, RestoreEventLog.Type.LISTEN_IDLE)).as("QEMU's postcopy/listen thread moved to SCHED_IDLE").isTrue();
    }

    private static long eventNanos(PostcopyRestore.Result r, RestoreEventLog.Type type) {
        for (int i = 0; i < r.events().size(); i++) if (r.events().get(i).type() == type) return r.events().get(i).nanos();
        throw new AssertionError("expected a " + type + " event, actual none in " + r.events().size());
    }

    private static boolean hasEvent(PostcopyRestore.Result r, RestoreEventLog.Type type) {
        for (int i = 0; i < r.events().size(); i++) if (r.events().get(i).type() == type) return true;
        return false;
    }

    @Test
    void wsRestoreSendsNearlyFullRegionsWholeBeforeTheDiscard() throws Exception {
        // Every non-zero page of pc.ram but every 17th: nearly every 2 MiB region goes whole before the discard (the pages left
        // out of it and its zero pages with it), the rest after; the memory must come out identical either way.
        List<PageRef> ws = new java.util.ArrayList<>();
        try (CheckpointImage image = CheckpointImage.open(imageDir)) {
            assertThat(image.ramBlocks().getFirst().name()).isEqualTo("pc.ram");
            for (int p = 0; p < image.ramBlocks().getFirst().pageCount(); p++) {
                if (p % 17 != 0 && !image.isZero(0, p)) ws.add(new PageRef(0, p));
            }
        }
        long ramBytes = TestHost.SMALL_GUEST.memoryMiB() << 20;
        PostcopyRestore.Result r = restoreAndCheck(PostcopyRestore.Options.ws("thaw-test-whole-regions", ws, List.of())
                        .withPolicy(PostcopyRestore.Options.ws("x", ws, List.of()).policy().withWholeRegionPrefetch(true)),
                vm -> System.err.println("guest RAM in transparent huge pages after the prefetch: " + HugePages.guestRamMapping(vm.pid(),
                        ramBytes).map(m -> (m.anonHugeBytes() >> 20) + " MiB").orElse("mapping not found")));
        long whole = -1;
        long prefetchedBefore = 0; // prefetch batches sent before the whole regions ended (and the discard went)
        for (int i = 0; i < r.events().size(); i++) {
            RestoreEventLog.Event e = r.events().get(i);
            if (e.type() == RestoreEventLog.Type.WHOLE_REGIONS_SENT && whole < 0) whole = e.value();
            if (e.type() == RestoreEventLog.Type.PREFETCH_SENT && whole < 0) prefetchedBefore += e.value();
        }
        assertThat(whole).as("pages sent in whole regions before the discard").isPositive();
        assertThat(prefetchedBefore).as("the batches before the discard hold the whole regions and nothing else").isEqualTo(whole);
        assertThat(r.prefetchedPages()).as("the whole regions' left-out and zero pages are prefetched too").isGreaterThan(ws.size());
        assertThat(r.demandFaults()).as("nearly all of memory was in before the guest ran").isLessThan(ws.size() / 10);
    }

    @Test
    void wsRestoreWithItsWorkingSetPlacedAfterListenStartsTheGuestOnlyOnceItIsPlaced() throws Exception {
        // Every non-zero page of pc.ram but every 5th, sent after LISTEN into a QEMU held with -S; cont once QEMU answered the
        // PING after them.
        List<PageRef> ws = new java.util.ArrayList<>();
        try (CheckpointImage image = CheckpointImage.open(imageDir)) {
            for (int p = 0; p < image.ramBlocks().getFirst().pageCount(); p++) {
                if (p % 5 != 0 && !image.isZero(0, p)) ws.add(new PageRef(0, p));
            }
        }
        PostcopyRestore.Options options = PostcopyRestore.Options.ws("thaw-test-placed", ws, List.of());
        PostcopyRestore.Result r = restoreAndCheck(options.withTransport(options.transport().withPlacedPrefetch(true)));
        assertThat(r.prefetchedPages()).isEqualTo(ws.size());
        long placed = eventNanos(r, RestoreEventLog.Type.PREFETCH_PLACED);
        long lastSent = 0;
        for (int i = 0; i < r.events().size(); i++) {
            if (r.events().get(i).type() == RestoreEventLog.Type.PREFETCH_SENT) lastSent = Math.max(lastSent, r.events().get(i).nanos());
        }
        assertThat(placed).as("placed once QEMU read the PING after the last batch").isGreaterThan(lastSent);
        assertThat(eventNanos(r, RestoreEventLog.Type.RUNNING)).as("the guest ran only once its working set was placed").isGreaterThan(placed);
        assertThat(r.demandFaults()).as("most of memory was in before the guest ran").isLessThan(ws.size() / 10);
    }

    @Test
    void lazyRestore() throws Exception {
        PostcopyRestore.Result lazy = restoreAndCheck(PostcopyRestore.Options.lazy("thaw-test-lazy"));
        assertThat(lazy.prefetchedPages()).isZero();
        assertThat(lazy.demandFaults()).isPositive();
        assertThat(hasEvent(lazy, RestoreEventLog.Type.LISTEN_IDLE)).as("QEMU's postcopy/listen thread moved to SCHED_IDLE").isTrue();
        assertThat(lazy.faults()).isNotEmpty();
        // QEMU's postcopy-blocktime: with demand faults the vCPU waited, so QEMU must report a time (it is -1 when absent).
        assertThat(lazy.vcpuBlockedMillis()).as("QEMU's postcopy-blocktime").isNotNegative();

        // The next restore prefetches what the lazy one faulted, in fault order (learned working set).
        List<PageRef> learned = lazy.faultedPages();
        PostcopyRestore.Result ws = restoreAndCheck(PostcopyRestore.Options.lazy("thaw-test-ws").withWorkingSet(learned)
                .withGuestRam(PostcopyRestore.GuestRam.COLLAPSE_AFTER));
        assertThat(ws.prefetchedPages()).isEqualTo(learned.size());
        assertThat(lazy.collapse()).isEmpty();
        HugePages.CollapseReport collapse = ws.collapse().orElseThrow();
        System.err.println("huge page collapse after the ws restore: " + collapse);
        assertThat(collapse.rangeCount()).isEqualTo(TestHost.SMALL_GUEST.memoryMiB() / 2);
        assertThat(collapse.collapsedCount()).as("2 MiB ranges collapsed").isPositive();
        assertThat(collapse.anonHugeBytesAfter()).isGreaterThan(collapse.anonHugeBytesBefore());
    }
}
