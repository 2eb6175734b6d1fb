package dev.thaw.testing;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.guest.DemoGuest;
import dev.thaw.guest.GuestAgent;
import dev.thaw.guest.WsbenchTick;
import dev.thaw.qemu.ConsoleLine;
import dev.thaw.qemu.Journal;
import dev.thaw.qemu.QemuVm;
import java.time.Duration;
import java.util.List;

/** What every restore must give: the saved guest's memory, and its workload going on from where it stopped. */
public final class RestoredGuest {
    private RestoredGuest() {}

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
