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
            server.createBucket("thaw-vms");
            properties.put("aws.endpointUrlS3", server.endpoint().toString());
            properties.put("aws.accessKeyId", S3Server.ACCESS_KEY);
            properties.put("aws.secretAccessKey", S3Server.SECRET_KEY);
            properties.put("aws.region", "us-east-1");
            properties.put(ImageCache.DIRECTORY_PROPERTY, dir.resolve("cache").toString());
            properties.forEach(System::setProperty);

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
        } finally {
            properties.keySet().forEach(System::clearProperty);
        }
    }
}
