package dev.thaw.guest;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A built disk of the PostgreSQL guest (guest/build-postgres.sh): Debian bookworm with postgresql-15 on ext4 in a qcow2 image,
 * cached under a key that hashes the build's inputs. It is never written: every boot runs on an overlay of its own
 * ({@link PostgresGuest#bootDisk}).
 *
 * @param key       16 hex digits hashing the build inputs
 * @param directory the cache directory holding rootfs.qcow2 and guest.json
 * @param qcow2     the disk image
 * @param packages  the package versions the key hashes, as the build recorded them
 */
public record PostgresDisk(String key, Path directory, Path qcow2, String packages) {
    /** Reads a finished build's guest.json. */
    public static PostgresDisk read(Path directory) {
        Path manifest = directory.resolve("guest.json");
        Path qcow2 = directory.resolve("rootfs.qcow2");
        if (!Files.isRegularFile(qcow2)) {
            throw new IllegalStateException("PostgreSQL guest build " + directory + " is incomplete: rootfs.qcow2 is missing");
        }
        try {
            JsonNode json = new ObjectMapper().readTree(manifest.toFile());
            return new PostgresDisk(json.path("key").asText(), directory, qcow2, json.path("packages").asText());
        } catch (IOException e) {
            throw new IllegalStateException("cannot read " + manifest + ": " + e.getMessage(), e);
        }
    }
}
