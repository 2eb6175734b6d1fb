package dev.thaw.restore;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.estimate.PageRef;
import dev.thaw.image.CheckpointImage;
import dev.thaw.qemu.QemuVm;
import dev.thaw.qemu.VcpuTime;
import dev.thaw.qemu.VmConfig;
import dev.thaw.testing.RestoredGuest;
import dev.thaw.testing.TestHost;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A guest with 2 vCPUs (TCG runs each on a thread of its own) saved once and restored eagerly and working set first. */
class TwoVcpuRestoreTest {
    @TempDir
    Path dir;

    @Test
    void aTwoVcpuGuestRestoresEagerlyAndWorkingSetFirst() throws Exception {
        VmConfig one = TestHost.smallGuestConfig("thaw-test-2vcpu-src");
        VmConfig two = new VmConfig(one.name(), one.machineType(), one.accel(), one.memoryMiB(), 2, one.kernel(), one.initrd(),
                one.kernelCommandLine(), false, false, one.extraArgs());
        RestoredGuest.SavedGuest saved = RestoredGuest.saveGuest(two, dir.resolve("image"),
                vm -> assertThat(vm.qmp().execute("query-cpus-fast").size()).as("the source's vCPUs").isEqualTo(2));
        try (CheckpointImage image = CheckpointImage.open(saved.imageDir())) {
            assertThat(IncomingQemu.savedConfig(image).cpuCount()).isEqualTo(2);
            Restorer.Outcome eager = Restorer.restore(image, Restorer.Mode.EAGER, "thaw-test-2vcpu-eager", WorkingSetChoice.defaults(),
                    o -> o, s -> {});
            try (QemuVm vm = eager.vm()) {
                assertRunsOnTwoVcpus(vm, saved);
            }
            // Every third non-zero page of guest RAM first, the rest after the guest runs.
            List<PageRef> ws = new ArrayList<>();
            for (int p = 0; p < image.ramBlocks().getFirst().pageCount(); p += 3) {
                if (!image.isZero(0, p)) ws.add(new PageRef(0, p));
            }
            PostcopyRestore.Result r = PostcopyRestore.restore(image, PostcopyRestore.Options.ws("thaw-test-2vcpu-ws", ws, List.of()), s -> {});
            try (QemuVm vm = r.vm()) {
                assertThat(r.prefetchedPages()).isEqualTo(ws.size());
                assertThat(r.prefetchedPages() + r.demandPages() + r.backgroundPages() + r.zeroPagesUnsent())
                        .as("every page accounted for").isEqualTo(r.pageCount());
                assertRunsOnTwoVcpus(vm, saved);
                System.err.printf("2 vCPUs: eager running after %.2f s; ws running after %.2f s, completed after %.2f s, %d demand faults%n",
                        eager.runningSeconds(), r.runningNanos() / 1e9, r.completedNanos() / 1e9, r.demandFaults());
            }
        }
    }

    private static void assertRunsOnTwoVcpus(QemuVm vm, RestoredGuest.SavedGuest saved) throws Exception {
        assertThat(vm.qmp().queryMigrate().completed()).isTrue();
        assertThat(vm.qmp().queryStatus().running()).isTrue();
        assertThat(vm.qmp().execute("query-cpus-fast").size()).as("vCPUs").isEqualTo(2);
        // The busy pace of a ws restore and the bench's host-side probes read every vCPU thread.
        assertThat(VcpuTime.sample(vm.pid()).vcpuCount()).as("vCPU threads found in /proc").isEqualTo(2);
        RestoredGuest.assertSameMemoryAndRunsOn(vm, saved.before(), saved.lastSeqBefore());
    }
}
