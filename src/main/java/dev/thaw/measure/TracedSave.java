package dev.thaw.measure;

import dev.thaw.estimate.WorkingSet;
import dev.thaw.estimation.EstimatingSave;
import dev.thaw.guest.GuestImage;
import dev.thaw.image.CheckpointImage;
import dev.thaw.image.WorkingSetWriter;
import dev.thaw.qemu.Accel;
import dev.thaw.qemu.QemuVersion;
import dev.thaw.qemu.QemuVm;
import dev.thaw.restore.PostSaveTrace;
import dev.thaw.restore.RamFiles;
import dev.thaw.save.Saver;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.time.Duration;

/**
 * The demo guest saved once with the dirty,trace estimate attached (as {@code thaw save --estimator dirty,trace}), its source
 * quit (its RAM would be counted against the restores otherwise): the image the clones and remote studies restore many times.
 */
final class TracedSave {
    /**
     * @param before     the source's rate before the save, alone on the host: the reference of TTR and of the work after
     * @param imageBytes the image's files
     * @param vcpus      the source's vCPUs
     */
    record Result(Workload.Before before, long imageBytes, int vcpus, String workingSet) {}

    private TracedSave() {}

    /** @param ramFile also write the RAM file a mapped restore maps (as {@code thaw save --ram-file}), before any restore */
    static Result save(Workload.Wsbench g, Path image, String name, GuestImage guestImage, QemuVersion qemu, Accel accel, Duration observe,
                       Duration liveLimit, Duration trace, boolean ramFile, PrintStream log) throws IOException, InterruptedException {
        try (QemuVm vm = QemuVm.launch(g.vmConfig(name + "-src", guestImage, qemu, accel))) {
            g.awaitReady(vm);
            int vcpus = vm.config().cpuCount();
            Thread.sleep(2000); // let the workload run before it is measured
            Workload.Before before = g.before(vm, observe);
            log.printf("  source: %s ops/s before the save%n", Demo.human(before.opsPerSecond()));
            Saver.Result saved = Saver.save(vm.qmp(), vm.config(), image, Saver.Options.defaults().withDirtyEstimator(liveLimit), p -> {});
            long imageBytes = saved.manifest().stats().imageFileBytes();
            vm.qmp().quit();
            vm.awaitExit(Duration.ofSeconds(10));
            try (CheckpointImage img = CheckpointImage.open(image)) {
                PostSaveTrace.Result t = EstimatingSave.traceAfterSave(img, name + "-trace", trace, saved.workingSet(), m -> {});
                t.restore().vm().close();
                WorkingSet ws = t.workingSet();
                WorkingSetWriter.attach(image, ws);
                log.printf("  saved: %d MiB image, working set (dirty,trace) %s%n", imageBytes >> 20, ws.description());
                if (ramFile) RamFiles.write(img);
                return new Result(before, imageBytes, vcpus, ws.description());
            }
        }
    }
}
