package dev.thaw.image;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * An image as the files object storage holds ({@code thaw push}, {@code thaw pull}, {@code thaw restore s3://...}): which
 * files, in which order, with which checksums (the ones a local open checks), and the manifest made portable: its store
 * directory the image's own ({@value ImageWriter#DEFAULT_STORE}), so that a fetched image opens wherever it lands. Pure
 * file work; the transfer itself is the {@code objectstore} package's.
 */
public final class PortableImage {
    public static final String MANIFEST = ImageWriter.MANIFEST;
    public static final String STORE = ImageWriter.DEFAULT_STORE;
    public static final String MAC = ImageMac.FILE;

    private PortableImage() {}

    /** How a fetched file's bytes are checked as they arrive. */
    public sealed interface Check {
        /** A framed file: XXH3-64 of every byte before its {@value Framing#FOOTER_BYTES}-byte footer, hex as the manifest records it. */
        record FileChecksum(String hex) implements Check {}

        /** A guest file (kernel, initrd): SHA-256, hex. */
        record Sha256(String hex) implements Check {}

        /** {@code image.mac}: checked with the key at the open that follows, when a key is configured (as any open does). */
        record AtOpen() implements Check {}
    }

    /** One file: its path relative to the image directory (a pack: to the store), its size and its check. */
    public record Part(String name, long byteSize, Check check) {}

    /**
     * What an image is made of besides its manifest, in the order a restore wants it: the image's files, then its packs
     * with the working set's queue-order copy first (the last pack the manifest lists when it has a working-set section).
     */
    public record Layout(List<Part> files, List<Part> packs) {
        public long byteSize() {
            return files.stream().mapToLong(Part::byteSize).sum() + packs.stream().mapToLong(Part::byteSize).sum();
        }
    }

    public static Layout layout(Manifest m) {
        List<Part> files = new ArrayList<>();
        for (Manifest.FileEntry f : m.files()) files.add(new Part(f.name(), f.byteSize(), new Check.FileChecksum(f.checksum())));
        for (Manifest.GuestFile g : m.guestFiles()) {
            files.add(new Part(Manifest.GUEST_FILES_DIRECTORY + "/" + g.role(), g.byteSize(), new Check.Sha256(g.sha256())));
        }
        List<Part> packs = new ArrayList<>();
        for (Manifest.PackEntry p : m.storage().packs()) packs.add(new Part(p.file(), p.byteSize(), new Check.FileChecksum(p.checksum())));
        boolean hasWorkingSet = m.files().stream().anyMatch(f -> f.kind().equals("working_set"));
        if (hasWorkingSet && packs.size() > 1) packs.addFirst(packs.removeLast());
        return new Layout(List.copyOf(files), List.copyOf(packs));
    }

    /**
     * The manifest as object storage holds it: the image's own bytes when its store is its own and it records
     * {@code diskBasesSha256} (the {@link DiskBases#sha256()} of the list of disk bases the push uploads; null for an image
     * without disks), else a manifest that differs only in naming {@value ImageWriter#DEFAULT_STORE} as its store and
     * recording that SHA-256 (framed anew, same image id; MACed anew when the image has a MAC).
     *
     * @param file    the framed manifest file's bytes
     * @param mac     {@code image.mac}'s bytes for that manifest, if the image has one: the image's own, or recomputed with
     *                the configured key for a rewritten manifest
     */
    public record Portable(Manifest manifest, byte[] file, boolean rewritten, Optional<byte[]> mac) {
        /** The whole-file checksum of the manifest (its footer's), hex: it names this version of the image. */
        public String checksum() {
            return fileChecksum(file);
        }
    }

    public static Portable portable(CheckpointImage image, String diskBasesSha256) {
        Path dir = image.directory();
        Path manifestPath = dir.resolve(MANIFEST);
        Path macPath = dir.resolve(MAC);
        try {
            Optional<byte[]> mac = Files.exists(macPath) ? Optional.of(Files.readAllBytes(macPath)) : Optional.empty();
            Manifest m = image.manifest();
            boolean ownStore = m.storage().storeDirectory().equals(STORE);
            if (ownStore && java.util.Objects.equals(m.diskBasesSha256(), diskBasesSha256)) {
                return new Portable(m, Files.readAllBytes(manifestPath), false, mac);
            }
            Manifest.Storage s = m.storage();
            Manifest own = m.withFiles(m.files(), new Manifest.Storage(s.codec(), s.zstdLevel(), s.groupPageCount(), STORE, s.packs()))
                    .withDiskBasesSha256(diskBasesSha256);
            byte[] body = ImageWriter.JSON.writeValueAsBytes(own);
            if (mac.isPresent()) {
                String why = ownStore ? "its manifest is to record the SHA-256 of its disk bases' list" : "its manifest names a shared store,"
                        + " which a portable manifest replaces by its own";
                ImageMac.Key key = ImageMac.configured().orElseThrow(() -> new ImageException.CannotWrite(macPath, "the image has a MAC and "
                        + why + ": expected a key in " + ImageMac.KEY_ENV + " to MAC the new manifest with, actual none", null));
                mac = Optional.of((ImageMac.compute(key, body, own, dir) + "\n").getBytes(java.nio.charset.StandardCharsets.US_ASCII));
            }
            return new Portable(own, framed(FileKind.MANIFEST, java.util.UUID.fromString(m.imageId()), body), true, mac);
        } catch (IOException e) {
            throw new ImageException.Missing(manifestPath, "cannot be read: " + e, e);
        }
    }

    private static byte[] framed(FileKind kind, java.util.UUID owner, byte[] body) {
        byte[] header = Framing.header(kind, owner);
        byte[] out = new byte[header.length + body.length + Framing.FOOTER_BYTES];
        System.arraycopy(header, 0, out, 0, header.length);
        System.arraycopy(body, 0, out, header.length, body.length);
        byte[] footer = Framing.footer(body.length, Framing.xxh3(out, 0, header.length + body.length));
        System.arraycopy(footer, 0, out, header.length + body.length, footer.length);
        return out;
    }

    /**
     * Reads and checks a fetched manifest (frame, checksum, JSON, the fields every reader relies on), that its names stay
     * inside the image and its store (the fetch writes files by them before the image is opened), and that it is portable:
     * its store is the image's own.
     */
    public static Manifest readManifest(Path file) {
        Manifest m = Manifest.read(file);
        CheckpointImage.checkNames(file, m);
        if (!m.storage().storeDirectory().equals(STORE)) {
            throw new ImageException.Corrupt(file, Framing.HEADER_BYTES, "storage.storeDirectory: expected '" + STORE
                    + "' (a pushed image keeps its packs in its own store), actual '" + m.storage().storeDirectory() + "'");
        }
        return m;
    }

    /** A framed file's whole-file checksum (its footer's, as the manifest records it), hex: a manifest's names its version. */
    public static String fileChecksum(byte[] framedFile) {
        return Long.toHexString(Framing.xxh3(framedFile, 0, (int) checksummedBytes(framedFile.length)));
    }

    /** Bytes a framed file's whole-file checksum covers: all but the footer. */
    public static long checksummedBytes(long fileBytes) {
        return Math.max(0, fileBytes - Framing.FOOTER_BYTES);
    }
}
