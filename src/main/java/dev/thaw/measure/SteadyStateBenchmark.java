package dev.thaw.measure;

import dev.thaw.estimate.PageRef;
import dev.thaw.guest.DemoGuest;
import dev.thaw.guest.GuestImage;
import dev.thaw.image.CheckpointImage;
import dev.thaw.qemu.Accel;
import dev.thaw.qemu.QemuVersion;
import dev.thaw.qemu.QemuVm;
import dev.thaw.restore.EagerRestore;
import dev.thaw.restore.HugePages;
import dev.thaw.restore.PostcopyRestore;
import dev.thaw.save.Saver;
import dev.thaw.util.FileTrees;
import java.io.PrintStream;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * Steady-state speed after each restore mode, against an eagerly restored guest (whose RAM gets
 * transparent huge pages), measured paired: the guest restored in the mode under test and a
 * reference eager restore of the same image run by turns after the restore completed. "eager" is
 * the calibration (two eager guests: the ratio should be about 1); "ws" prefetches the pages the
 * lazy restore faulted.
 */
public final class SteadyStateBenchmark {
    public record ModeRatio(String mode, int pairs, double median, double q1, double q3, long anonHugeMiB,
                            HugePages.CollapseReport collapse) {}

    public record Report(long memoryMiB, long totalMiB, long wsMiB, String layout, String accel, Duration segment, List<ModeRatio> modes) {}

    private SteadyStateBenchmark() {}

    public static Report run(DemoGuest guest, GuestImage image, QemuVersion qemu, Accel accel, Path workDir, int pairs, PrintStream log)
            throws Exception {
        Path imageDir = workDir.resolve("steady-state-image");
        FileTrees.deleteQuietly(imageDir);
        try (QemuVm vm = QemuVm.launch(guest.vmConfig("thaw-steady-src", image, qemu, accel))) {
            DemoGuest.awaitReady(vm, vm.console().cursorFromStart(), DemoGuest.BOOT_TIMEOUT);
            Thread.sleep(2000);
            Saver.save(vm.qmp(), vm.config(), imageDir, Saver.Options.defaults(), p -> {});
        }
        Duration segment = Duration.ofSeconds(3);
        Duration skip = Duration.ofMillis(700);
        long ram = guest.memoryMiB() << 20;
        List<ModeRatio> modes = new ArrayList<>();
        try (CheckpointImage img = CheckpointImage.open(imageDir)) {
            List<PageRef> learned = List.of();
            for (String mode : List.of("eager", "lazy", "lazy+collapse", "lazy+hugetlb", "ws")) {
                try (QemuVm reference = EagerRestore.restore(img, EagerRestore.Options.defaults("thaw-steady-ref"), p -> {}).vm()) {
                    QemuVm tested;
                    HugePages.CollapseReport collapse = null;
                    if (mode.equals("eager")) {
                        tested = EagerRestore.restore(img, EagerRestore.Options.defaults("thaw-steady-eager"), p -> {}).vm();
                    } else {
                        PostcopyRestore.Result r = PostcopyRestore.restore(img, PostcopyRestore.Options.lazy("thaw-steady-" + mode.replace('+', '-'))
                                .withWorkingSet(mode.equals("ws") ? learned : List.of())
                                .withGuestRam(mode.endsWith("collapse") ? PostcopyRestore.GuestRam.COLLAPSE_AFTER
                                        : mode.endsWith("hugetlb") ? PostcopyRestore.GuestRam.HUGETLB : PostcopyRestore.GuestRam.DEFAULT),
                                m -> {});
                        tested = r.vm();
                        collapse = r.collapse().orElse(null);
                        if (mode.equals("lazy")) {
                            learned = r.faultedPages();
                        }
                    }
                    try (tested) {
                        Thread.sleep(1000);
                        PairedThroughput.Result p = PairedThroughput.measure(tested, reference, pairs, segment, skip);
                        long huge = HugePages.guestRamMapping(tested.pid(), ram)
                                .map(m -> m.flags().contains("ht") ? ram >> 20 : m.anonHugeBytes() >> 20).orElse(-1L);
                        ModeRatio m = new ModeRatio(mode, p.pairCount(), p.median(), p.q1(), p.q3(), huge, collapse);
                        log.printf("  %s vs eager: median %.3f (IQR %.3f-%.3f, %d pairs), %d MiB of guest RAM in huge pages%n", mode,
                                m.median(), m.q1(), m.q3(), m.pairs(), huge);
                        modes.add(m);
                    }
                }
            }
        } finally {
            FileTrees.deleteQuietly(imageDir);
        }
        return new Report(guest.memoryMiB(), guest.totalMiB(), guest.wsMiB(), guest.layout().key(), accel.qemuName(), segment, List.copyOf(modes));
    }
}
