package dev.thaw.restore;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.estimate.Estimator;
import dev.thaw.estimate.WorkingSet;
import dev.thaw.estimation.EstimatingSave;
import dev.thaw.guest.DemoGuest;
import dev.thaw.guest.GuestAgent;
import dev.thaw.guest.WsbenchTick;
import dev.thaw.image.CheckpointImage;
import dev.thaw.image.WorkingSetWriter;
import dev.thaw.measure.AfterRestore;
import dev.thaw.measure.HostStall;
import dev.thaw.measure.QemuSampler;
import dev.thaw.measure.Throughput;
import dev.thaw.qemu.QemuVm;
import dev.thaw.qemu.VcpuTime;
import dev.thaw.qemu.VmConfig;
import dev.thaw.save.Saver;
import dev.thaw.testing.TestHost;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A guest with 2 vCPUs (TCG runs each on a thread of its own) saved as {@code thaw save --estimator dirty,trace} does it (a live
 * probe of the pages it writes, completed by a post-save trace: a postcopy restore), then restored eagerly, mapped and working set
 * first with that estimate, the ws restore measured as the bench measures one (wsbench's ticks, the vCPU threads' run time).
 */
class TwoVcpuRestoreTest {
    private static final Duration OBSERVE = Duration.ofSeconds(5);

    @TempDir
    Path dir;

