package dev.thaw.objectstore;

import com.dynatrace.hash4j.hashing.HashStream64;
import com.dynatrace.hash4j.hashing.Hashing;
import dev.thaw.image.PortableImage;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;

/**
 * One file's check, fed its bytes in order as they move (read for an upload, or arriving from a range GET): the checksum
 * the manifest records for it, over the bytes that checksum covers. {@link #finish} compares and names the object.
 */
final class PartCheck {
    private final PortableImage.Part part;
    private final String object;
    private final HashStream64 xxh3;
    private final MessageDigest sha256;
    private final long checkedBytes;
    private final String recordedIn;
    private long seen;

    PartCheck(PortableImage.Part part, String object) {
        this(part, object, "manifest");
    }

    /** @param recordedIn what recorded the size and checksum, for the errors */
    PartCheck(PortableImage.Part part, String object, String recordedIn) {
        this.part = part;
        this.object = object;
        this.recordedIn = recordedIn;
        switch (part.check()) {
            case PortableImage.Check.FileChecksum f -> {
                xxh3 = Hashing.xxh3_64().hashStream();
                sha256 = null;
                checkedBytes = PortableImage.checksummedBytes(part.byteSize());
            }
            case PortableImage.Check.Sha256 s -> {
                xxh3 = null;
                try {
                    sha256 = MessageDigest.getInstance("SHA-256");
                } catch (NoSuchAlgorithmException e) {
                    throw new IllegalStateException(e);
                }
                checkedBytes = part.byteSize();
            }
            case PortableImage.Check.AtOpen a -> {
                xxh3 = null;
                sha256 = null;
                checkedBytes = 0;
            }
        }
    }

    void update(byte[] bytes, int offset, int length) {
        long take = Math.max(0, Math.min(length, checkedBytes - seen));
        if (take > 0) {
            if (xxh3 != null) xxh3.putBytes(bytes, offset, (int) take);
            if (sha256 != null) sha256.update(bytes, offset, (int) take);
        }
        seen += length;
    }

    /** Throws {@link ObjectStoreException.Corrupt} naming the object unless size and checksum are the manifest's. */
    void finish() {
        if (seen != part.byteSize()) {
            throw new ObjectStoreException.Corrupt(object + ": expected " + part.byteSize() + " bytes (" + recordedIn + "), actual " + seen, null);
        }
        String expected;
        String actual;
        switch (part.check()) {
            case PortableImage.Check.FileChecksum f -> {
                expected = f.hex();
                actual = Long.toHexString(xxh3.getAsLong());
            }
            case PortableImage.Check.Sha256 s -> {
                expected = s.hex();
                actual = HexFormat.of().formatHex(sha256.digest());
            }
            case PortableImage.Check.AtOpen a -> {
                return;
            }
        }
        if (!expected.equals(actual)) {
            String what = part.check() instanceof PortableImage.Check.Sha256 ? "SHA-256" : "checksum (XXH3-64 of its first "
                    + checkedBytes + " bytes)";
            throw new ObjectStoreException.Corrupt(object + ": " + what + ": expected " + expected + " (" + recordedIn + "), actual " + actual, null);
        }
    }
}
