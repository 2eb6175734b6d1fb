package dev.thaw.testing;

import dev.thaw.measure.QemuSampler;
import dev.thaw.qemu.QemuVm;
import java.time.Duration;

/** QEMU's resident memory as a guest's freed pages leave it (free-page reporting discards them a few seconds after). */
public final class ResidentMemory {
    private static final long SETTLED_BYTES = 1L << 20;
    private static final Duration POLL = Duration.ofMillis(100);

    private ResidentMemory() {}

    /**
     * Waits until QEMU's resident memory has moved by less than 1 MiB for {@code quiet} (the guest kernel reports free pages
     * 2 s after a free, so {@code quiet} must be longer than that) and returns it, in bytes; fails after {@code timeout}.
     */
    public static long awaitSettled(QemuVm vm, Duration quiet, Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        long reference = QemuSampler.residentBytes(vm.pid());
        long since = System.nanoTime();
        while (System.nanoTime() < deadline) {
            Thread.sleep(POLL);
            long now = QemuSampler.residentBytes(vm.pid());
            if (Math.abs(now - reference) >= SETTLED_BYTES) {
                reference = now;
                since = System.nanoTime();
            } else if (System.nanoTime() - since >= quiet.toNanos()) {
                return now;
            }
        }
        throw new IllegalStateException(vm.name() + ": QEMU's resident memory did not settle (less than 1 MiB of change for "
                + quiet.toMillis() + " ms) within " + timeout.toSeconds() + " s: expected it settled, actual " + (reference >> 20)
                + " MiB and still moving; " + vm.describeState());
    }
}
