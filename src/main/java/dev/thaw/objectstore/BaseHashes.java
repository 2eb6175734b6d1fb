package dev.thaw.objectstore;

import dev.thaw.image.DiskIdentity;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Optional;
import java.util.regex.Pattern;

/**
 * The SHA-256 of a disk base's file (the name of its object in a bucket, {@code bases/SHA256}), cached in
 * {@code CACHE/disk-sha256/} by the file's identity, as the disk block index is: a push of an image over a base that an earlier
 * push hashed finds its object by one HEAD instead of reading the whole base. A cached hash only ever names an object that is
 * already there (the push trusts the identity as every restore does); a base uploaded is always hashed anew from its bytes, so
 * no object is ever named by a stale hash.
 */
final class BaseHashes {
    static final String DIRECTORY = "disk-sha256";
    private static final Pattern SHA256 = Pattern.compile("[0-9a-f]{64}");

    private BaseHashes() {}

    /** The hash cached for this identity, if any (a damaged entry is none). */
    static Optional<String> cached(Path cacheDirectory, DiskIdentity identity) {
        Path file = cacheDirectory.resolve(DIRECTORY).resolve(keyOf(identity));
        try {
            String text = Files.readString(file, StandardCharsets.US_ASCII).strip();
            return SHA256.matcher(text).matches() ? Optional.of(text) : Optional.empty();
        } catch (IOException e) {
            return Optional.empty();
        }
    }

    /** Records the hash of a file of this identity (written atomically; a failure only costs the next push a read). */
    static void record(Path cacheDirectory, DiskIdentity identity, String sha256) {
        Path dir = cacheDirectory.resolve(DIRECTORY);
        Path file = dir.resolve(keyOf(identity));
        try {
            dev.thaw.util.OwnerOnly.createDirectories(dir);
            Path temp = Files.createTempFile(dir, ".tmp-", "");
            Files.writeString(temp, sha256 + "\n", StandardCharsets.US_ASCII);
            Files.move(temp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException e) {
            System.err.println("thaw: could not cache the SHA-256 of a disk base in " + dir + ": " + e.getMessage());
        }
    }

    /** The entry's name: a hash of the identity's fields. */
    static String keyOf(DiskIdentity identity) {
        return identity.cacheKey("sha256 of the whole file\n");
    }
}
