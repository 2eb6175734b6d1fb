package dev.thaw.image;

import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;

/**
 * The SHA-256 of a page's 4096 bytes: the identity under which the store keeps content once.
 *
 * <p>Why a cryptographic hash and not a byte comparison or XXH3: two different pages would be merged
 * only if their SHA-256 collided. For n stored pages the chance of any accidental collision is at
 * most n^2 / 2^257 (for n = 2^40 pages, 4 PiB, that is below 2^-177), and no way is known to
 * construct a collision on purpose, so a guest cannot craft a page that would stand in for another
 * VM's page in a shared store. A 64- or 128-bit non-cryptographic hash gives neither guarantee:
 * its collisions can be constructed. Comparing bytes instead would need a random read of the
 * stored page for every hit.
 */
public record PageDigest(long a, long b, long c, long d) {
    public static final int BYTES = 32;

    private static final ThreadLocal<MessageDigest> SHA256 = ThreadLocal.withInitial(() -> {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("this JDK has no SHA-256", e);
        }
    });

    public static PageDigest of(byte[] data, int offset, int length) {
        MessageDigest md = SHA256.get();
        md.update(data, offset, length);
        return fromBytes(md.digest(), 0);
    }

    public static PageDigest fromBytes(byte[] bytes, int offset) {
        java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(bytes, offset, BYTES);
        return new PageDigest(b.getLong(), b.getLong(), b.getLong(), b.getLong());
    }

    public void writeTo(java.nio.ByteBuffer out) {
        out.order(java.nio.ByteOrder.BIG_ENDIAN);
        out.putLong(a).putLong(b).putLong(c).putLong(d);
        out.order(java.nio.ByteOrder.LITTLE_ENDIAN);
    }

    @Override
    public String toString() {
        return String.format("%016x%016x%016x%016x", a, b, c, d);
    }
}
