package dev.thaw.measure;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.guest.RedisGuest;
import dev.thaw.image.CheckpointImage;
import dev.thaw.qemu.QemuVm;
import dev.thaw.restore.PostcopyRestore;
import dev.thaw.save.Saver;
import dev.thaw.testing.TestHost;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The real application: Redis from Debian's packages in the guest, a client on the host over QEMU
 * user networking. The client checks every value it reads, so a restore that lost or mixed up
 * memory fails here; the restored guest must serve from the moment it runs.
 */
class RedisWorkloadTest {
    static final RedisGuest GUEST = RedisGuest.of(512, 48, 16);

    @Test
    void redisServesTheSameDataAfterALazyRestore(@TempDir Path dir) throws Exception {
        Workload.Redis redis = new Workload.Redis(GUEST);
        Path image = dir.resolve("image");
        Workload.Before before;
        try (QemuVm vm = QemuVm.launch(GUEST.vmConfig("thaw-test-redis-src", TestHost.guest(), TestHost.qemu(), TestHost.accel()))) {
            redis.awaitReady(vm);
            before = redis.before(vm, Duration.ofSeconds(1));
            assertThat(before.opsPerSecond()).isPositive();
            assertThat(before.latency().requests()).isPositive();
            assertThat(before.latency().failures()).isZero();
            Saver.save(vm.qmp(), vm.config(), image, Saver.Options.defaults(), p -> {});
        }
        long start = System.nanoTime();
        try (CheckpointImage img = CheckpointImage.open(image);
             Workload.Observation watch = redis.observe("thaw-test-redis-lazy", start, before)) {
            PostcopyRestore.Result r = PostcopyRestore.restore(img, PostcopyRestore.Options.lazy("thaw-test-redis-lazy"), m -> {});
            try (QemuVm vm = r.vm()) {
                AfterRestore after = watch.finish(vm, r.runningNanos(), Duration.ofSeconds(2));
                System.err.printf("redis after a lazy restore: %s, before %.0f requests/s%n", after, before.opsPerSecond());
                assertThat(after.latency().requests()).as("requests answered (each value checked)").isPositive();
                assertThat(after.relativeThroughput()).isPositive();
                assertThat(r.demandFaults()).isPositive();
            }
        }
    }

    @Test
    void aDatasetTooLargeForTheGuestIsRefused() {
        assertThatThrownBy(() -> RedisGuest.of(512, 400, 16)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("expected it to fit the guest").hasMessageContaining("RAM 512 MiB");
    }
}
