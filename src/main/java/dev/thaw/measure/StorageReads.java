package dev.thaw.measure;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Bytes read from the host's disks, all processes together, from {@code /proc/diskstats} (whole
 * disks only: partitions would count twice; loop, zram and ram devices hold no storage). On an
 * otherwise quiet host the difference over a restore is what the restore read from storage; with a
 * warm page cache it is near zero for every method.
 */
public final class StorageReads {
    private static final Path DISKSTATS = Path.of("/proc/diskstats");

    private StorageReads() {}

    /** Bytes read so far, or -1 where the kernel does not say. */
    public static long bytesReadSoFar() {
        try {
            long sectors = 0;
            for (String line : Files.readAllLines(DISKSTATS)) {
                String[] f = line.trim().split("\\s+");
                if (f.length < 6) continue;
                String name = f[2];
                if (name.startsWith("loop") || name.startsWith("zram") || name.startsWith("ram")) continue;
                if (!Files.isDirectory(Path.of("/sys/block", name))) continue; // a partition
                sectors += Long.parseLong(f[5]); // sectors read, of 512 bytes whatever the device's sector size
            }
            return sectors * 512;
        } catch (IOException | RuntimeException e) {
            return -1;
        }
    }
}
