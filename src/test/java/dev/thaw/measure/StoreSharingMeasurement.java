package dev.thaw.measure;

import dev.thaw.guest.DemoGuest;
import dev.thaw.image.CheckpointImage;
import dev.thaw.image.Codec;
import dev.thaw.image.ImageWriter;
import dev.thaw.image.Manifest;
import dev.thaw.qemu.QemuVm;
import dev.thaw.restore.Restorer;
import dev.thaw.restore.WorkingSetChoice;
import dev.thaw.save.Saver;
import dev.thaw.testing.TestHost;
import dev.thaw.util.FileTrees;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

/**
 * Images sharing one store (docs/benchmarks.md, "Size, save time and a shared store (issue 17)"): a demo guest (RAM_MIB,
 * wsbench T and W) saved SAVES times while it runs on ({@code thaw save --keep-running --store STORE}, GAP_S seconds of
 * workload between saves), its source quit, then CLONES eager restores of the last image, each run GAP_S seconds and saved
 * into the same store. One line per image ({@code image N stream_bytes= image_bytes= referenced_payload= written_payload=
 * stored_pages= shared_pages= save_s=}), then the totals: the store's pack bytes on disk against the sum of the images'
 * referenced payload (what each would hold alone), and the image directories' own files.
 * {@code java -cp ... dev.thaw.measure.StoreSharingMeasurement RAM_MIB TOTAL_MIB WS_MIB SAVES CLONES GAP_S}.
 */
public final class StoreSharingMeasurement {
    private StoreSharingMeasurement() {}

    public static void main(String[] args) throws Exception {
        if (args.length != 6) throw new IllegalArgumentException("expected RAM_MIB TOTAL_MIB WS_MIB SAVES CLONES GAP_S, actual " + args.length);
        DemoGuest guest = new DemoGuest(Long.parseLong(args[0]), Long.parseLong(args[1]), Long.parseLong(args[2]));
        int saves = Integer.parseInt(args[3]);
        int clones = Integer.parseInt(args[4]);
        Duration gap = Duration.ofSeconds(Long.parseLong(args[5]));
        Path dir = Files.createTempDirectory(Path.of("/var/tmp"), "thaw-store-sharing-");
        Path store = dir.resolve("store");
        Saver.Options options = Saver.Options.defaults().withKeepRunning(true)
                .withImage(new ImageWriter.Options(Codec.LZ4, 1, 16, store));
        List<Saver.Result> results = new ArrayList<>();
        try {
            try (QemuVm vm = QemuVm.launch(guest.vmConfig("thaw-store-src", TestHost.guest(), TestHost.qemu(), TestHost.accel()))) {
                DemoGuest.awaitReady(vm, vm.console().cursorFromStart(), DemoGuest.BOOT_TIMEOUT);
                for (int i = 0; i < saves; i++) {
                    Thread.sleep(gap);
                    results.add(print("save " + (i + 1), Saver.save(vm.qmp(), vm.config(), dir.resolve("save-" + (i + 1)), options, p -> {})));
                }
                vm.qmp().quit();
                vm.awaitExit(Duration.ofSeconds(10));
            }
            Path last = dir.resolve("save-" + saves);
            for (int c = 0; c < clones; c++) {
                try (CheckpointImage img = CheckpointImage.open(last);
                     QemuVm clone = Restorer.restore(img, Restorer.Mode.EAGER, "thaw-store-clone-" + (c + 1), WorkingSetChoice.defaults(),
                             o -> o, s -> {}).vm()) {
                    Thread.sleep(gap);
                    results.add(print("clone " + (c + 1), Saver.save(clone.qmp(), clone.config(), dir.resolve("clone-" + (c + 1)), options,
                            p -> {})));
                }
            }
            long packs = bytesUnder(store);
            long alone = results.stream().mapToLong(r -> r.manifest().stats().referencedPayloadBytes()).sum();
            long ownFiles = 0;
            for (Saver.Result r : results) ownFiles += bytesUnder(r.image());
            long firstAlone = results.getFirst().manifest().stats().imageFileBytes();
            System.out.printf("total images=%d store_bytes=%d sum_referenced_payload=%d image_dirs_bytes=%d first_image_bytes=%d"
                            + " stored_over_alone=%.3f stored_over_n_first_images=%.3f%n", results.size(), packs, alone, ownFiles, firstAlone,
                    (double) (packs + ownFiles) / (alone + ownFiles), (double) (packs + ownFiles) / (firstAlone * (double) results.size()));
        } finally {
            FileTrees.deleteQuietly(dir);
        }
        System.exit(0); // the JVM's non-daemon threads of the test host's doctor end with it
    }

    private static Saver.Result print(String what, Saver.Result r) {
        Manifest.Stats s = r.manifest().stats();
        System.out.printf("image %s stream_bytes=%d image_bytes=%d referenced_payload=%d written_payload=%d stored_pages=%d shared_pages=%d"
                        + " zero_pages=%d save_s=%.3f%n", what, r.streamBytes(), s.imageFileBytes(), s.referencedPayloadBytes(),
                s.writtenPayloadBytes(), s.storedPageCount(), s.sharedPageCount(), s.zeroPageCount(), r.durationNanos() / 1e9);
        return r;
    }

    private static long bytesUnder(Path root) throws IOException {
        try (Stream<Path> files = Files.walk(root)) {
            return files.filter(Files::isRegularFile).mapToLong(p -> {
                try {
                    return Files.size(p);
                } catch (IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            }).sum();
        }
    }
}
