package dev.thaw.guest;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.thaw.util.ExternalCommand;
import dev.thaw.util.ThawPaths;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;

/** Builds (or finds in the cache) the demo guest through the project's own script, guest/build.sh. */
public final class GuestBuilder {
    private static final Duration BUILD_TIMEOUT = Duration.ofMinutes(15);

    private GuestBuilder() {}

    /** Builds into the default cache ({@link ThawPaths#cacheDir()}). */
    public static GuestImage build(PrintStream progress) {
        return build(ThawPaths.cacheDir(), progress);
    }

    public static GuestImage build(Path cacheDir, PrintStream progress) {
        Path script = ThawPaths.home().resolve("guest/build.sh");
        ExternalCommand.Result key = ExternalCommand.run(List.of("bash", script.toString(), "--cache", cacheDir.toString(), "--print-key"),
                BUILD_TIMEOUT);
        if (key.succeeded() && Files.isRegularFile(cacheDir.resolve("guest").resolve(key.stdout().strip()).resolve("guest.json"))) {
            return read(cacheDir.resolve("guest").resolve(key.stdout().strip()));
        }
        progress.println("thaw: building the demo guest (kernel package, busybox initramfs, workloads) ...");
        ExternalCommand.Result result = ExternalCommand.run(List.of("bash", script.toString(), "--cache", cacheDir.toString()),
                BUILD_TIMEOUT, null, Map.of());
        if (!result.succeeded()) {
            throw new IllegalStateException("building the demo guest failed: " + result.describe());
        }
        List<String> lines = result.stdout().strip().lines().toList();
        if (lines.isEmpty()) {
            throw new IllegalStateException("guest/build.sh printed no result directory: expected its last line to be one");
        }
        return read(Path.of(lines.getLast()));
    }

    /** Reads a finished build's guest.json. */
    public static GuestImage read(Path directory) {
        Path manifest = directory.resolve("guest.json");
        try {
            JsonNode json = new ObjectMapper().readTree(manifest.toFile());
            Path kernel = directory.resolve("vmlinuz");
            Path initrd = directory.resolve("initrd.img");
            for (Path p : List.of(kernel, initrd)) {
                if (!Files.isRegularFile(p)) {
                    throw new IllegalStateException("guest build " + directory + " is incomplete: " + p.getFileName() + " is missing");
                }
            }
            return new GuestImage(json.path("key").asText(), directory, kernel, initrd, json.path("kernelRelease").asText(),
                    json.path("kernelPackage").asText() + " " + json.path("kernelPackageVersion").asText());
        } catch (IOException e) {
            throw new IllegalStateException("cannot read " + manifest + ": " + e.getMessage(), e);
        }
    }
}