    @Test
    void aTwoVcpuGuestSavedWithDirtyAndTraceRestoresEagerlyAndWorkingSetFirst() throws Exception {
        VmConfig one = TestHost.smallGuestConfig("thaw-test-2vcpu-src");
        VmConfig two = new VmConfig(one.name(), one.machineType(), one.accel(), one.memoryMiB(), 2, one.kernel(), one.initrd(),
                one.kernelCommandLine(), false, false, one.extraArgs());
        Path imageDir = dir.resolve("image");
        GuestAgent.MemSum coldBefore;
        double opsPerSecondBefore;
        double vcpuShareBefore;
        double stalledBefore; // wsbench's stalled share with nothing restored: 0.10 in two runs here (2 vCPUs on 2 host cores, TCG)
        Saver.Result saved;
        try (QemuVm vm = QemuVm.launch(two)) {
            DemoGuest.awaitReady(vm, vm.console().cursorFromStart(), DemoGuest.BOOT_TIMEOUT);
            assertThat(vm.qmp().execute("query-cpus-fast").size()).as("the source's vCPUs").isEqualTo(2);
            try (GuestAgent agent = GuestAgent.connect(vm)) {
                agent.awaitReady(Duration.ofSeconds(30));
                coldBefore = agent.memsumCold(); // wsbench runs on: the pages outside its working set stay as they are
            }
            // The references of the bench's two TTR probes: wsbench's rate, and the vCPU threads' run share (both summed).
            long ranBefore = VcpuTime.runNanos(vm.pid());
            long from = System.nanoTime();
            List<WsbenchTick> ticksBefore = DemoGuest.collectTicks(vm.console().cursor(), Duration.ofSeconds(2));
            opsPerSecondBefore = Throughput.of(ticksBefore, Throughput.ONE_SECOND_NANOS).opsPerSecond();
            stalledBefore = stalledShare(ticksBefore);
            vcpuShareBefore = (VcpuTime.runNanos(vm.pid()) - ranBefore) / (double) (System.nanoTime() - from);
            saved = Saver.save(vm.qmp(), vm.config(), imageDir, Saver.Options.defaults().withDirtyEstimator(Duration.ofSeconds(10)), p -> {});
            vm.qmp().quit(); // the trace runs the guest on: it must not run in two QEMUs
            vm.awaitExit(Duration.ofSeconds(10));
        }
        WorkingSet dirty = saved.workingSet().orElseThrow();
        assertThat(dirty.estimator()).isEqualTo(Estimator.DIRTY);
        assertThat(dirty.size()).as("the live probe's written pages on 2 vCPUs: " + dirty.description()).isPositive();
        WorkingSet traced;
        try (CheckpointImage image = CheckpointImage.open(imageDir)) {
            assertThat(IncomingQemu.savedConfig(image).cpuCount()).isEqualTo(2);
            PostSaveTrace.Result t = EstimatingSave.traceAfterSave(image, "thaw-test-2vcpu-trace", Duration.ofSeconds(2), saved.workingSet(),
                    m -> {});
            try (QemuVm vm = t.restore().vm()) {
                assertThat(vm.qmp().execute("query-cpus-fast").size()).as("the tracing QEMU's vCPUs").isEqualTo(2);
            }
            traced = t.workingSet();
        }
        assertThat(traced.size()).as("dirty,trace: " + traced.description()).isGreaterThanOrEqualTo(dirty.size());
        WorkingSetWriter.attach(imageDir, traced);

        try (CheckpointImage image = CheckpointImage.open(imageDir)) {
            Restorer.Outcome eager = Restorer.restore(image, Restorer.Mode.EAGER, "thaw-test-2vcpu-eager", WorkingSetChoice.defaults(),
                    o -> o, s -> {});
            try (QemuVm vm = eager.vm()) {
                assertRunsOnTwoVcpus(vm, coldBefore);
            }
            // Mapped: the RAM file written from the image, the estimate's pages read into the page cache first.
            Restorer.Outcome mapped = Restorer.restore(image, Restorer.Mode.MAPPED, "thaw-test-2vcpu-mapped", WorkingSetChoice.defaults(),
                    o -> o, s -> {});
            try (QemuVm vm = mapped.vm()) {
                assertRunsOnTwoVcpus(vm, coldBefore);
            }
            String name = "thaw-test-2vcpu-ws";
            long start = System.nanoTime();
            try (QemuSampler sampler = new QemuSampler(name, start)) {
                Restorer.Outcome ws = Restorer.restore(image, Restorer.Mode.WS, name, WorkingSetChoice.defaults(), o -> o, s -> {});
                PostcopyRestore.Result r = ws.postcopy().orElseThrow();
                long running = Math.round(ws.runningSeconds() * 1e9); // from the restore's start, just after this one
                try (QemuVm vm = ws.vm()) {
                    assertThat(r.prefetchedPages()).as("the image's dirty,trace estimate first: " + ws.prefetchSizing().orElse("")).isPositive()
                            .isLessThanOrEqualTo(traced.size());
                    assertThat(r.prefetchedPages() + r.demandPages() + r.backgroundPages() + r.zeroPagesUnsent())
                            .as("every page accounted for").isEqualTo(r.pageCount());
                    // The bench's probes, as SaveRestoreBenchmark takes them: wsbench's ticks (its rate and its stalled time) ...
                    AfterRestore after = AfterRestore.observe(vm, start, running, opsPerSecondBefore, OBSERVE);
                    assertThat(after.stallsReported()).as("wsbench reports its stalled time on 2 vCPUs").isTrue();
                    assertThat(after.utilizationPerStep()).as("the guest's work per step after it ran").anySatisfy(u -> assertThat(u).isPositive());
                    // The stall TTR(1 s, 0.9) is not asserted: with 2 vCPUs wsbench reports about 10% of its time stalled with nothing
                    // restored, at the threshold (reached at 3.16 s in one run here, not within 5 s in another). What is asserted:
                    // the restore's stalls end, the guest's last 2 s stalled no more than the source's before the save, give or take
                    // 0.2: both are 2 s of a guest whose 2 vCPUs share the host's 2 CPUs with this JVM (its sampler, its JIT), and
                    // one CI run saw 0.23 against 0.075 (this restore completes in about a second: 0.69 s in a run here, so
                    // the window is seconds after it); a guest left stalling by its restore is stalled most of its time.
                    long lastFrom = start + running + OBSERVE.toNanos() - Duration.ofSeconds(2).toNanos();
                    List<WsbenchTick> last = WsbenchTick.all(vm.console().snapshot()).stream().filter(t -> t.hostNanos() >= lastFrom).toList();
                    assertThat(last).as("ticks in the observation's last 2 s").hasSizeGreaterThan(2);
                    double stalledLast = stalledShare(last);
                    assertThat(stalledLast).as("stalled share in the last 2 s against %.3f before the save", stalledBefore)
                            .isLessThan(stalledBefore + 0.2);
                    // ... and the vCPU threads' run time, both threads summed against their share before the save.
                    assertThat(VcpuTime.sample(vm.pid()).vcpuCount()).isEqualTo(2);
                    long end = running + OBSERVE.toNanos();
                    long step = AfterRestore.STEP_MILLIS * 1_000_000L;
                    HostStall byRunTime = HostStall.fromVcpuRunTime(sampler.vcpuRunSamples(), vcpuShareBefore, running, end, step);
                    assertThat(byRunTime.ttrSeconds()).as("the host-side TTR from the vCPU threads' run time").isPresent();
                    HostStall byFaults = HostStall.of(r.events(), 0, end, step);
                    System.err.printf("2 vCPUs: dirty %d pages, dirty,trace %d pages (%s); eager running after %.2f s, mapped %.2f s; ws prefetched %d pages,"
                                    + " running after %.2f s, completed after %.2f s, %d demand faults; stall TTR %s, TTR(1 s, 0.8) %s, host-side"
                                    + " TTR from faults %s, from vCPU run time %s (share before %.2f); work in %d s vs before %.2fx; wsbench stalled %.3f of its time"
                                    + " before the save, %.3f in the last 2 s%n",
                            dirty.size(), traced.size(), traced.description(), eager.runningSeconds(), mapped.runningSeconds(), r.prefetchedPages(), ws.runningSeconds(),
                            ws.completedSeconds(), r.demandFaults(), after.stallTtrSeconds().map(s -> String.format("%.2f s", s)).orElse("-"),
                            after.ttrSeconds().map(s -> String.format("%.2f s", s)).orElse("> " + OBSERVE.toSeconds() + " s"),
                            byFaults.ttrSeconds().map(s -> String.format("%.2f s", s)).orElse("-"),
                            byRunTime.ttrSeconds().map(s -> String.format("%.2f s", s)).orElse("-"), vcpuShareBefore, OBSERVE.toSeconds(),
                            after.relativeThroughput(), stalledBefore, stalledLast);
                    assertRunsOnTwoVcpus(vm, coldBefore);
                }
            }
        }
    }

