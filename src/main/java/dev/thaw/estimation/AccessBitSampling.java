package dev.thaw.estimation;

import dev.thaw.estimate.AccessRecency;
import dev.thaw.estimate.PageRef;
import dev.thaw.estimate.WorkingSet;
import dev.thaw.host.AccessBitScanner;
import dev.thaw.image.Manifest;
import dev.thaw.qemu.VmConfig;
import dev.thaw.restore.HugePages;
import java.nio.file.Path;
import java.time.Duration;
import java.util.BitSet;
import java.util.function.Consumer;

/** The access-bit estimator: a local QEMU's guest RAM scanned through idle page tracking before the save. */
final class AccessBitSampling {
    private AccessBitSampling() {}

    /** Scans the accessed bits of the QEMU whose command line names {@code qmpSocket}, every {@code interval} for {@code duration}. */
    static WorkingSet scan(Path qmpSocket, VmConfig config, Duration duration, Duration interval, Consumer<String> progress)
            throws InterruptedException {
        String socket = qmpSocket.toAbsolutePath().toString();
        long pid = ProcessHandle.allProcesses().filter(p -> p.info().commandLine().map(c -> c.contains(socket)).orElse(false))
                .mapToLong(ProcessHandle::pid).findFirst().orElseThrow(() -> new IllegalArgumentException(
                        "--estimator abit: expected a local QEMU process whose command line names " + socket + ", actual none"));
        long ramBytes = config.memoryMiB() << 20;
        long start = HugePages.guestRamMapping(pid, ramBytes).orElseThrow(() -> new IllegalStateException(
                "--estimator abit: QEMU pid " + pid + " has no mapping of " + ramBytes + " bytes (its guest RAM)")).start();
        int pages = (int) (ramBytes / 4096);
        AccessRecency recency = new AccessRecency(new int[] {pages});
        try (AccessBitScanner scanner = AccessBitScanner.forProcess(pid, start, pages)) {
            scanner.mark();
            long end = System.nanoTime() + duration.toNanos();
            while (System.nanoTime() < end) {
                Thread.sleep(interval.toMillis());
                recency.scan(new BitSet[] {scanner.scan()});
                progress.accept(String.format("scanning accessed bits: %d scans, %d pages per interval", recency.scanCount(),
                        recency.sampledPageCount()));
            }
        }
        return recency.estimate(recency.scanCount());
    }

    /** The scan saw pc.ram alone, as block 0: names its block as the saved image does. */
    static WorkingSet inImage(WorkingSet scanned, Manifest manifest) {
        int block = manifest.ramBlocks().stream().map(Manifest.Block::name).toList().indexOf("pc.ram");
        return new WorkingSet(scanned.estimator(), scanned.entries().stream().map(e -> new WorkingSet.Entry(
                new PageRef(block, e.page().page()), e.firstAccessNanos())).toList(), scanned.estimatedPageCount(), scanned.description());
    }
}
