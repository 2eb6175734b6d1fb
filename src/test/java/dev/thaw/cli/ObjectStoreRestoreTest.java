package dev.thaw.cli;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.estimate.Estimator;
import dev.thaw.estimate.PageRef;
import dev.thaw.estimate.WorkingSet;
import dev.thaw.image.CheckpointImage;
import dev.thaw.image.WorkingSetWriter;
import dev.thaw.objectstore.ImageCache;
import dev.thaw.qemu.QemuVm;
import dev.thaw.restore.Restorer;
import dev.thaw.restore.WorkingSetChoice;
import dev.thaw.testing.RestoredGuest;
import dev.thaw.testing.S3Server;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The small demo guest saved, pushed with {@code thaw push} to a real S3-compatible server (s3proxy), opened as
 * {@code thaw restore s3://...} opens it (its files fetched, its packs arriving while the ws restore reads them: the
 * working set's copy first in the background, what the restore reads sooner by small range GETs): the guest's memory as
 * saved, every pack whole and checked afterwards. The standard AWS settings are given as the SDK's system properties (a test cannot set environment variables).
 */
class ObjectStoreRestoreTest {
    /** Bucket thaw-vms on {@code server}, its settings and the cache's directory as system properties, recorded in {@code set}. */
    private static void useServer(S3Server server, Path cache, Map<String, String> set) {
        server.createBucket("thaw-vms");
        set.put("aws.endpointUrlS3", server.endpoint().toString());
        set.put("aws.accessKeyId", S3Server.ACCESS_KEY);
        set.put("aws.secretAccessKey", S3Server.SECRET_KEY);
        set.put("aws.region", "us-east-1");
        set.put(ImageCache.DIRECTORY_PROPERTY, cache.toString());
        set.forEach(System::setProperty);
    }

    @Test
    void aGuestPushedToObjectStorageRestoresFromThereWithItsMemory(@TempDir Path dir) throws Exception {
        Path image = dir.resolve("small");
        RestoredGuest.SavedGuest saved = RestoredGuest.saveSmallGuest("thaw-test-s3-save", image);
        List<PageRef> queue = new ArrayList<>();
        try (CheckpointImage img = CheckpointImage.open(image)) {
            for (int p = 0; p < img.ramBlocks().getFirst().pageCount() && queue.size() < 4096; p++) {
                if (!img.isZero(0, p)) queue.add(new PageRef(0, p));
            }
        }
        WorkingSetWriter.attach(image, WorkingSet.of(Estimator.TRACE, queue, queue.size(), "the first 4096 stored pages"));
        Map<String, String> properties = new java.util.LinkedHashMap<>();
        try (S3Server server = new S3Server(dir.resolve("s3"))) {
            useServer(server, dir.resolve("cache"), properties);

            ImageCommandsTest.Run push = ImageCommandsTest.run("push", image.toString(), "s3://thaw-vms/vms", "--json");
            assertThat(push.exit()).as("thaw push: " + push.err()).isZero();
            System.err.println("push: " + push.out().strip());
            assertThat(push.out()).contains("\"image\" : \"s3://thaw-vms/vms/small\"");

            ByteArrayOutputStream status = new ByteArrayOutputStream();
            try (ObjectStoreImages.Source source = ObjectStoreImages.open("s3://thaw-vms/vms/small",
                    new PrintStream(status, true, StandardCharsets.UTF_8))) {
                String line = status.toString(StandardCharsets.UTF_8).strip();
                System.err.println(line);
                assertThat(line).contains("opened s3://thaw-vms/vms/small in " + dir.resolve("cache/images")).contains("arriving");
                assertThat(source.opened().lazyPacks()).as("packs to fetch while the restore reads them").isNotNull();
                long start = System.nanoTime();
                try (CheckpointImage img = source.openImage()) {
                    Restorer.Outcome o = Restorer.restore(img, Restorer.Mode.WS, "thaw-test-s3-ws", WorkingSetChoice.defaults(), opt -> opt,
                            m -> {});
                    try (QemuVm vm = o.vm()) {
                        System.err.printf("ws restore from object storage: QEMU ready %.2f s, running %.2f s, completed %.2f s (the"
                                        + " restore's own times); %.2f s since the image opened; fetched by then: %s%n", o.qemuReadySeconds(),
                                o.runningSeconds(), o.completedSeconds(), (System.nanoTime() - start) / 1e9, source.opened().counts());
                        RestoredGuest.assertSameMemoryAndRunsOn(vm, saved.before(), saved.lastSeqBefore());
                    }
                }
                source.opened().awaitAll(java.time.Duration.ofSeconds(120));
                System.err.println("fetched in all: " + source.opened().counts());
                assertThat(source.opened().counts().done()).as("every pack fetched and checked whole").isTrue();
            }
            try (var markers = Files.list(dir.resolve("cache/packs"))) {
                assertThat(markers.map(p -> p.getFileName().toString())).as("packs left unfinished").noneMatch(n -> n.endsWith(".partial"));
            }
            ImageCommandsTest.Run pull = ImageCommandsTest.run("pull", "s3://thaw-vms/vms/small", Files.createDirectories(dir.resolve("pulled")).toString());
            assertThat(pull.exit()).as("thaw pull: " + pull.err()).isZero();
            System.err.println(pull.out().strip());

            // The name removed from the bucket, then its objects: a dry run first, which deletes nothing.
            ImageCommandsTest.Run rm = ImageCommandsTest.run("rm", "s3://thaw-vms/vms/small");
            assertThat(rm.exit()).as("thaw rm: " + rm.err()).isZero();
            assertThat(rm.out()).contains("removed image s3://thaw-vms/vms/small (" + CheckpointImage.open(image).manifest().imageId() + ")");
            ImageCommandsTest.Run dry = ImageCommandsTest.run("gc", "s3://thaw-vms/vms", "--dry-run");
            assertThat(dry.exit()).as("thaw gc --dry-run: " + dry.err()).isZero();
            assertThat(dry.out()).contains("0 images").contains("would delete").contains("packs/pack-");
            ImageCommandsTest.Run gc = ImageCommandsTest.run("gc", "s3://thaw-vms/vms", "--json");
            assertThat(gc.exit()).as("thaw gc: " + gc.err()).isZero();
            System.err.println("gc: " + gc.out().strip());
            try (dev.thaw.objectstore.ObjectStore store = new dev.thaw.objectstore.ObjectStore(server.settings(), "thaw-vms")) {
                assertThat(store.list("vms/")).as("the bucket's objects under vms/ after the gc").allMatch(o -> o.key().endsWith("/"));
            }
        } finally {
            properties.keySet().forEach(System::clearProperty);
        }
    }

    /**
     * The small demo guest with a writable qcow2 disk (24 MiB over a backing file named by its absolute path) read into its
     * page cache, saved (its cached disk pages references into both files), pushed with the disk's chain, the chain's files
     * then moved away: {@code thaw restore s3://}'s way fetches the chain into the cache and restores onto an overlay of the
     * copies; the guest's memory is the saved one, its page cache still holds the disk, and the disk read past the cache is
     * the saved one too.
     */
    @Test
    void aGuestWithADiskRestoresFromObjectStorageWithItsDisk(@TempDir Path dir) throws Exception {
        long mib = 24;
        Path disk = dev.thaw.testing.CachedDisk.qcow2Chain(Files.createDirectories(dir.resolve("disks")), mib);
        dev.thaw.qemu.VmConfig config = new dev.thaw.guest.DemoGuest(512, 32, 16).vmConfig("thaw-test-s3-disk", dev.thaw.testing.TestHost.guest(),
                        dev.thaw.testing.TestHost.qemu(), dev.thaw.testing.TestHost.accel())
                .withDisks(List.of(new dev.thaw.qemu.VmConfig.Disk("disk0", "qcow2", disk, false, "05.0")));
        Path image = dir.resolve("withdisk");
        dev.thaw.testing.CachedDisk cached;
        try (QemuVm vm = QemuVm.launch(config)) {
            cached = dev.thaw.testing.CachedDisk.read(vm, mib);
            dev.thaw.save.Saver.Result saved = dev.thaw.save.Saver.save(vm.qmp(), config, image, dev.thaw.save.Saver.Options.defaults(), p -> {});
            assertThat(saved.manifest().stats().diskReferenceBytes()).as("the disk the guest read is referenced, not stored")
                    .isGreaterThanOrEqualTo((mib - 4) << 20);
            assertThat(saved.manifest().formatVersion()).isEqualTo(dev.thaw.image.Manifest.VERSION_WITH_BACKING_REFS);
        }
        Map<String, String> properties = new java.util.LinkedHashMap<>();
        try (S3Server server = new S3Server(dir.resolve("s3"))) {
            useServer(server, dir.resolve("cache"), properties);

            ImageCommandsTest.Run push = ImageCommandsTest.run("push", image.toString(), "s3://thaw-vms/vms");
            assertThat(push.exit()).as("thaw push: " + push.err()).isZero();
            System.err.println("push: " + push.out().strip());
            Files.move(dir.resolve("disks"), dir.resolve("disks-gone")); // the saving host's files: the restore must not find them

            ByteArrayOutputStream status = new ByteArrayOutputStream();
            try (ObjectStoreImages.Source source = ObjectStoreImages.open("s3://thaw-vms/vms/withdisk",
                    new PrintStream(status, true, StandardCharsets.UTF_8))) {
                System.err.println(status.toString(StandardCharsets.UTF_8).strip());
                try (CheckpointImage img = source.openImage()) {
                    assertThat(img.diskBase(0).toRealPath()).as("the base's copy in the cache").startsWith(dir.toRealPath().resolve("cache/bases"));
                    Restorer.Outcome o = Restorer.restore(img, Restorer.Mode.LAZY, "thaw-test-s3-disk-lazy", WorkingSetChoice.defaults(),
                            opt -> opt, m -> {});
                    try (QemuVm vm = o.vm()) {
                        System.err.printf("lazy restore of a guest with a disk from object storage: running %.2f s, completed %.2f s%n",
                                o.runningSeconds(), o.completedSeconds());
                        cached.assertRestored(vm, "the disk read again, through the restored page cache");
                        try (dev.thaw.guest.GuestAgent agent = dev.thaw.guest.GuestAgent.connect(vm)) {
                            agent.awaitReady(java.time.Duration.ofSeconds(30));
                            assertThat(agent.diskSum(0, mib)).as("the disk read past the cache: the copies' chain").isEqualTo(cached.onDisk());
                        }
                    }
                }
            }
        } finally {
            properties.keySet().forEach(System::clearProperty);
        }
    }
}
