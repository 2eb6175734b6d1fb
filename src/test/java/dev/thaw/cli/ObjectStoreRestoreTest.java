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
 * The small demo guest saved, pushed with {@code thaw push} to a real S3-compatible server (s3proxy), fetched as
 * {@code thaw restore s3://...} fetches it (its working set's copy first) and restored from there: the guest's memory
 * as saved. The standard AWS settings are given as the SDK's system properties (a test cannot set environment variables).
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
            Path fetched = ObjectStoreImages.localDirectory("s3://thaw-vms/vms/small", new PrintStream(status, true, StandardCharsets.UTF_8));
            String line = status.toString(StandardCharsets.UTF_8).strip();
            System.err.println(line);
            assertThat(line).contains("fetched s3://thaw-vms/vms/small into " + dir.resolve("cache/images")).contains("working set's copy");
            String fetchedBefore = dev.thaw.testing.TreeDigest.of(fetched);
            try (CheckpointImage img = CheckpointImage.open(fetched)) {
                Restorer.Outcome o = Restorer.restore(img, Restorer.Mode.WS, "thaw-test-s3-ws", WorkingSetChoice.defaults(), opt -> opt, m -> {});
                try (QemuVm vm = o.vm()) {
                    RestoredGuest.assertSameMemoryAndRunsOn(vm, saved.before(), saved.lastSeqBefore());
                }
            }
            assertThat(dev.thaw.testing.TreeDigest.of(fetched)).as("the restore left the fetched image as it was").isEqualTo(fetchedBefore);
            ImageCommandsTest.Run pull = ImageCommandsTest.run("pull", "s3://thaw-vms/vms/small", Files.createDirectories(dir.resolve("pulled")).toString());
            assertThat(pull.exit()).as("thaw pull: " + pull.err()).isZero();
            System.err.println(pull.out().strip());
        } finally {
            properties.keySet().forEach(System::clearProperty);
        }
    }
}
