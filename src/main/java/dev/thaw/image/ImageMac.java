package dev.thaw.image;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Optional;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/**
 * An optional keyed MAC for operators who move images between hosts: HMAC-SHA256 with the key in
 * the file {@code THAW_IMAGE_KEY_FILE} (or {@code -Dthaw.image.key.file}) names. It covers the
 * manifest's body and every file the manifest lists (device state, page map, extent table, working
 * set): all that QEMU or Thaw parses. Packs, the guest's RAM, are bound by the manifest's XXH3-64
 * checksums, which catch damage, not a forger; their bytes reach only the guest. With a key, saves
 * and working-set attaches write {@code image.mac}, and every open requires one of its MACs to match.
 */
final class ImageMac {
    static final String FILE = "image.mac";
    static final String KEY_ENV = "THAW_IMAGE_KEY_FILE";
    static final String KEY_PROPERTY = "thaw.image.key.file";
    private static final int MIN_KEY_BYTES = 32;
    private static final String ALGORITHM = "HmacSHA256";

    record Key(Path file, byte[] bytes) {}

    private ImageMac() {}

    /** The key configured for this process, if any; a key file others can read or write is refused. */
    static Optional<Key> configured() {
        String name = System.getenv(KEY_ENV);
        if (name == null || name.isBlank()) name = System.getProperty(KEY_PROPERTY);
        if (name == null || name.isBlank()) return Optional.empty();
        Path file = Path.of(name).toAbsolutePath();
        try {
            int self = (int) Files.getAttribute(Path.of("/proc/self"), "unix:uid");
            int uid = (int) Files.getAttribute(file, "unix:uid");
            int mode = (int) Files.getAttribute(file, "unix:mode");
            if ((uid != self && uid != 0) || (mode & 077) != 0 || !Files.isRegularFile(file)) {
                throw new IllegalArgumentException(KEY_ENV + " " + file + ": expected a regular file of uid " + self
                        + " or root readable by its owner only, actual uid " + uid + ", mode " + Integer.toOctalString(mode & 07777));
            }
            byte[] key = Files.readAllBytes(file);
            if (key.length < MIN_KEY_BYTES) {
                throw new IllegalArgumentException(KEY_ENV + " " + file + ": expected at least " + MIN_KEY_BYTES + " bytes of key, actual "
                        + key.length);
            }
            return Optional.of(new Key(file, key));
        } catch (IOException e) {
            throw new IllegalArgumentException(KEY_ENV + " " + file + ": expected a readable key file, actual " + e, e);
        }
    }

    /** The MAC of an image whose manifest has {@code manifestBody}, its listed files read from {@code dir}. */
    static String compute(Key key, byte[] manifestBody, Manifest manifest, Path dir) {
        try {
            Mac mac = Mac.getInstance(ALGORITHM);
            mac.init(new SecretKeySpec(key.bytes(), ALGORITHM));
            update(mac, manifestBody);
            byte[] buffer = new byte[1 << 20];
            for (Manifest.FileEntry f : manifest.files()) {
                update(mac, f.name().getBytes(StandardCharsets.UTF_8));
                Path path = dir.resolve(f.name());
                mac.update(ByteBuffer.allocate(Long.BYTES).putLong(Files.size(path)).array());
                try (InputStream in = Files.newInputStream(path)) {
                    for (int n; (n = in.read(buffer)) > 0; ) mac.update(buffer, 0, n);
                }
            }
            return HexFormat.of().formatHex(mac.doFinal());
        } catch (IOException e) {
            throw new ImageException.Missing(dir, "cannot be read for its MAC: " + e, e);
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException(ALGORITHM + " is unavailable: " + e, e);
        }
    }

    /** Length-prefixed, so that no two sequences of parts give the same input. */
    private static void update(Mac mac, byte[] part) {
        mac.update(ByteBuffer.allocate(Long.BYTES).putLong(part.length).array());
        mac.update(part);
    }

