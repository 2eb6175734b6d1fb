package dev.thaw.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import dev.thaw.guest.DemoGuest;
import dev.thaw.qemu.QemuVm;
import dev.thaw.restore.RamFiles;
import dev.thaw.testing.TestHost;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** save --qmp, inspect --verify and restore --exit through the CLI, against the real QEMU; a damaged image fails the restore. */
class SaveRestoreCommandsTest {
    @Test
    void saveInspectRestoreAndRefuseADamagedImage(@TempDir Path dir) throws Exception {
        Path image = dir.resolve("img");
        try (QemuVm vm = QemuVm.launch(TestHost.smallGuestConfig("thaw-test-cli"))) {
            DemoGuest.awaitReady(vm, vm.console().cursorFromStart(), DemoGuest.BOOT_TIMEOUT);
            ImageCommandsTest.Run save = ImageCommandsTest.run("save", "--qmp", vm.extraQmpSocket().toString(), "--out", image.toString(),
                    "--keep-running", "--codec", "lz4", "--json");
            assertThat(save.exit()).as(save.err()).isZero();
            JsonNode saved = Json.MAPPER.readTree(save.out());
            assertThat(saved.path("guestRunning").asBoolean()).isTrue();
            assertThat(vm.qmp().queryStatus().running()).as("--keep-running resumed the guest").isTrue();
            assertThat(saved.path("stats").path("pageCount").asLong()).isGreaterThanOrEqualTo(512L * 256);
        }
        ImageCommandsTest.Run inspect = ImageCommandsTest.run("inspect", image.toString(), "--verify");
        assertThat(inspect.exit()).as(inspect.err()).isZero();
        assertThat(inspect.out()).contains("lz4").contains("verified:");

        ImageCommandsTest.Run restore = ImageCommandsTest.run("restore", image.toString(), "--mode", "eager", "--exit", "--json",
                "--name", "thaw-test-cli-restore");
        assertThat(restore.exit()).as(restore.err()).isZero();
        JsonNode restored = Json.MAPPER.readTree(restore.out());
        assertThat(restored.path("runningSeconds").asDouble()).isPositive();
        // From this process's start (here the test JVM's): the restore's own time is a part of it.
        assertThat(restored.path("commandRunningSeconds").asDouble()).isGreaterThanOrEqualTo(restored.path("runningSeconds").asDouble());

        // The same restore through thaw serve, from the client's start; a client that goes ends its restore and its QEMU.
        try (RestoreServer server = RestoreServer.start(dir.resolve("serve").resolve("thaw.sock"), 2,
                new java.io.PrintStream(new java.io.ByteArrayOutputStream(), true, java.nio.charset.StandardCharsets.UTF_8))) {
            RestoreServerTest.Run served = RestoreServerTest.client(server.socket(), "restore", image.toString(), "--mode", "eager",
                    "--exit", "--json", "--name", "thaw-test-cli-served");
            assertThat(served.exit()).as(served.err()).isZero();
            JsonNode servedJson = Json.MAPPER.readTree(served.out());
            assertThat(servedJson.path("mode").asText()).isEqualTo("eager");
            assertThat(servedJson.path("commandRunningSeconds").asDouble()).isGreaterThanOrEqualTo(servedJson.path("runningSeconds").asDouble());

            String attachedName = "thaw-test-cli-served-attached";
            try (java.nio.channels.SocketChannel client = java.nio.channels.SocketChannel.open(
                    java.net.UnixDomainSocketAddress.of(server.socket()))) {
                java.nio.ByteBuffer request = ServeWire.encode(new ServeWire.Request(java.util.List.of("restore", image.toString(), "--mode",
                        "eager", "--name", attachedName), Path.of("/"), java.util.Optional.empty(), false));
                while (request.hasRemaining()) client.write(request);
                long deadline = System.nanoTime() + 60_000_000_000L;
                while (QemuVm.live(attachedName).filter(vm -> vm.qmp() != null && vm.qmp().queryStatus().running()).isEmpty()) {
                    assertThat(System.nanoTime()).as("the served restore's guest running within 60 s").isLessThan(deadline);
                    Thread.sleep(100);
                }
                assertThat(server.runningCount()).isEqualTo(1);
            }
            long deadline = System.nanoTime() + 20_000_000_000L;
            while (QemuVm.live(attachedName).isPresent() || server.runningCount() > 0) {
                assertThat(System.nanoTime()).as("the restore of a client that went, ended with its QEMU within 20 s").isLessThan(deadline);
                Thread.sleep(100);
            }

            // A server that stops ends the restores it runs, and their clients hear why.
            var stopped = java.util.concurrent.CompletableFuture.supplyAsync(() -> RestoreServerTest.client(server.socket(), "restore",
                    image.toString(), "--mode", "eager", "--name", attachedName));
            deadline = System.nanoTime() + 60_000_000_000L;
            while (QemuVm.live(attachedName).filter(vm -> vm.qmp() != null && vm.qmp().queryStatus().running()).isEmpty()) {
                assertThat(System.nanoTime()).as("the second served restore's guest running within 60 s").isLessThan(deadline);
                Thread.sleep(100);
            }
            server.close();
            RestoreServerTest.Run ended = stopped.get(30, java.util.concurrent.TimeUnit.SECONDS);
            assertThat(ended.exit()).isEqualTo(1);
            assertThat(ended.err()).contains("thaw serve: the server is stopping: this restore was ended, its QEMU killed");
            assertThat(QemuVm.live(attachedName)).isEmpty();
        }

        ImageCommandsTest.Run unknownMode = ImageCommandsTest.run("restore", image.toString(), "--mode", "sideways");
        assertThat(unknownMode.exit()).isNotZero();
        assertThat(unknownMode.err()).contains("expected auto, eager, lazy, ws or mapped").contains("'sideways'");

        ImageCommandsTest.Run noWorkingSet = ImageCommandsTest.run("restore", image.toString(), "--mode", "ws");
        assertThat(noWorkingSet.exit()).isNotZero();
        assertThat(noWorkingSet.err()).contains("has no working set");

        // Without a trace the default is lazy; the lazy restore leaves the trace the next (ws, by default) learns from.
        ImageCommandsTest.Run lazy = ImageCommandsTest.run("restore", image.toString(), "--exit", "--json", "--name", "thaw-test-cli-lazy");
        assertThat(lazy.exit()).as(lazy.err()).isZero();
        JsonNode lazyJson = Json.MAPPER.readTree(lazy.out());
        assertThat(lazyJson.path("mode").asText()).isEqualTo("lazy");
        assertThat(lazyJson.path("demandFaults").asLong()).isPositive();
        assertThat(Path.of(lazyJson.path("trace").asText())).exists();
        assertThat(lazyJson.path("guestRam").asText()).isEqualTo("4k");
        assertThat(lazyJson.path("guestRamReason").asText()).as("auto: a lazy restore stays in 4 KiB pages").contains("lazy");
        // 4 KiB pages asked for: the elastic size below is theirs (auto may choose 2 MiB pages here, which move whole regions).
        ImageCommandsTest.Run ws = ImageCommandsTest.run("restore", image.toString(), "--exit", "--json", "--name", "thaw-test-cli-ws",
                "--guest-ram", "4k");
        assertThat(ws.exit()).as(ws.err()).isZero();
        JsonNode wsJson = Json.MAPPER.readTree(ws.out());
        assertThat(wsJson.path("mode").asText()).isEqualTo("ws");
        assertThat(wsJson.path("guestRam").asText()).isEqualTo("4k");
        assertThat(wsJson.path("guestRamReason").asText()).startsWith("as the restore's options said");
        // The elastic size of the learned working set (the lazy restore's faults): half when it is clustered, all when scattered.
        long learnedPages = lazyJson.path("demandFaults").asLong();
        String sizing = wsJson.path("prefetchSizing").asText();
        assertThat(sizing).matches("(clustered|scattered) estimate .*");
        assertThat(wsJson.path("prefetchedPages").asLong()).as(sizing)
                .isEqualTo(sizing.startsWith("clustered") ? (learnedPages + 1) / 2 : learnedPages);

        // thaw ws: the learned working set; --learn stores it in the image, laid out in queue order, and the image stays valid.
        ImageCommandsTest.Run shown = ImageCommandsTest.run("ws", image.toString(), "--json");
        assertThat(shown.exit()).as(shown.err()).isZero();
        JsonNode shownJson = Json.MAPPER.readTree(shown.out());
        assertThat(shownJson.path("section").isNull()).isTrue();
        // Learned from the latest restore, the ws one: what it prefetched, then the pages it still faulted in (each once).
        assertThat(shownJson.path("learned").path("queuedPages").asLong())
                .isEqualTo(wsJson.path("prefetchedPages").asLong() + wsJson.path("demandFaults").asLong());
        ImageCommandsTest.Run learn = ImageCommandsTest.run("ws", image.toString(), "--learn", "--json");
        assertThat(learn.exit()).as(learn.err()).isZero();
        JsonNode section = Json.MAPPER.readTree(learn.out()).path("section");
        assertThat(section.path("estimator").asText()).isEqualTo("learned");
        assertThat(section.path("queuedPages").asLong()).isEqualTo(shownJson.path("learned").path("queuedPages").asLong());
        assertThat(ImageCommandsTest.run("inspect", image.toString(), "--verify").exit()).isZero();
        ImageCommandsTest.Run fromImage = ImageCommandsTest.run("restore", image.toString(), "--mode", "ws", "--ws-source", "image",
                "--ws-fraction", "1", "--exit", "--json", "--name", "thaw-test-cli-ws-image");
        assertThat(fromImage.exit()).as(fromImage.err()).isZero();
        JsonNode fromImageJson = Json.MAPPER.readTree(fromImage.out());
        // auto: this host's choice, said and followed (2 MiB pages move whole 2 MiB units: more pages than the section's)
        String guestRam = fromImageJson.path("guestRam").asText();
        assertThat(guestRam).isIn("4k", "hugetlb");
        assertThat(fromImageJson.path("guestRamReason").asText()).startsWith(guestRam.equals("hugetlb") ? "2 MiB hugetlb pages" : "4 KiB pages");
        if (guestRam.equals("hugetlb")) {
            assertThat(fromImageJson.path("prefetchedPages").asLong() % 512).isZero();
            assertThat(fromImageJson.path("prefetchedPages").asLong()).isGreaterThanOrEqualTo(section.path("queuedPages").asLong());
        } else {
            assertThat(fromImageJson.path("prefetchedPages").asLong()).isEqualTo(section.path("queuedPages").asLong());
        }

        // A trimmed working set: the rest of the predicted pages goes first in the background.
        ImageCommandsTest.Run trimmed = ImageCommandsTest.run("restore", image.toString(), "--mode", "ws", "--ws-pages", "1", "--exit",
                "--json", "--name", "thaw-test-cli-ws1", "--guest-ram", "4k");
        assertThat(trimmed.exit()).as(trimmed.err()).isZero();
        assertThat(Json.MAPPER.readTree(trimmed.out()).path("prefetchedPages").asLong()).isEqualTo(1);

        ImageCommandsTest.Run timeline = ImageCommandsTest.run("timeline", image.toString(), "--json");
        assertThat(timeline.exit()).as(timeline.err()).isZero();
        JsonNode entries = Json.MAPPER.readTree(timeline.out());
        assertThat(entries).extracting(e -> e.path("mode").asText()).containsExactly("lazy", "ws", "ws", "ws");
        assertThat(entries.get(0).path("timeline").path("demandFaults").asLong()).isEqualTo(lazyJson.path("demandFaults").asLong());
        assertThat(entries.get(1).path("timeline").path("prefetchedPages").asLong()).isEqualTo(wsJson.path("prefetchedPages").asLong());
        assertThat(entries.get(0).path("timeline").path("completedSeconds").asDouble())
                .isGreaterThanOrEqualTo(entries.get(0).path("timeline").path("runningSeconds").asDouble());

        // mapped: the first writes the image's RAM file beside it and pages the image's working set into the page cache;
        // from then on it is the default (auto says why).
        ImageCommandsTest.Run mapped = ImageCommandsTest.run("restore", image.toString(), "--mode", "mapped", "--ws-source", "image",
                "--exit", "--json", "--name", "thaw-test-cli-mapped");
        assertThat(mapped.exit()).as(mapped.err()).isZero();
        JsonNode mappedJson = Json.MAPPER.readTree(mapped.out());
        assertThat(mappedJson.path("mode").asText()).isEqualTo("mapped");
        assertThat(mappedJson.path("prefetchSizing").asText()).isEqualTo("the whole queue of " + section.path("queuedPages").asLong()
                + " pages (image) into the page cache in queue order");
        assertThat(mappedJson.path("streamBytes").asLong()).as("only the device state and small blocks travel").isLessThan(64L << 20);
        Path ramDir = dir.resolve("img.ram");
        try (Stream<Path> files = Files.list(ramDir)) {
            assertThat(files.map(f -> f.getFileName().toString()).filter(f -> !f.equals(RamFiles.LOCK_FILE))).as("beside its writers' lock")
                    .singleElement().asString().endsWith(".pc.ram");
        }
        ImageCommandsTest.Run auto = ImageCommandsTest.run("restore", image.toString(), "--exit", "--json", "--name", "thaw-test-cli-auto");
        assertThat(auto.exit()).as(auto.err()).isZero();
        assertThat(Json.MAPPER.readTree(auto.out()).path("mode").asText()).isEqualTo("mapped");
        assertThat(auto.err()).contains("mode mapped: the image has its RAM file");
        ImageCommandsTest.Run hugeMapped = ImageCommandsTest.run("restore", image.toString(), "--hugetlb", "--exit");
        assertThat(hugeMapped.exit()).isNotZero();
        assertThat(hugeMapped.err()).contains("expected a lazy or ws restore, actual mode mapped");
        ImageCommandsTest.Run twoChoices = ImageCommandsTest.run("restore", image.toString(), "--hugetlb", "--guest-ram", "4k", "--exit");
        assertThat(twoChoices.exit()).isNotZero();
        assertThat(twoChoices.err()).contains("--guest-ram 4k and --hugetlb exclude each other");
        ImageCommandsTest.Run badRam = ImageCommandsTest.run("restore", image.toString(), "--guest-ram", "1g", "--exit");
        assertThat(badRam.exit()).isNotZero();
        assertThat(badRam.err()).contains("--guest-ram: expected auto, 4k or hugetlb, actual '1g'");

        // thaw serve --warm: restores of the image as ws and in its default way (mapped now) before the server listens, out of sight.
        java.util.List<ServeCommand.WarmUp> warm = ServeCommand.warmUp(image);
        assertThat(warm).extracting(ServeCommand.WarmUp::exit).containsExactly(0, 0);
        assertThat(warm.get(0).said()).startsWith("ws restore: guest running after");
        assertThat(warm.get(1).said()).startsWith("mapped restore: guest running after");
        assertThat(QemuVm.live()).isEmpty();
        java.util.List<ServeCommand.WarmUp> noImage = ServeCommand.warmUp(dir.resolve("no-such-image"));
        assertThat(noImage).extracting(ServeCommand.WarmUp::exit).containsExactly(1, 1);
        assertThat(noImage.get(0).said()).contains("no-such-image");

        // Damage a page extent in the middle of the pack: the restore starts QEMU, meets the damage while
        // streaming, names the file, and leaves no QEMU behind.
        Path pack;
        try (Stream<Path> files = Files.list(image.resolve("store"))) {
            pack = files.findFirst().orElseThrow();
        }
        try (RandomAccessFile f = new RandomAccessFile(pack.toFile(), "rw")) {
            long at = f.length() / 2;
            f.seek(at);
            int b = f.read();
            f.seek(at);
            f.write(b ^ 0x01);
        }
        ImageCommandsTest.Run broken = ImageCommandsTest.run("restore", image.toString(), "--mode", "lazy", "--exit", "--name",
                "thaw-test-cli-broken");
        assertThat(broken.exit()).isNotZero();
        assertThat(broken.err()).contains(pack.getFileName().toString()).contains("expected");
        assertThat(QemuVm.live()).isEmpty();
    }
}
