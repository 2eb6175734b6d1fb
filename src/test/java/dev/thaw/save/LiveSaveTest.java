package dev.thaw.save;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.estimate.Estimator;
import dev.thaw.estimate.WorkingSet;
import dev.thaw.guest.DemoGuest;
import dev.thaw.guest.GuestAgent;
import dev.thaw.image.CheckpointImage;
import dev.thaw.qemu.ConsoleLine;
import dev.thaw.qemu.Journal;
import dev.thaw.qemu.QemuVm;
import dev.thaw.restore.PostcopyRestore;
import dev.thaw.restore.Restorer;
import dev.thaw.restore.WorkingSetChoice;
import dev.thaw.testing.TestHost;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The dirty-bit estimator on the real QEMU: a live save while wsbench writes, the working set it
 * attaches, a ws restore from it (memory of the part wsbench never rewrites identical), and the live
 * limit that bounds the save by stopping the guest.
 */
class LiveSaveTest {
    @Test
    void liveSaveEstimatesTheWrittenWorkingSetAndRestoresFromIt(@TempDir Path dir) throws Exception {
        DemoGuest shape = TestHost.SMALL_GUEST;
        Path image = dir.resolve("image");
        GuestAgent.MemSum before;
        Saver.Result saved;
        try (QemuVm vm = QemuVm.launch(TestHost.smallGuestConfig("thaw-test-live-save"))) {
            Journal<ConsoleLine>.Cursor console = vm.console().cursorFromStart();
            DemoGuest.awaitReady(vm, console, DemoGuest.BOOT_TIMEOUT);
            DemoGuest.collectTicks(console, Duration.ofSeconds(1)); // wsbench is writing
            try (GuestAgent agent = GuestAgent.connect(vm)) {
                agent.awaitReady(Duration.ofSeconds(30));
                before = agent.memsum(shape.wsMiB(), shape.totalMiB() - shape.wsMiB());
            }
            saved = Saver.save(vm.qmp(), vm.config(), image, Saver.Options.defaults().withDirtyEstimator(Duration.ofSeconds(30)), p -> {});
        }
        System.err.printf("live save: %.2f s, downtime %.3f s, %d rounds, stopped by limit %s, %s%n", saved.durationNanos() / 1e9,
                saved.downtimeNanos() / 1e9, saved.rounds(), saved.stoppedByLimit(), saved.workingSet().map(WorkingSet::description));
        assertThat(saved.rounds()).as("QEMU re-sent what wsbench wrote during the first round").isGreaterThanOrEqualTo(2);
        WorkingSet ws = saved.workingSet().orElseThrow();
        assertThat(ws.estimator()).isEqualTo(Estimator.DIRTY);
        // wsbench rewrites its W MiB at random throughout: most of it is written during a save that lasts a second or more.
        assertThat(ws.size()).as("pages rewritten during the save").isPositive();
        try (CheckpointImage img = CheckpointImage.open(image)) {
            assertThat(img.workingSet()).contains(ws);
            img.verify();
            // HotRestore's half, fixed (--ws-fraction 0.5): the elastic default takes half or all of the estimate by how densely
            // its pages fill their 2 MiB regions, which depends on how many pages wsbench rewrote during this save (its rate).
            WorkingSetChoice half = new WorkingSetChoice(WorkingSetChoice.defaults().source(), java.util.OptionalInt.empty(),
                    java.util.OptionalDouble.of(0.5));
            Restorer.Outcome o = Restorer.restore(img, Restorer.Mode.WS, "thaw-test-live-ws", half, opt -> opt, m -> {});
            try (QemuVm vm = o.vm()) {
                PostcopyRestore.Result r = o.postcopy().orElseThrow();
                assertThat(r.prefetchedPages()).as("half of the estimated size").isEqualTo((ws.estimatedPageCount() + 1) / 2);
                assertThat(vm.qmp().queryMigrate().completed()).isTrue();
                try (GuestAgent agent = GuestAgent.connect(vm)) {
                    agent.awaitReady(Duration.ofSeconds(30));
                    assertThat(agent.memsum(shape.wsMiB(), shape.totalMiB() - shape.wsMiB())).isEqualTo(before);
                }
            }
        }
    }

    @Test
    void theLiveLimitStopsTheGuestAndTheSaveCompletes(@TempDir Path dir) throws Exception {
        try (QemuVm vm = QemuVm.launch(TestHost.smallGuestConfig("thaw-test-live-limit"))) {
            Journal<ConsoleLine>.Cursor console = vm.console().cursorFromStart();
            DemoGuest.awaitReady(vm, console, DemoGuest.BOOT_TIMEOUT);
            // The first round alone takes far longer than 1 ms: the limit always strikes.
            Saver.Result saved = Saver.save(vm.qmp(), vm.config(), dir.resolve("image"),
                    Saver.Options.defaults().withDirtyEstimator(Duration.ofMillis(1)).withKeepRunning(true), p -> {});
            assertThat(saved.stoppedByLimit()).isTrue();
            // Stopped 1 ms in, the guest stood still for nearly the whole save: the downtime reported must say so.
            assertThat(saved.downtimeNanos()).isGreaterThan(saved.durationNanos() / 2);
            assertThat(saved.guestRunning()).as("--keep-running resumes the guest the limit stopped").isTrue();
            assertThat(vm.qmp().queryStatus().running()).isTrue();
            try (CheckpointImage img = CheckpointImage.open(dir.resolve("image"))) {
                assertThat(img.workingSet()).isPresent();
            }
        }
    }
}
