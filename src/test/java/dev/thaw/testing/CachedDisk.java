package dev.thaw.testing;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.guest.DemoGuest;
import dev.thaw.guest.GuestAgent;
import dev.thaw.qemu.ConsoleLine;
import dev.thaw.qemu.Journal;
import dev.thaw.qemu.QemuVm;
import java.time.Duration;

/**
 * A demo guest that read the first {@code mib} MiB of its disk 0 into its page cache and paused its workload: what a save
 * of it holds (the disk's pages), and what a restore of that save must give back.
 *
 * @param onDisk  the sum of those MiB as the guest read them
 * @param before  the guest's memory sum once paused
 * @param lastSeq the workload's last tick before the read
 */
public record CachedDisk(long mib, GuestAgent.DiskSum onDisk, GuestAgent.MemSum before, long lastSeq) {

    /** Waits for the booting demo guest {@code vm}, has its agent read the disk through its page cache, pauses its workload. */
    public static CachedDisk read(QemuVm vm, long mib) throws Exception {
        Journal<ConsoleLine>.Cursor console = vm.console().cursorFromStart();
        DemoGuest.awaitReady(vm, console, DemoGuest.BOOT_TIMEOUT);
        long lastSeq = DemoGuest.collectTicks(console, Duration.ofSeconds(1)).getLast().seq();
        // the agent's serial port serves one client: closed before anything else (a save's drop) connects
        try (GuestAgent agent = GuestAgent.connect(vm)) {
            agent.awaitReady(Duration.ofSeconds(30));
            GuestAgent.DiskSum onDisk = agent.diskRead(0, mib); // now in the guest's page cache
            assertThat(agent.diskSum(0, mib)).as("the cached read saw the disk").isEqualTo(onDisk);
            agent.pauseWorkload();
            return new CachedDisk(mib, onDisk, agent.memsum(), lastSeq);
        }
    }

    /** The restored guest reads the same bytes again ({@code readWhat} says from where), its memory is the saved one, and it runs on. */
    public void assertRestored(QemuVm restored, String readWhat) throws Exception {
        try (GuestAgent agent = GuestAgent.connect(restored)) {
            agent.awaitReady(Duration.ofSeconds(30));
            assertThat(agent.diskRead(0, mib)).as(readWhat).isEqualTo(onDisk);
        }
        RestoredGuest.assertSameMemoryAndRunsOn(restored, before, lastSeq);
    }

    /**
     * A qcow2 disk of {@code mib} MiB as a save of a disk that ran on snapshots finds it: {@code disk.qcow2} holding 8 MiB the
     * guest wrote (at 8 MiB) over {@code backing.qcow2}, named by its absolute path, both written by qemu-img, their clusters
     * not at their guest offsets. Returns the top file.
     */
    public static java.nio.file.Path qcow2Chain(java.nio.file.Path dir, long mib) throws Exception {
        java.nio.file.Path lower = RandomFiles.write(dir.resolve("lower.raw"), mib, 23);
        java.nio.file.Path backing = dir.resolve("backing.qcow2");
        java.nio.file.Path disk = dir.resolve("disk.qcow2");
        Duration timeout = Duration.ofSeconds(60);
        dev.thaw.util.ExternalCommand.check(java.util.List.of("qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", lower.toString(),
                backing.toString()), timeout);
        dev.thaw.util.ExternalCommand.check(java.util.List.of("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", backing.toString(),
                disk.toString()), timeout);
        java.nio.file.Path written = RandomFiles.write(dir.resolve("written.raw"), 8, 29);
        dev.thaw.util.ExternalCommand.check(java.util.List.of("qemu-io", "-f", "qcow2", "-c", "write -s " + written + " 8M 8M", disk.toString()), timeout);
        return disk;
    }
}
