package dev.thaw.image;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;

/**
 * What a disk base looked like when an image was saved on it: cheap to take and to check at every restore (two MiB read),
 * and catching a base written since, since a write moves the modification time and an append the size; the hash of the
 * first and last MiB (a qcow2's header and tables, a raw disk's partition table and its end) catches a copy restored
 * over it with its old time.
 *
 * @param byteSize          the file's size
 * @param modifiedAt        its modification time (ISO-8601, nanoseconds where the file system keeps them)
 * @param headTailSha256    SHA-256 over its first and last MiB (the whole file when smaller than 2 MiB), hex
 */
public record DiskIdentity(long byteSize, String modifiedAt, String headTailSha256) {
    static final int SAMPLE_BYTES = 1 << 20;

    /** The identity of {@code file} now; it must be a regular file (a device or a link to one is no base). */
    public static DiskIdentity of(Path file) throws IOException {
        if (!Files.isRegularFile(file, LinkOption.NOFOLLOW_LINKS)) {
            throw new IOException(file + ": expected a regular file (not a link or a device), actual "
                    + (Files.exists(file, LinkOption.NOFOLLOW_LINKS) ? "another kind of file" : "none"));
        }
        MessageDigest sha;
        try {
            sha = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
        long size;
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ, LinkOption.NOFOLLOW_LINKS)) {
            size = ch.size();
            long tail = Math.max(Math.min(SAMPLE_BYTES, size), size - SAMPLE_BYTES);
            digest(ch, 0, Math.min(SAMPLE_BYTES, size), sha);
            digest(ch, tail, size - tail, sha);
        }
        return new DiskIdentity(size, Files.getLastModifiedTime(file, LinkOption.NOFOLLOW_LINKS).toInstant().toString(),
                HexFormat.of().formatHex(sha.digest()));
    }

    /** What differs between this (saved) identity and {@code now}, in words; empty when they match. */
    public List<String> differencesTo(DiskIdentity now) {
        List<String> changed = new ArrayList<>();
        if (byteSize != now.byteSize) changed.add("size: expected " + byteSize + " bytes, actual " + now.byteSize);
        if (!modifiedAt.equals(now.modifiedAt)) changed.add("modification time: expected " + modifiedAt + ", actual " + now.modifiedAt);
        if (!headTailSha256.equals(now.headTailSha256)) changed.add("content of its first or last MiB: SHA-256 expected "
                + headTailSha256 + ", actual " + now.headTailSha256);
        return changed;
    }

    /**
     * A name for what a cache keeps about this base (an entry's file name): 16 bytes of SHA-256, hex, over {@code purpose}
     * (which says what is kept and in which version, each cache its own) and the identity's fields.
     */
    public String cacheKey(String purpose) {
        try {
            MessageDigest sha = MessageDigest.getInstance("SHA-256");
            sha.update((purpose + byteSize + "\n" + modifiedAt + "\n" + headTailSha256).getBytes(java.nio.charset.StandardCharsets.UTF_8));
            return HexFormat.of().formatHex(sha.digest(), 0, 16);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private static void digest(FileChannel ch, long from, long length, MessageDigest sha) throws IOException {
        ByteBuffer buf = ByteBuffer.allocate((int) Math.min(length, SAMPLE_BYTES));
        long at = from;
        while (at < from + length) {
            buf.clear().limit((int) Math.min(buf.capacity(), from + length - at));
            int n = ch.read(buf, at);
            if (n < 0) throw new IOException("file shrank while read, at " + at);
            sha.update(buf.flip());
            at += n;
        }
    }
}
