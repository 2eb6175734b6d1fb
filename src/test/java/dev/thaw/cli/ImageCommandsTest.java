package dev.thaw.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import dev.thaw.image.Codec;
import dev.thaw.image.ImageWriter;
import dev.thaw.testing.Seeds;
import dev.thaw.testing.SyntheticGuest;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code thaw inspect} on a good and a damaged image. */
class ImageCommandsTest {
    record Run(int exit, String out, String err) {}

    static Run run(String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        PrintStream o = System.out;
        PrintStream e = System.err;
        System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
        System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
        try {
            int exit = ThawCli.commandLine(args).execute(args);
            return new Run(exit, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
        } finally {
            System.setOut(o);
            System.setErr(e);
        }
    }

    /** save takes an image directory to write, or --recover (which writes none), before it touches any VM. */
    @Test
    void saveWantsAnImageDirectoryOrRecoverAndNotBoth(@org.junit.jupiter.api.io.TempDir Path dir) {
        Path socket = dir.resolve("qmp.sock");
        Run neither = run("save", "--qmp", socket.toString());
        assertThat(neither.exit()).isEqualTo(1);
        assertThat(neither.err()).contains("thaw save: expected --out DIR (or --recover), actual neither");
        Run both = run("save", "--qmp", socket.toString(), "--recover", "--out", dir.resolve("img").toString());
        assertThat(both.exit()).isEqualTo(1);
        assertThat(both.err()).contains("thaw save: --recover saves nothing: expected no --out, actual --out " + dir.resolve("img"));
    }

    @Test
    void inspectPrintsStatsAndVerifyCatchesDamage(@TempDir Path dir) throws Exception {
        SyntheticGuest guest = SyntheticGuest.random(Seeds.random("inspect"), 2, 300, 0.4, 0.2);
        Path image = dir.resolve("img");
        dev.thaw.image.ImageRoundTripTest.saveInto(image, guest, new ImageWriter.Options(Codec.LZ4, 1, 16, null));

        Run plain = run("inspect", image.toString(), "--verify");
        assertThat(plain.exit()).as(plain.err()).isZero();
        assertThat(plain.out()).contains("pc.ram", "zero", "compression", "verified:");

        Run json = run("inspect", image.toString(), "--json");
        JsonNode node = Json.MAPPER.readTree(json.out());
        assertThat(node.path("manifest").path("stats").path("pageCount").asLong()).isPositive();
        assertThat(node.path("manifest").path("storage").path("codec").asText()).isEqualTo("lz4");

        Path pack;
        try (var files = java.nio.file.Files.list(image.resolve("store"))) {
            pack = files.findFirst().orElseThrow();
        }
        try (RandomAccessFile f = new RandomAccessFile(pack.toFile(), "rw")) {
            f.seek(200);
            int b = f.read();
            f.seek(200);
            f.write(b ^ 0x10);
        }
        Run damaged = run("inspect", image.toString(), "--verify");
        assertThat(damaged.exit()).isNotZero();
        assertThat(damaged.err()).contains(pack.getFileName().toString()).contains("offset").contains("expected");
    }

    @Test
    void rmGcAndStoreVerifyShareOneStoreSafely(@TempDir Path dir) throws Exception {
        SyntheticGuest guest = SyntheticGuest.random(Seeds.random("rmGcAndStoreVerifyShareOneStoreSafely"), 1, 200, 0.2, 0.1);
        Path store = dir.resolve("store");
        ImageWriter.Options options = new ImageWriter.Options(Codec.ZSTD, 1, 16, store);
        dev.thaw.image.ImageRoundTripTest.saveInto(dir.resolve("a"), guest, options);
        guest.pages[0][0] = new byte[4096];
        guest.pages[0][0][5] = 5;
        dev.thaw.image.ImageRoundTripTest.saveInto(dir.resolve("b"), guest, options);

        Run verified = run("inspect", store.toString(), "--verify");
        assertThat(verified.exit()).as(verified.err()).isZero();
        assertThat(verified.out()).contains("2 images open", "2 packs", "all checksums match");
        assertThat(run("inspect", store.toString()).err()).contains("expected --verify");

        java.nio.file.Path traces = dev.thaw.restore.RestoreTraces.directoryFor(dir.resolve("b"));
        java.nio.file.Files.createDirectories(traces);
        java.nio.file.Files.writeString(traces.resolve("000001-lazy-x.json"), "{}"); // as a restore of b left it
        Run rm = run("rm", dir.resolve("b").toString());
        assertThat(rm.exit()).as(rm.err()).isZero();
        assertThat(rm.out()).contains("thaw gc " + store, "its restore traces");
        assertThat(dir.resolve("b")).doesNotExist();
        assertThat(traces).as("the image's restore traces go with it").doesNotExist();

        Run gc = run("gc", store.toString(), "--json");
        assertThat(gc.exit()).as(gc.err()).isZero();
        JsonNode report = Json.MAPPER.readTree(gc.out());
        assertThat(report.path("deletedPacks").size()).as("B's own pack").isEqualTo(1);
        assertThat(report.path("keptPackCount").asInt()).isEqualTo(1);
        Run after = run("inspect", dir.resolve("a").toString(), "--verify");
        assertThat(after.exit()).as(after.err()).isZero();
    }

    @Test
    void doctorAndGuestPrintJson() throws Exception {
        dev.thaw.testing.TestHost.report();
        Run doctor = run("doctor", "--json");
        assertThat(doctor.exit()).as(doctor.err()).isZero();
        JsonNode report = Json.MAPPER.readTree(doctor.out());
        assertThat(report.path("checks").size()).isGreaterThanOrEqualTo(5);
        assertThat(report.path("qemuVersion").path("major").asInt()).isGreaterThanOrEqualTo(7);
        assertThat(report.path("kvm").path("reason").asText()).isNotBlank();
        // This project's hosts lack idle page tracking; wherever it is absent the doctor must say so plainly.
        if (!java.nio.file.Files.exists(java.nio.file.Path.of("/sys/kernel/mm/page_idle/bitmap"))) {
            assertThat(report.path("accessBitScanning").asText()).startsWith("unavailable: this host kernel has no idle page tracking");
        }
        assertThat(report.path("guest").path("key").asText()).isEqualTo(dev.thaw.testing.TestHost.guest().key());
        assertThat(report.path("pageTouch").path("pageCount").asLong()).isEqualTo(16384);
        assertThat(report.path("pageTouch").path("fourKiBMicrosPerPage").asDouble()).isPositive();
        assertThat(report.path("pageTouch").path("hugeMicrosPerPage").asDouble()).isPositive();

        Run guest = run("guest", "--json");
        assertThat(guest.exit()).as(guest.err()).isZero();
        assertThat(Json.MAPPER.readTree(guest.out()).path("key").asText()).isEqualTo(dev.thaw.testing.TestHost.guest().key());
    }
}
