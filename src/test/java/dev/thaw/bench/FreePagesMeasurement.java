package dev.thaw.bench;

import dev.thaw.guest.DemoGuest;
import dev.thaw.guest.GuestAgent;
import dev.thaw.image.CheckpointImage;
import dev.thaw.image.Manifest;
import dev.thaw.qemu.ConsoleLine;
import dev.thaw.qemu.FreePages;
import dev.thaw.qemu.Journal;
import dev.thaw.qemu.QemuVm;
import dev.thaw.save.Saver;
import dev.thaw.testing.ResidentMemory;
import dev.thaw.testing.TestHost;
import dev.thaw.util.FileTrees;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;

/**
 * One run of the free-pages measurement (docs/benchmarks.md, "Free pages (issue 17)"): boots a demo guest of RAM_MIB with a
 * small wsbench region (32 MiB, 16 hot) and the balloon as asked, lets freemem write and free FREE_MIB (capped by what the guest
 * has available), waits until QEMU's resident memory has settled (3 s without a 1 MiB change), pauses wsbench and saves the
 * stopped guest with the default options; prints one line: {@code free-pages CHOICE freed_mib= resident_mib= stream_bytes=
 * image_bytes= stored_pages= zero_pages= save_s=}. Run one at a time, interleaved by the caller:
 * {@code java -cp ... dev.thaw.bench.FreePagesMeasurement none|report|report,hint RAM_MIB FREE_MIB}.
 */
public final class FreePagesMeasurement {
    private FreePagesMeasurement() {}

    public static void main(String[] args) throws Exception {
        if (args.length != 3) throw new IllegalArgumentException("expected CHOICE RAM_MIB FREE_MIB, actual " + args.length + " arguments");
        FreePages choice = FreePages.parse(args[0]);
        DemoGuest guest = new DemoGuest(Long.parseLong(args[1]), 32, 16);
        long freeMiB = Long.parseLong(args[2]);
        Path dir = Files.createTempDirectory("thaw-free-pages-");
        try (QemuVm vm = QemuVm.launch(guest.vmConfig("thaw-free-pages", TestHost.guest(), TestHost.qemu(), TestHost.accel(), choice,
                freeMiB))) {
            Journal<ConsoleLine>.Cursor console = vm.console().cursorFromStart();
            long freed = DemoGuest.awaitFreed(vm, console, DemoGuest.BOOT_TIMEOUT);
            DemoGuest.awaitReady(vm, console, Duration.ofSeconds(60));
            long resident = ResidentMemory.awaitSettled(vm, Duration.ofSeconds(3), Duration.ofSeconds(60));
            try (GuestAgent agent = GuestAgent.connect(vm)) {
                agent.awaitReady(Duration.ofSeconds(30));
                agent.pauseWorkload();
            }
            Saver.Result saved = Saver.save(vm.qmp(), vm.config(), dir.resolve("image"), Saver.Options.defaults(), p -> {});
            try (CheckpointImage image = CheckpointImage.open(saved.image())) {
                Manifest.Stats s = image.manifest().stats();
                System.out.printf("free-pages %s freed_mib=%d resident_mib=%d stream_bytes=%d image_bytes=%d stored_pages=%d zero_pages=%d"
                                + " save_s=%.3f%n", args[0], freed, resident >> 20, saved.streamBytes(), s.imageFileBytes(),
                        s.storedPageCount(), s.zeroPageCount(), saved.durationNanos() / 1e9);
            }
        } finally {
            FileTrees.deleteQuietly(dir);
        }
        System.exit(0); // the JVM's non-daemon threads of the test host's doctor end with it
    }
}