    /**
     * The MACs {@code image.mac} in {@code dir} accepts; none if it has no such file. A file that is there holds at least
     * one line, each the hex of a MAC (what {@link #write} writes), or it is corrupt.
     */
    static List<String> read(Path dir) {
        Path file = dir.resolve(FILE);
        if (!Files.exists(file)) return List.of();
        String text;
        try {
            text = new String(Files.readAllBytes(file), StandardCharsets.ISO_8859_1); // every byte a char: no decoding error
        } catch (IOException e) {
            throw new ImageException.Missing(file, "cannot be read: " + e, e);
        }
        List<String> macs = new ArrayList<>();
        String[] lines = text.split("\n", -1);
        for (int i = 0; i < lines.length; i++) {
            String line = lines[i].strip();
            if (line.isEmpty()) continue;
            if (!MAC_LINE.matcher(line).matches()) {
                throw new ImageException.Corrupt(file, 0, "line " + (i + 1) + ": expected the hex digits of an HMAC-SHA256 (64 of"
                        + " [0-9a-f]), actual '" + printable(line) + "'");
            }
            macs.add(line);
        }
        if (macs.isEmpty()) throw new ImageException.Corrupt(file, 0, "expected at least one MAC, actual none (" + text.length() + " bytes)");
        return macs;
    }

    private static final java.util.regex.Pattern MAC_LINE = java.util.regex.Pattern.compile("[0-9a-f]{64}");

    /** A line as it can be shown in a message: its first 80 characters, control and non-ASCII bytes escaped. */
    private static String printable(String line) {
        StringBuilder out = new StringBuilder();
        for (char c : line.substring(0, Math.min(line.length(), 80)).toCharArray()) {
            if (c >= 0x20 && c < 0x7f) out.append(c);
            else out.append(String.format("\\x%02x", (int) c));
        }
        return line.length() > 80 ? out + "..." : out.toString();
    }

    /**
     * Replaces {@code image.mac} atomically. A manifest switch writes the old and the new MAC before
     * it and the new alone after, so a crash at any point leaves the manifest in place accepted.
     */
    static void write(Path dir, List<String> macs) {
        Path file = dir.resolve(FILE);
        Path temp = dir.resolve(FILE + ".tmp-" + ProcessHandle.current().pid());
        try {
            Files.deleteIfExists(temp);
            Files.createFile(temp, dev.thaw.util.OwnerOnly.FILE);
            Files.write(temp, (String.join("\n", macs) + "\n").getBytes(StandardCharsets.US_ASCII));
            try (var channel = java.nio.channels.FileChannel.open(temp, java.nio.file.StandardOpenOption.WRITE)) {
                channel.force(true);
            }
            Files.move(temp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            FramedWriter.syncDirectory(dir);
        } catch (IOException e) {
            throw new ImageException.CannotWrite(file, e.toString(), e);
        }
    }

    /** Requires one of the image's recorded MACs to match; throws naming the key and the image otherwise. */
    static void verify(Key key, byte[] manifestBody, Manifest manifest, Path dir) {
        List<String> recorded = read(dir);
        if (recorded.isEmpty()) {
            throw new ImageException.Missing(dir.resolve(FILE), "expected the image's MAC (" + KEY_ENV + " is set: " + key.file()
                    + "), actual none: the image was saved without a key", null);
        }
        byte[] actual = compute(key, manifestBody, manifest, dir).getBytes(StandardCharsets.US_ASCII);
        boolean matches = false;
        for (String r : recorded) matches |= MessageDigest.isEqual(r.getBytes(StandardCharsets.US_ASCII), actual);
        if (!matches) {
            throw new ImageException.Corrupt(dir.resolve(FILE), 0, "HMAC-SHA256 with the key in " + key.file() + ": expected one of "
                    + recorded + ", actual " + new String(actual, StandardCharsets.US_ASCII)
                    + " (the manifest or a file it lists was changed, or the image was made with another key)");
        }
    }
}
