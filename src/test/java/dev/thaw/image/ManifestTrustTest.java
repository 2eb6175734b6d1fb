package dev.thaw.image;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.testing.Seeds;
import dev.thaw.testing.SyntheticGuest;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
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
        }
        dev.thaw.util.FileTrees.deleteQuietly(copy);
        copyTree(img, copy);
        rewriteManifest(copy, m -> {
            Manifest.PackEntry p = m.storage().packs().getFirst();
            Manifest.Storage s = m.storage();
            return new Manifest(m.formatVersion(), m.imageId(), m.createdAt(), m.thawVersion(), m.source(), m.ramBlocks(), m.ramSectionId(),
                    m.ramSectionVersion(), new Manifest.Storage(s.codec(), s.zstdLevel(), s.groupPageCount(), "../" + random.nextInt(9),
                    List.of(new Manifest.PackEntry(p.packId(), "../" + p.file(), p.byteSize(), p.checksum()))), m.files(), m.stats(), m.pageOrder());
        });
        assertThatThrownBy(() -> CheckpointImage.open(copy)).isInstanceOf(ImageException.Corrupt.class).hasMessageContaining("pack file name");
        assertThat(dir.resolve("outside.thaw")).doesNotExist();
    }

    private static Manifest withFiles(Manifest m, List<Manifest.FileEntry> files) {
        return new Manifest(m.formatVersion(), m.imageId(), m.createdAt(), m.thawVersion(), m.source(), m.ramBlocks(), m.ramSectionId(),
                m.ramSectionVersion(), m.storage(), files, m.stats(), m.pageOrder());
    }

    private static void copyTree(Path from, Path to) throws Exception {
        try (var walk = Files.walk(from)) {
            for (Path p : walk.toList()) Files.copy(p, to.resolve(from.relativize(p).toString()));
        }
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
