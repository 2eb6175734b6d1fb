package dev.thaw.image;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.thaw.testing.Seeds;
import dev.thaw.testing.SyntheticGuest;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.UUID;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** What a manifest says is checked, not followed blindly: names stay inside the image, recorded checksums are compared. */
class ManifestTrustTest {
    private static Path saved(Path dir, String test) {
        Path img = dir.resolve("img");
        ImageRoundTripTest.saveInto(img, SyntheticGuest.random(Seeds.random(test), 1, 200, 0.2, 0.1), ImageWriter.Options.defaults());
        return img;
    }

    /** Rewrites a framed file of the image (a valid frame, the image's own id) with a changed body. */
    private static void reframe(Path img, String name, FileKind kind, UnaryOperator<byte[]> change) {
        Manifest m = Manifest.read(img.resolve(ImageWriter.MANIFEST));
        byte[] body = change.apply(Framing.readWholeBody(img.resolve(name), kind, null));
        try (FramedWriter out = new FramedWriter(img.resolve(name), kind, UUID.fromString(m.imageId()))) {
            out.write(body);
            out.finish();
        }
    }

    private static void rewriteManifest(Path img, UnaryOperator<Manifest> change) throws Exception {
        Manifest m = change.apply(Manifest.read(img.resolve(ImageWriter.MANIFEST)));
        reframe(img, ImageWriter.MANIFEST, FileKind.MANIFEST, old -> {
            try {
                return ImageWriter.JSON.writeValueAsBytes(m);
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        });
    }

    private static Manifest withDrop(Manifest m, Manifest.PageCacheDrop drop) {
        return new Manifest(m.formatVersion(), m.imageId(), m.createdAt(), m.thawVersion(), m.source(), m.ramBlocks(), m.ramSectionId(),
                m.ramSectionVersion(), m.storage(), m.files(), m.stats(), m.pageOrder(), m.disks(), m.guestFiles(), drop, m.diskBasesSha256());
    }

    /** The dropped page cache is written only when there was a drop, read back as written, and a drop_caches value of 0 is refused. */
    @Test
    void aPageCacheDropIsOptionalReadBackAndChecked(@TempDir Path dir) throws Exception {
        Path img = saved(dir, "aPageCacheDropIsOptionalReadBackAndChecked");
        assertThat(new String(Manifest.readBody(img.resolve(ImageWriter.MANIFEST)), java.nio.charset.StandardCharsets.UTF_8))
                .as("an image saved without a drop is as before").doesNotContain("pageCacheDrop");
        Manifest.PageCacheDrop drop = new Manifest.PageCacheDrop(1, 90L << 20, 22L << 20, 300L << 20, 370L << 20, true, 3_500_000_000L);
        rewriteManifest(img, m -> withDrop(m, drop));
        try (CheckpointImage image = CheckpointImage.open(img)) {
            assertThat(image.manifest().pageCacheDrop()).isEqualTo(drop);
            assertThat(image.manifest().pageCacheDrop().droppedBytes()).isEqualTo(68L << 20);
        }
        rewriteManifest(img, m -> withDrop(m, new Manifest.PageCacheDrop(0, 1, 1, 1, 1, false, 1)));
        assertThatThrownBy(() -> CheckpointImage.open(img)).isInstanceOf(ImageException.Corrupt.class)
                .hasMessageContaining("pageCacheDrop.dropCachesValue: expected 1-3, actual 0");
    }

    /** A disk's bootIndex: absent in an older manifest and for a disk without one (written as before), kept, range-checked. */
    @Test
    void aDisksBootIndexIsOptionalReadBackAndChecked(@TempDir Path dir) throws Exception {
        Path img = saved(dir, "aDisksBootIndexIsOptionalReadBackAndChecked");
        Path file = img.resolve(ImageWriter.MANIFEST);
        var json = new com.fasterxml.jackson.databind.ObjectMapper();
        ObjectNode old = (ObjectNode) json.readTree(Manifest.readBody(file));
        old.put("formatVersion", Manifest.VERSION_WITH_DISKS);
        // A disk as a manifest before the field has it: no bootIndex key.
        ObjectNode disk = old.putArray("disks").addObject().put("node", "disk0").put("pciAddress", "04.0").put("format", "raw")
                .put("base", "/srv/vm/disk.img").put("readOnly", false).put("virtualByteSize", 1L << 30);
        disk.putObject("identity").put("byteSize", 1L << 30).put("modifiedAt", "2026-11-30T00:00:00Z").put("headTailSha256", "00");
        Manifest before = Manifest.parse(file, json.writeValueAsBytes(old));
        assertThat(before.disks()).singleElement().extracting(Manifest.Disk::bootIndex).isNull();
        assertThat(json.writeValueAsString(before.disks().getFirst())).as("written as before").doesNotContain("bootIndex");
        disk.put("bootIndex", 2);
        Manifest with = Manifest.parse(file, json.writeValueAsBytes(old));
        assertThat(with.disks().getFirst().bootIndex()).isEqualTo(2);
        assertThat(Manifest.parse(file, ImageWriter.JSON.writeValueAsBytes(with)).disks().getFirst().bootIndex()).isEqualTo(2);
        for (int bad : new int[] {-1, 1000}) {
            disk.put("bootIndex", bad);
            assertThatThrownBy(() -> Manifest.parse(file, json.writeValueAsBytes(old))).isInstanceOf(ImageException.Corrupt.class)
                    .hasMessageContaining("disks[].bootIndex of disk0: expected 0-999 or absent, actual " + bad);
        }
    }

    @Test
    void aWellFramedFileThatIsNotTheOneTheManifestRecordsIsRefused(@TempDir Path dir) {
        Path img = saved(dir, "aWellFramedFileThatIsNotTheOneTheManifestRecordsIsRefused");
        // The same image's page map with one stored page turned into a zero page: same size, valid frame and owner.
        reframe(img, ImageWriter.PAGE_MAP, FileKind.PAGE_MAP, body -> {
            ByteBuffer b = ByteBuffer.wrap(body.clone()).order(ByteOrder.LITTLE_ENDIAN);
            for (int at = 4; at < b.capacity(); at += 8) {
                if (b.getLong(at) != PageMap.ZERO) {
                    b.putLong(at, PageMap.ZERO);
                    break;
                }
            }
            return b.array();
        });
        assertThatThrownBy(() -> CheckpointImage.open(img)).isInstanceOf(ImageException.Corrupt.class)
                .hasMessageContaining(ImageWriter.PAGE_MAP).hasMessageContaining("(manifest)");
    }

    @Test
    void namesThatLeaveTheImageAreRefused(@TempDir Path dir) throws Exception {
        Path img = saved(dir, "namesThatLeaveTheImageAreRefused");
        Path copy = dir.resolve("copy");
        Random random = new Random(1);
        for (String bad : List.of("../outside.thaw", "/etc/passwd", "sub/dir.thaw", "..")) {
            dev.thaw.util.FileTrees.deleteQuietly(copy);
            copyTree(img, copy);
            rewriteManifest(copy, m -> {
                List<Manifest.FileEntry> files = new ArrayList<>(m.files());
                Manifest.FileEntry first = files.removeFirst();
                files.addFirst(new Manifest.FileEntry(bad, first.kind(), first.byteSize(), first.checksum()));
                return withFiles(m, files);
            });
            assertThatThrownBy(() -> CheckpointImage.open(copy)).as(bad).isInstanceOf(ImageException.Corrupt.class)
                    .hasMessageContaining("plain file name").hasMessageContaining(bad);
            // A fetched manifest too (thaw pull, restore s3://), before the fetch writes anything by its names.
            assertThatThrownBy(() -> PortableImage.readManifest(copy.resolve(ImageWriter.MANIFEST))).as("fetched: " + bad)
                    .isInstanceOf(ImageException.Corrupt.class).hasMessageContaining("plain file name").hasMessageContaining(bad);
        }
        dev.thaw.util.FileTrees.deleteQuietly(copy);
        copyTree(img, copy);
        rewriteManifest(copy, m -> {
            Manifest.PackEntry p = m.storage().packs().getFirst();
            Manifest.Storage s = m.storage();
            return m.withFiles(m.files(), new Manifest.Storage(s.codec(), s.zstdLevel(), s.groupPageCount(), "../" + random.nextInt(9),
                    List.of(new Manifest.PackEntry(p.packId(), "../" + p.file(), p.byteSize(), p.checksum()))));
        });
        assertThatThrownBy(() -> CheckpointImage.open(copy)).isInstanceOf(ImageException.Corrupt.class).hasMessageContaining("pack file name");
        assertThatThrownBy(() -> PortableImage.readManifest(copy.resolve(ImageWriter.MANIFEST))).isInstanceOf(ImageException.Corrupt.class)
                .hasMessageContaining("pack file name");
        assertThat(dir.resolve("outside.thaw")).doesNotExist();
    }

    private static Manifest withFiles(Manifest m, List<Manifest.FileEntry> files) {
        return m.withFiles(files, m.storage());
    }

    private static void copyTree(Path from, Path to) throws Exception {
        try (var walk = Files.walk(from)) {
            for (Path p : walk.toList()) Files.copy(p, to.resolve(from.relativize(p).toString()));
        }
    }

    /**
     * Found by fuzzing (FuzzTest, image-manifest): a manifest whose JSON parses but lacks a field, or has one no writer
     * makes, failed with a NullPointerException or an IllegalArgumentException (a bad imageId, a file of an unknown kind
     * at verify), or was taken: a null file checksum skipped the comparison with the file, a made-up codec was used by
     * {@code ws --learn}. Each must be a corrupt manifest naming the field.
     */
    @Test
    void manifestFieldsThatReadersRelyOnAreChecked(@TempDir Path dir) throws Exception {
        Path img = saved(dir, "manifestFieldsThatReadersRelyOnAreChecked");
        Path copy = dir.resolve("copy");
        var json = new com.fasterxml.jackson.databind.ObjectMapper();
        Map<String, java.util.function.Consumer<ObjectNode>> edits = new LinkedHashMap<>();
        edits.put("imageId", m -> m.put("imageId", "2147483647"));
        edits.put("files[].name", m -> ((ObjectNode) m.withArray("files").get(0)).putNull("name"));
        edits.put("ramBlocks[]", m -> m.withArray("ramBlocks").set(0, json.nullNode()));
        edits.put("files[].kind", m -> ((ObjectNode) m.withArray("files").get(0)).put("kind", "/"));
        edits.put("files[].checksum", m -> ((ObjectNode) m.withArray("files").get(0)).putNull("checksum"));
        edits.put("storage", m -> m.remove("storage"));
        edits.put("storage.codec", m -> m.with("storage").put("codec", "zip"));
        edits.put("storage.groupPageCount", m -> m.with("storage").put("groupPageCount", -1));
        edits.put("source", m -> m.putNull("source"));
        for (var edit : edits.entrySet()) {
            dev.thaw.util.FileTrees.deleteQuietly(copy);
            copyTree(img, copy);
            reframe(copy, ImageWriter.MANIFEST, FileKind.MANIFEST, body -> {
                try {
                    ObjectNode m = (ObjectNode) json.readTree(body);
                    edit.getValue().accept(m);
                    return json.writeValueAsBytes(m);
                } catch (java.io.IOException e) {
                    throw new IllegalStateException(e);
                }
            });
            assertThatThrownBy(() -> {
                try (CheckpointImage image = CheckpointImage.open(copy)) {
                    image.verify();
                }
            }).as(edit.getKey()).isInstanceOf(ImageException.Corrupt.class).hasMessageContaining(ImageWriter.MANIFEST)
                    .hasMessageContaining("manifest " + edit.getKey());
        }
    }

    /** Found by fuzzing (image-metadata): an extent table whose body is shorter than its count, resealed, gave a BufferUnderflowException. */
    @Test
    void anExtentTableTooShortForItsCountIsCorrupt(@TempDir Path dir) throws Exception {
        Path img = saved(dir, "anExtentTableTooShortForItsCountIsCorrupt");
        reframe(img, ImageWriter.EXTENT_TABLE, FileKind.EXTENT_TABLE, body -> new byte[] {1, 0});
        byte[] file = Files.readAllBytes(img.resolve(ImageWriter.EXTENT_TABLE));
        String checksum = Long.toHexString(ByteBuffer.wrap(file, file.length - 16, 8).order(ByteOrder.LITTLE_ENDIAN).getLong());
        rewriteManifest(img, m -> withFiles(m, m.files().stream().map(f -> f.name().equals(ImageWriter.EXTENT_TABLE)
                ? new Manifest.FileEntry(f.name(), f.kind(), file.length, checksum) : f).toList()));
        assertThatThrownBy(() -> CheckpointImage.open(img)).isInstanceOf(ImageException.Corrupt.class)
                .hasMessageContaining(ImageWriter.EXTENT_TABLE).hasMessageContaining("expected the extent count");
    }

    /**
     * Found by fuzzing (extent-codecs): zstd-jni throws a ZstdException for a truncated payload or a too small output
     * instead of returning an error code; Codec's contract, which Pack reports as a corrupt extent, is IllegalArgumentException.
     */
    @Test
    void zstdRefusesTruncatedAndOversizedPayloadsWithCodecsOwnError() {
        byte[] raw = new byte[4 * 4096];
        for (int i = 0; i < raw.length; i += 16) raw[i] = (byte) (i % 7);
        byte[] compressed = Codec.ZSTD.compress(raw, raw.length, 1);
        assertThat(compressed).isNotNull();
        assertThatThrownBy(() -> Codec.ZSTD.decompress(compressed, 0, compressed.length - 3, new byte[raw.length], raw.length))
                .isInstanceOf(IllegalArgumentException.class).hasMessageStartingWith("zstd");
        assertThatThrownBy(() -> Codec.ZSTD.decompress(compressed, 0, compressed.length, new byte[raw.length], 2 * 4096))
                .isInstanceOf(IllegalArgumentException.class).hasMessageStartingWith("zstd");
    }

    @Test
    void lz4RefusesTruncatedAndGarbledPayloads() {
        byte[] raw = new byte[4 * 4096];
        for (int i = 0; i < raw.length; i++) raw[i] = (byte) ((i / 7) % 13); // compressible
        byte[] compressed = Codec.LZ4.compress(raw, raw.length, 1);
        assertThat(compressed).isNotNull();
        byte[] out = new byte[raw.length];
        Codec.LZ4.decompress(compressed, 0, compressed.length, out, raw.length);
        assertThat(out).isEqualTo(raw);
        // The payload's end is where the extent says, though the buffer holds more: a decompressor must not read on.
        assertThatThrownBy(() -> Codec.LZ4.decompress(compressed, 0, compressed.length - 1, new byte[raw.length], raw.length))
                .isInstanceOf(IllegalArgumentException.class).hasMessageStartingWith("lz4");
        byte[] garbled = compressed.clone();
        for (int i = 0; i < 16; i++) garbled[i] = (byte) 0xFF;
        assertThatThrownBy(() -> Codec.LZ4.decompress(garbled, 0, garbled.length, new byte[raw.length], raw.length))
                .isInstanceOf(IllegalArgumentException.class);
    }
}
