package dev.thaw.image;

import com.dynatrace.hash4j.hashing.HashStream64;
import com.dynatrace.hash4j.hashing.Hashing;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.UUID;

/**
 * The frame every image file has: a 48-byte header and a 32-byte footer around the body. All
 * integers little-endian. See {@code docs/image-format.md}.
 *
 * <pre>
 * header  0  8  magic "THAWFILE"
 *         8  4  file kind ({@link FileKind}; 0 invalid)
 *        12  4  format version (1)
 *        16 16  owner id: the image id (pack files: the pack id)
 *        32  8  reserved, 0
 *        40  8  XXH3-64 of header bytes 0..40
 * footer  0  8  magic "THAWEND!"
 *         8  8  body byte size (file size - 80)
 *        16  8  XXH3-64 of every byte before the footer
 *        24  8  XXH3-64 of footer bytes 0..24
 * </pre>
 */
public final class Framing {
    public static final int HEADER_BYTES = 48;
    public static final int FOOTER_BYTES = 32;
    public static final int FORMAT_VERSION = 1;
    public static final int MIN_READABLE_VERSION = 1;
    public static final int MAX_READABLE_VERSION = 1;
    static final long HEADER_MAGIC = magic("THAWFILE");
    static final long FOOTER_MAGIC = magic("THAWEND!");

    private Framing() {}

    static long magic(String eight) {
        return ByteBuffer.wrap(eight.getBytes(StandardCharsets.US_ASCII)).order(ByteOrder.LITTLE_ENDIAN).getLong();
    }

    static HashStream64 newHash() {
        return Hashing.xxh3_64().hashStream();
    }

    static long xxh3(byte[] data, int offset, int length) {
        return Hashing.xxh3_64().hashBytesToLong(data, offset, length);
    }

    static ByteBuffer le(int bytes) {
        return ByteBuffer.allocate(bytes).order(ByteOrder.LITTLE_ENDIAN);
    }

    static byte[] header(FileKind kind, UUID owner) {
        ByteBuffer b = le(HEADER_BYTES);
        b.putLong(HEADER_MAGIC).putInt(kind.code()).putInt(FORMAT_VERSION)
                .putLong(owner.getMostSignificantBits()).putLong(owner.getLeastSignificantBits()).putLong(0);
        b.putLong(xxh3(b.array(), 0, 40));
        return b.array();
    }

    static byte[] footer(long bodyBytes, long fileChecksum) {
        ByteBuffer b = le(FOOTER_BYTES);
        b.putLong(FOOTER_MAGIC).putLong(bodyBytes).putLong(fileChecksum);
        b.putLong(xxh3(b.array(), 0, 24));
        return b.array();
    }

    /** What the frame of an opened file says. {@code fileChecksum} is the footer's, not recomputed. */
    record Frame(Path path, FileKind kind, UUID owner, long bodyBytes, long fileChecksum) {
        long fileBytes() {
            return HEADER_BYTES + bodyBytes + FOOTER_BYTES;
        }
    }

    /**
     * Reads and checks header and footer (magic, kind, version, owner, header and footer checksums,
     * length). Does not read the body.
     *
     * @param expectedOwner null to accept any owner
     */
    static Frame readFrame(Path path, FileChannel channel, FileKind expectedKind, UUID expectedOwner) throws IOException {
        long size = channel.size();
        if (size < HEADER_BYTES + FOOTER_BYTES) {
            throw new ImageException.Corrupt(path, size, "truncated: expected at least " + (HEADER_BYTES + FOOTER_BYTES)
                    + " bytes (header and footer), actual " + size);
        }
        ByteBuffer h = readAt(channel, 0, HEADER_BYTES);
        long magic = h.getLong(0);
        if (magic != HEADER_MAGIC) {
            throw new ImageException.Corrupt(path, 0, String.format("expected header magic 'THAWFILE', actual 0x%016x", magic));
        }
        long headerSum = xxh3(h.array(), 0, 40);
        if (headerSum != h.getLong(40)) {
            throw new ImageException.Corrupt(path, 40, String.format("header checksum: expected 0x%016x, actual 0x%016x",
                    h.getLong(40), headerSum));
        }
        FileKind kind = FileKind.of(h.getInt(8));
        if (kind != expectedKind) {
            throw new ImageException.Corrupt(path, 8, "expected a " + expectedKind.label() + " file, actual kind " + h.getInt(8)
                    + " (" + kind.label() + ")");
        }
        int version = h.getInt(12);
        if (version < MIN_READABLE_VERSION || version > MAX_READABLE_VERSION) {
            throw new ImageException.UnsupportedVersion(path, version, MIN_READABLE_VERSION, MAX_READABLE_VERSION);
        }
        UUID owner = new UUID(h.getLong(16), h.getLong(24));
        if (expectedOwner != null && !expectedOwner.equals(owner)) {
            throw new ImageException.Corrupt(path, 16, "expected owner id " + expectedOwner + ", actual " + owner
                    + " (a file of another image?)");
        }
        long footerAt = size - FOOTER_BYTES;
        ByteBuffer f = readAt(channel, footerAt, FOOTER_BYTES);
        if (f.getLong(0) != FOOTER_MAGIC) {
            throw new ImageException.Corrupt(path, footerAt, "expected footer magic 'THAWEND!' at the end of the file, actual"
                    + String.format(" 0x%016x (truncated or appended to?)", f.getLong(0)));
        }
        long footerSum = xxh3(f.array(), 0, 24);
        if (footerSum != f.getLong(24)) {
            throw new ImageException.Corrupt(path, footerAt + 24, String.format("footer checksum: expected 0x%016x, actual 0x%016x",
                    f.getLong(24), footerSum));
        }
        long body = f.getLong(8);
        if (body != size - HEADER_BYTES - FOOTER_BYTES) {
            throw new ImageException.Corrupt(path, footerAt + 8, "expected a body of " + body + " bytes, actual "
                    + (size - HEADER_BYTES - FOOTER_BYTES));
        }
        return new Frame(path, kind, owner, body, f.getLong(16));
    }

