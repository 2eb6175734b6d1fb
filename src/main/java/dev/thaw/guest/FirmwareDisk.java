package dev.thaw.guest;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A built disk that QEMU's default firmware (SeaBIOS) boots (guest/build-firmware-disk.sh): an MBR and a FAT partition with
 * SYSLINUX and the demo guest's own kernel and initramfs, for a guest started without {@code -kernel}. It is never written:
 * every boot runs on a copy or an overlay of its own.
 *
 * @param key       16 hex digits hashing the build inputs (the demo guest's kernel and initramfs among them)
 * @param directory the cache directory holding boot.img and guest.json
 * @param raw       the disk image, raw
 */
public record FirmwareDisk(String key, Path directory, Path raw) {
    /** Reads a finished build's guest.json. */
    public static FirmwareDisk read(Path directory) {
        Path raw = directory.resolve("boot.img");
        if (!Files.isRegularFile(raw)) {
            throw new IllegalStateException("firmware-booted disk build " + directory + " is incomplete: boot.img is missing");
        }
        try {
            JsonNode json = new ObjectMapper().readTree(directory.resolve("guest.json").toFile());
            return new FirmwareDisk(json.path("key").asText(), directory, raw);
        } catch (IOException e) {
            throw new IllegalStateException("cannot read " + directory.resolve("guest.json") + ": " + e.getMessage(), e);
        }
    }
}
