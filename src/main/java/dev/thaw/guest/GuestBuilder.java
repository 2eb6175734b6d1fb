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

/**
 * Builds (or finds in the cache) the project's guests through its own scripts: the demo guest (guest/build.sh) and the
 * PostgreSQL guest's disk (guest/build-postgres.sh), the disk the firmware boots (guest/build-firmware-disk.sh).
 */
public final class GuestBuilder {
    private static final Duration BUILD_TIMEOUT = Duration.ofMinutes(15);

    private GuestBuilder() {}

    /** Builds into the default cache ({@link ThawPaths#cacheDir()}). */
    public static GuestImage build(PrintStream progress) {
        return build(ThawPaths.cacheDir(), progress);
    }

    public static GuestImage build(Path cacheDir, PrintStream progress) {
        return read(runBuild("guest/build.sh", "guest", cacheDir, "the demo guest (kernel package, busybox initramfs, workloads)",
                List.of(), progress));
    }

    /** Builds (or finds in the default cache) the PostgreSQL guest's disk, through guest/build-postgres.sh. */
    public static PostgresDisk buildPostgresDisk(PrintStream progress) {
        return buildPostgresDisk(ThawPaths.cacheDir(), progress);
    }

    public static PostgresDisk buildPostgresDisk(Path cacheDir, PrintStream progress) {
        return PostgresDisk.read(runBuild("guest/build-postgres.sh", "guest-postgres", cacheDir,
                "the PostgreSQL guest's disk (mmdebstrap of Debian bookworm with postgresql-15, a few minutes)", List.of(), progress));
    }

    /**
     * Builds (or finds in the default cache) a disk SeaBIOS boots into the demo guest {@code guest} (its kernel and initramfs
     * behind SYSLINUX), through guest/build-firmware-disk.sh: a guest started without {@code -kernel}.
     */
    public static FirmwareDisk buildFirmwareDisk(GuestImage guest, PrintStream progress) {
        return FirmwareDisk.read(runBuild("guest/build-firmware-disk.sh", "guest-firmware", ThawPaths.cacheDir(),
                "the disk the firmware boots (SYSLINUX and the demo guest's kernel on FAT, seconds)",
                List.of("--guest", guest.directory().toString()), progress));
    }

    /**
     * Runs a build script of the project's guest directory: first with {@code --print-key}, and when {@code CACHE/subdirectory/KEY}
     * holds a finished build (its guest.json) returns it; else builds, and returns the directory the script printed last.
     */
    private static Path runBuild(String scriptPath, String subdirectory, Path cacheDir, String what, List<String> inputs,
                                 PrintStream progress) {
        Path script = ThawPaths.home().resolve(scriptPath);
        List<String> command = new java.util.ArrayList<>(List.of("bash", script.toString(), "--cache", cacheDir.toString()));
        command.addAll(inputs);
        List<String> printKey = new java.util.ArrayList<>(command);
        printKey.add("--print-key");
        ExternalCommand.Result key = ExternalCommand.run(printKey, BUILD_TIMEOUT);
        Path cached = cacheDir.resolve(subdirectory).resolve(key.stdout().strip());
        if (key.succeeded() && Files.isRegularFile(cached.resolve("guest.json"))) return cached;
        progress.println("thaw: building " + what + " ...");
        ExternalCommand.Result result = ExternalCommand.run(command, BUILD_TIMEOUT, null, Map.of());
        if (!result.succeeded()) {
            throw new IllegalStateException("building " + what + " failed: " + result.describe());
        }
        List<String> lines = result.stdout().strip().lines().toList();
        if (lines.isEmpty()) {
            throw new IllegalStateException(scriptPath + " printed no result directory: expected its last line to be one");
        }
        return Path.of(lines.getLast());
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