    /** The share of the guest time between the first and last tick that wsbench reported stalled. */
    private static double stalledShare(List<WsbenchTick> ticks) {
        long stalled = 0;
        for (int i = 1; i < ticks.size(); i++) stalled += ticks.get(i).stalledNanos();
        return stalled / (double) (ticks.getLast().guestNanos() - ticks.getFirst().guestNanos());
    }

    private static void assertRunsOnTwoVcpus(QemuVm vm, GuestAgent.MemSum coldBefore) throws Exception {
        assertThat(vm.qmp().queryMigrate().completed()).isTrue();
        assertThat(vm.qmp().queryStatus().running()).isTrue();
        assertThat(vm.qmp().execute("query-cpus-fast").size()).as("vCPUs").isEqualTo(2);
        // The busy pace of a ws restore and the bench's host-side probes read every vCPU thread.
        assertThat(VcpuTime.sample(vm.pid()).vcpuCount()).as("vCPU threads found in /proc").isEqualTo(2);
        try (GuestAgent agent = GuestAgent.connect(vm)) {
            agent.awaitReady(Duration.ofSeconds(30));
            assertThat(agent.memsumCold()).as("the memory wsbench never rewrites").isEqualTo(coldBefore);
        }
        List<WsbenchTick> ticks = DemoGuest.collectTicks(vm.console().cursor(), Duration.ofSeconds(1));
        assertThat(ticks).as("wsbench goes on").isNotEmpty();
    }
}
