package dev.thaw.guest;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.qemu.ConsoleLine;
import dev.thaw.qemu.Journal;
import dev.thaw.qemu.QemuVm;
import dev.thaw.qemu.QmpEvent;
import dev.thaw.testing.TestHost;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The demo guest on the real QEMU: boots, ticks, pauses and resumes, and its agent checksums memory. */
class GuestBootTest {
    @Test
    void bootsTicksPausesResumesAndChecksumsItsMemory() throws InterruptedException {
        try (QemuVm vm = QemuVm.launch(TestHost.smallGuestConfig("thaw-test-boot"))) {
            Journal<ConsoleLine>.Cursor console = vm.console().cursorFromStart();
            DemoGuest.awaitReady(vm, console, DemoGuest.BOOT_TIMEOUT);
            System.err.printf("demo guest ready %.2f s after launch%n", (System.nanoTime() - vm.launchedNanos()) / 1e9);

            List<WsbenchTick> ticks = collectAtLeast(console, 10, Duration.ofSeconds(60));
            assertThat(ticks).hasSizeGreaterThanOrEqualTo(10);
            assertThat(ticks).allSatisfy(t -> assertThat(t.opCount()).isPositive());
            assertThat(ticks).extracting(WsbenchTick::seq).isSorted();

            // QMP stop: no tick can be produced while the vCPU is stopped.
            Journal<QmpEvent>.Cursor events = vm.qmp().events().cursor();
            vm.qmp().stop();
            assertThat(events.await(e -> e.is("STOP"), Duration.ofSeconds(10))).isPresent();
            DemoGuest.collectTicks(console, Duration.ofMillis(300)); // lines already in flight
            assertThat(DemoGuest.collectTicks(console, Duration.ofMillis(1500))).isEmpty();
            vm.qmp().cont();
            assertThat(collectAtLeast(console, 3, Duration.ofSeconds(30))).hasSizeGreaterThanOrEqualTo(3);

            try (GuestAgent agent = GuestAgent.connect(vm)) {
                agent.awaitReady(Duration.ofSeconds(30));
                agent.pauseWorkload();
                GuestAgent.MemSum first = agent.memsum();
                // Stop and continue the whole guest between the two sums: memory must not change.
                vm.qmp().stop();
                vm.qmp().cont();
                GuestAgent.MemSum second = agent.memsum();
                assertThat(second).isEqualTo(first);
                assertThat(first.byteCount()).isEqualTo(TestHost.SMALL_GUEST.totalMiB() << 20);
                assertThat(first.checksumHex()).matches("[0-9a-f]{16}");

                agent.resumeWorkload();
                assertThat(collectAtLeast(console, 2, Duration.ofSeconds(30))).isNotEmpty();
                assertThat(agent.memsum()).as("the workload writes, so the sum must change").isNotEqualTo(first);
            }
        }
    }

    @Test
    void aScatteredWorkingSetLeavesItsColdPagesUnwrittenWhereverTheyLie() throws InterruptedException {
        DemoGuest scattered = new DemoGuest(512, 128, 32, DemoGuest.Layout.SCATTERED);
        try (QemuVm vm = QemuVm.launch(scattered.vmConfig("thaw-test-scattered", TestHost.guest(), TestHost.qemu(), TestHost.accel()))) {
            Journal<ConsoleLine>.Cursor console = vm.console().cursorFromStart();
            DemoGuest.awaitReady(vm, console, DemoGuest.BOOT_TIMEOUT);
            assertThat(vm.console().snapshot()).anySatisfy(l -> assertThat(l.text()).contains("wsbench start", "layout=scattered"));
            try (GuestAgent agent = GuestAgent.connect(vm)) {
                agent.awaitReady(Duration.ofSeconds(30));
                GuestAgent.MemSum cold = agent.memsumCold();
                GuestAgent.MemSum beyondFirstW = agent.memsum(32, 96);
                assertThat(collectAtLeast(console, 5, Duration.ofSeconds(30))).hasSizeGreaterThanOrEqualTo(5); // the workload writes
                assertThat(agent.memsumCold()).as("the pages outside the working set").isEqualTo(cold);
                assertThat(cold.byteCount()).isEqualTo((128L - 32) << 20);
                // Hot pages lie beyond the first W MiB too: that range is written, unlike with the contiguous layout.
                assertThat(agent.memsum(32, 96)).isNotEqualTo(beyondFirstW);
            }
        }
    }

    private static List<WsbenchTick> collectAtLeast(Journal<ConsoleLine>.Cursor console, int count, Duration timeout)
            throws InterruptedException {
        var ticks = new java.util.ArrayList<WsbenchTick>();
        long deadline = System.nanoTime() + timeout.toNanos();
        while (ticks.size() < count && System.nanoTime() < deadline) {
            ticks.addAll(DemoGuest.collectTicks(console, Duration.ofMillis(200)));
        }
        return ticks;
    }
}
