package dev.thaw.testing;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.guest.DemoGuest;
import dev.thaw.guest.GuestAgent;
import dev.thaw.guest.WsbenchTick;
import dev.thaw.qemu.ConsoleLine;
import dev.thaw.qemu.Journal;
import dev.thaw.qemu.QemuVm;
import dev.thaw.save.Saver;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

/** What every restore must give: the saved guest's memory, and its workload going on from where it stopped. */
public final class RestoredGuest {
    private RestoredGuest() {}

    /** A small demo guest saved with its workload paused: the image, and what a restore of it must give back. */
    public record SavedGuest(Path imageDir, GuestAgent.MemSum before, long lastSeqBefore) {}

    /** Boots {@link TestHost#smallGuestConfig} as {@code vmName}, pauses its workload, sums its memory and saves it to {@code imageDir}. */
    public static SavedGuest saveSmallGuest(String vmName, Path imageDir) throws Exception {
        return saveGuest(TestHost.smallGuestConfig(vmName), imageDir, vm -> {});
    }

    /** As {@link #saveSmallGuest}, booting {@code config}; {@code beforeSave} sees the guest once its workload is paused. */
    public static SavedGuest saveGuest(dev.thaw.qemu.VmConfig config, Path imageDir, java.util.function.Consumer<QemuVm> beforeSave)
            throws Exception {
        try (QemuVm vm = QemuVm.launch(config)) {
            Journal<ConsoleLine>.Cursor console = vm.console().cursorFromStart();
            DemoGuest.awaitReady(vm, console, DemoGuest.BOOT_TIMEOUT);
            long lastSeq = DemoGuest.collectTicks(console, Duration.ofSeconds(1)).getLast().seq();
            GuestAgent.MemSum before;
            try (GuestAgent agent = GuestAgent.connect(vm)) {
                agent.awaitReady(Duration.ofSeconds(30));
                agent.pauseWorkload();
                before = agent.memsum();
            }
            beforeSave.accept(vm);
            Saver.save(vm.qmp(), vm.config(), imageDir, Saver.Options.defaults(), p -> {});
            return new SavedGuest(imageDir, before, lastSeq);
        }
    }

    /** Compares the guest's memory with the sum taken before the save (workload paused), then resumes the workload. */
    public static void assertSameMemoryAndRunsOn(QemuVm vm, GuestAgent.MemSum before, long lastSeqBefore) throws Exception {
        Journal<ConsoleLine>.Cursor console = vm.console().cursorFromStart();
        try (GuestAgent agent = GuestAgent.connect(vm)) {
            agent.awaitReady(Duration.ofSeconds(30));
            assertThat(agent.memsum()).isEqualTo(before);
            agent.resumeWorkload();
        }
        List<WsbenchTick> after = DemoGuest.collectTicks(console, Duration.ofSeconds(2));
        assertThat(after).isNotEmpty();
        assertThat(after.getFirst().seq()).isGreaterThan(lastSeqBefore);
    }
}
