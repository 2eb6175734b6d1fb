package dev.thaw.testing;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;

/** Files of random bytes: a disk whose pages, once in a guest's page cache, are incompressible and unique. */
public final class RandomFiles {
    private RandomFiles() {}

    /** Writes {@code mib} MiB of bytes drawn from {@code seed} to {@code file} and returns it. */
    public static Path write(Path file, long mib, long seed) throws IOException {
        Random random = new Random(seed);
        byte[] chunk = new byte[1 << 20];
        try (OutputStream out = Files.newOutputStream(file)) {
            for (long i = 0; i < mib; i++) {
                random.nextBytes(chunk);
                out.write(chunk);
            }
        }
        return file;
    }
}
