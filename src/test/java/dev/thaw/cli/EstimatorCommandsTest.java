package dev.thaw.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import dev.thaw.guest.DemoGuest;
import dev.thaw.qemu.QemuVm;
import dev.thaw.testing.TestHost;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * save --estimator dirty,trace through the CLI on the real QEMU: a live save, the guest going on in a
 * new QEMU while its first touches are traced, the trace stored in the image with the hybrid size,
 * and a ws restore from it.
 */
class EstimatorCommandsTest {
    @Test
    void saveWithDirtyAndTraceThenRestoreFromTheTrace(@TempDir Path dir) throws Exception {
        Path image = dir.resolve("img");
        ImageCommandsTest.Run abit = ImageCommandsTest.run("save", "--qmp", dir.resolve("none.sock").toString(), "--out", image.toString(),
                "--estimator", "abit");
        assertThat(abit.exit()).isNotZero();
        if (!Files.exists(Path.of("/sys/kernel/mm/page_idle/bitmap"))) {
            assertThat(abit.err()).contains("no idle page tracking").contains("use --estimator dirty or trace");
        }

        JsonNode saved;
        try (QemuVm vm = QemuVm.launch(TestHost.smallGuestConfig("thaw-test-cli-estimators"))) {
            DemoGuest.awaitReady(vm, vm.console().cursorFromStart(), DemoGuest.BOOT_TIMEOUT);
            Thread.sleep(1000); // wsbench writing
            ImageCommandsTest.Run save = ImageCommandsTest.run("save", "--qmp", vm.extraQmpSocket().toString(), "--out", image.toString(),
                    "--estimator", "dirty,trace", "--trace-seconds", "2", "--exit", "--json");
            assertThat(save.exit()).as(save.err()).isZero();
            saved = Json.MAPPER.readTree(save.out());
            assertThat(vm.awaitExit(Duration.ofSeconds(10))).as("the original QEMU quit: the guest went on in a new one").isTrue();
        }
        assertThat(saved.path("estimator").asText()).isEqualTo("dirty,trace");
        assertThat(saved.path("rounds").asInt()).isGreaterThanOrEqualTo(2);
        assertThat(saved.path("tracedQmpSocket").asText()).endsWith("qmp-extra.sock");
        long traced = saved.path("workingSetPages").asLong();
        assertThat(traced).as("the probe's pages and those the guest touched in the 2 s after the save that they missed").isPositive();

        JsonNode ws = Json.MAPPER.readTree(ImageCommandsTest.run("ws", image.toString(), "--json").out());
        assertThat(ws.path("section").path("estimator").asText()).isEqualTo("trace");
        assertThat(ws.path("section").path("queuedPages").asLong()).isEqualTo(traced);
        assertThat(ws.path("section").path("estimatedPages").asLong()).isEqualTo(saved.path("estimatedWorkingSetPages").asLong());
        // The trace ran with the probe's pages prefetched: the misses it saw, then those pages; the union is the size.
        assertThat(ws.path("section").path("description").asText()).contains("with the dirty-bit sample prefetched").contains("then the sample's");
        assertThat(saved.path("estimatedWorkingSetPages").asLong()).isEqualTo(traced);
        assertThat(ws.path("wsRestoreUses").asText()).as("the section is newer than the tracing restore's own trace").isEqualTo("image");

        // 4 KiB pages asked for: thaw ws plans as a 4 KiB restore does (auto may take 2 MiB pages here, which move whole regions).
        ImageCommandsTest.Run restore = ImageCommandsTest.run("restore", image.toString(), "--exit", "--json", "--name", "thaw-test-cli-est-ws",
                "--guest-ram", "4k");
        assertThat(restore.exit()).as(restore.err()).isZero();
        JsonNode r = Json.MAPPER.readTree(restore.out());
        assertThat(r.path("mode").asText()).as("an image with a working set restores ws by default").isEqualTo("ws");
        // The elastic size: half of a clustered estimate, the whole of a scattered one; the restore says which.
        long estimated = ws.path("section").path("estimatedPages").asLong();
        String sizing = r.path("prefetchSizing").asText();
        assertThat(sizing).matches("(clustered|scattered) estimate .*");
        assertThat(r.path("prefetchedPages").asLong()).as(sizing)
                .isEqualTo(Math.min(traced, sizing.startsWith("clustered") ? (estimated + 1) / 2 : estimated));
        assertThat(ws.path("prefetchSizing").asText()).as("thaw ws reports the same choice").isEqualTo(sizing);
    }
}