    /** Recomputes the whole-file checksum; reads every byte before the footer. */
    static void verifyFileChecksum(Frame frame, FileChannel channel) throws IOException {
        HashStream64 hash = newHash();
        ByteBuffer buffer = ByteBuffer.allocate(1 << 20);
        long end = HEADER_BYTES + frame.bodyBytes();
        long position = 0;
        while (position < end) {
            buffer.clear().limit((int) Math.min(buffer.capacity(), end - position));
            int n = channel.read(buffer, position);
            if (n < 0) {
                throw new ImageException.Corrupt(frame.path(), position, "truncated while reading for the checksum");
            }
            hash.putBytes(buffer.array(), 0, n);
            position += n;
        }
        long actual = hash.getAsLong();
        if (actual != frame.fileChecksum()) {
            throw new ImageException.Corrupt(frame.path(), 0, String.format("file checksum over bytes 0..%d: expected 0x%016x"
                    + " (footer), actual 0x%016x", end, frame.fileChecksum(), actual));
        }
    }

    static ByteBuffer readAt(FileChannel channel, long position, int length) throws IOException {
        ByteBuffer b = le(length);
        while (b.hasRemaining()) {
            int n = channel.read(b, position + b.position());
            if (n < 0) break;
        }
        if (b.hasRemaining()) {
            throw new IOException("expected " + length + " bytes at offset " + position + ", actual " + b.position());
        }
        return b.flip().order(ByteOrder.LITTLE_ENDIAN);
    }

    /** Opens a small framed file, checks its frame and whole-file checksum, and returns the body. */
    static byte[] readWholeBody(Path path, FileKind kind, UUID owner) {
        return readWholeBody(path, kind, owner, null);
    }

    /**
     * The same, and the whole-file checksum must be {@code expectedChecksumHex} (the manifest's record of the file, so
     * a well-framed file of the same image put in its place is caught); null to skip.
     */
    static byte[] readWholeBody(Path path, FileKind kind, UUID owner, String expectedChecksumHex) {
        try (FileChannel channel = FileChannel.open(path, java.nio.file.StandardOpenOption.READ)) {
            Frame frame = readFrame(path, channel, kind, owner);
            if (expectedChecksumHex != null && !Long.toHexString(frame.fileChecksum()).equals(expectedChecksumHex)) {
                throw new ImageException.Corrupt(path, frame.fileBytes() - FOOTER_BYTES, "expected checksum " + expectedChecksumHex
                        + " (manifest), actual " + Long.toHexString(frame.fileChecksum()) + " (footer)");
            }
            if (frame.bodyBytes() > Integer.MAX_VALUE - 64) {
                throw new ImageException.Corrupt(path, 0, "expected a body below 2 GiB, actual " + frame.bodyBytes() + " bytes");
            }
            verifyFileChecksum(frame, channel);
            return readAt(channel, HEADER_BYTES, (int) frame.bodyBytes()).array();
        } catch (java.nio.file.NoSuchFileException e) {
            throw new ImageException.Missing(path, "is missing", e);
        } catch (IOException e) {
            throw new ImageException.Missing(path, "cannot be read: " + e, e);
        }
    }
}
