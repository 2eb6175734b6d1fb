package dev.thaw.image;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.migration.SaveStreamParser;
import dev.thaw.testing.Seeds;
import dev.thaw.testing.SyntheticGuest;
import java.io.ByteArrayInputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The list of an image's disk bases (what a push carries, where a fetch put the copies) and the chains it is made of. */
class DiskBasesTest {
    private static final String SHA = "ab".repeat(32);

    /** An image with one disk (a qcow2 base of {@code identity}), without disk references. */
    private static Manifest imageWithDisk(Path dir, DiskIdentity identity) {
        SyntheticGuest guest = SyntheticGuest.random(Seeds.random("DiskBasesTest"), 1, 50, 50, 0.2, 0);
        try (ImageWriter writer = ImageWriter.create(dir.resolve("img"), ImageWriter.Options.defaults())) {
            SaveStreamParser.parse(new ByteArrayInputStream(guest.toStream(10)), ImageRoundTripTest.sink(writer));
            writer.disks(List.of(new Manifest.Disk("disk0", "04.0", "qcow2", "/saving/host/disk.qcow2", false, 1L << 20, identity)));
            return writer.commit(new Manifest.Source("7.2.22", null, List.of(), null), "test");
        }
    }

    private static DiskBases.Layer layer(String format, DiskIdentity identity, String file) {
        return new DiskBases.Layer(format, identity, SHA, file);
    }

    @Test
    void theListRoundTripsAndIsCheckedAgainstTheManifest(@TempDir Path dir) {
        DiskIdentity base = new DiskIdentity(1 << 20, "2026-11-30T09:00:00.123456789Z", "cd".repeat(32));
        DiskIdentity backing = new DiskIdentity(2 << 20, "2026-11-29T09:00:00Z", "ef".repeat(32));
        DiskBases listed = new DiskBases(List.of(new DiskBases.Disk("disk0", List.of(layer("qcow2", base, null), layer("raw", backing, null)))));
        Manifest m = imageWithDisk(dir, base).withDiskBasesSha256(listed.sha256());
        Path where = Path.of("disk-bases.json");
        assertThat(DiskBases.parse(listed.toJson(), m, where, false)).isEqualTo(listed);

        String a = SHA + "-1796029200.123456789";
        String b = SHA + "-1795942800.000000000";
        DiskBases placed = new DiskBases(List.of(new DiskBases.Disk("disk0", List.of(layer("qcow2", base, "bases/" + a),
                layer("raw", backing, "bases/" + b)))));
        assertThat(placed.sha256()).as("the copies' places are not part of what the manifest binds").isEqualTo(listed.sha256());
        assertThat(DiskBases.parse(placed.toJson(), m, where, true).chainOf(Path.of("/c/images/x"), 0))
                .containsExactly(Path.of("/c/images/x/bases/" + a), Path.of("/c/images/x/bases/" + b));
        assertThatThrownBy(() -> DiskBases.parse(placed.toJson(), m, where, false)).isInstanceOf(ImageException.Corrupt.class)
                .hasMessageContaining("disk bases: disk 0 (disk0) layer 0: expected a format (raw or qcow2), an identity, a SHA-256 (64 hex digits) and no file");

        DiskIdentity written = new DiskIdentity(1 << 20, "2026-11-30T09:05:00Z", "cd".repeat(32));
        assertThatThrownBy(() -> DiskBases.parse(new DiskBases(List.of(new DiskBases.Disk("disk0", List.of(layer("qcow2", written, null)))))
                .toJson(), m, where, false)).hasMessageContaining("disk bases: disk 0 (disk0) layer 0: expected format qcow2 and identity "
                + base + " (the manifest's), actual qcow2 and " + written);
        assertThatThrownBy(() -> DiskBases.parse(new DiskBases(List.of(new DiskBases.Disk("other", List.of(layer("qcow2", base, null)))))
                .toJson(), m, where, false)).hasMessageContaining("expected node disk0 and 1-16 layers, actual node other and 1 layers");
        assertThatThrownBy(() -> DiskBases.parse(new DiskBases(List.of()).toJson(), m, where, false))
                .hasMessageContaining("expected 1 disks (the manifest's), actual 0");
        assertThatThrownBy(() -> DiskBases.parse(new DiskBases(List.of(new DiskBases.Disk("disk0", List.of(
                new DiskBases.Layer("qcow2", base, "not-a-sha", null))))).toJson(), m, where, false)).hasMessageContaining("a SHA-256 (64 hex digits)");
        assertThatThrownBy(() -> DiskBases.parse("{\"disks\": 3}".getBytes(StandardCharsets.UTF_8), m, where, false))
                .isInstanceOf(ImageException.Corrupt.class).hasMessageContaining("disk bases: expected JSON of disks and their layers");
    }

    /**
     * The list decides which files QEMU opens and which SHA-256s the copies are checked against: a list whose layers differ
     * from the ones the manifest's {@code diskBasesSha256} binds is refused (a forged backing layer, another SHA-256), as is
     * any list when the manifest records none; and a carried list places each copy in the image's {@code bases/} under the
     * name of its SHA-256 and time, never at an absolute path or out of it.
     */
    @Test
    void aListIsBoundToTheManifestAndPlacesItsCopiesInTheImagesBasesOnly(@TempDir Path dir) {
        DiskIdentity base = new DiskIdentity(1 << 20, "2026-11-30T09:00:00Z", "cd".repeat(32));
        DiskIdentity backing = new DiskIdentity(2 << 20, "2026-11-29T09:00:00Z", "ef".repeat(32));
        DiskBases pushed = new DiskBases(List.of(new DiskBases.Disk("disk0", List.of(layer("qcow2", base, null), layer("raw", backing, null)))));
        Manifest unbound = imageWithDisk(dir, base);
        Manifest m = unbound.withDiskBasesSha256(pushed.sha256());
        Path where = Path.of("disk-bases.json");

        DiskBases forged = new DiskBases(List.of(new DiskBases.Disk("disk0", List.of(layer("qcow2", base, null),
                new DiskBases.Layer("raw", backing, "01".repeat(32), null)))));
        assertThatThrownBy(() -> DiskBases.parse(forged.toJson(), m, where, false)).isInstanceOf(ImageException.Corrupt.class)
                .hasMessageContaining("disk bases: expected the list whose SHA-256 the manifest records (diskBasesSha256 " + pushed.sha256()
                        + "), actual a list with SHA-256 " + forged.sha256());
        DiskBases deeper = new DiskBases(List.of(new DiskBases.Disk("disk0", List.of(layer("qcow2", base, null), layer("qcow2", backing, null),
                layer("raw", backing, null)))));
        assertThatThrownBy(() -> DiskBases.parse(deeper.toJson(), m, where, false)).hasMessageContaining("actual a list with SHA-256 " + deeper.sha256());
        assertThatThrownBy(() -> DiskBases.parse(pushed.toJson(), unbound, where, false))
                .hasMessageContaining("(diskBasesSha256 absent: the image was not pushed by a Thaw that binds its list; push it again)");

        String a = SHA + "-1796029200.000000000";
        String b = SHA + "-1795942800.000000000";
        for (String file : List.of("/etc/passwd", "../../bases/" + b, "bases/../../x/" + b, "bases/" + a, b, "bases/" + b + "/.", "")) {
            DiskBases placed = new DiskBases(List.of(new DiskBases.Disk("disk0", List.of(layer("qcow2", base, "bases/" + a),
                    layer("raw", backing, file)))));
            assertThatThrownBy(() -> DiskBases.parse(placed.toJson(), m, where, true)).as(file).isInstanceOf(ImageException.Corrupt.class)
                    .hasMessageContaining("disk bases: disk 0 (disk0) layer 1: file: expected 'bases/" + b + "' (the copy of its SHA-256 and"
                            + " time in the image's bases directory), actual '" + file + "'");
        }
    }

    /** A list planted in a local image that was never fetched (its manifest records none) is refused at the open, not followed. */
    @Test
    void aListPlantedInALocalImageIsRefused(@TempDir Path dir) throws Exception {
        DiskIdentity base = new DiskIdentity(1 << 20, "2026-11-30T09:00:00Z", "cd".repeat(32));
        imageWithDisk(dir, base);
        DiskBases planted = new DiskBases(List.of(new DiskBases.Disk("disk0", List.of(layer("qcow2", base, "/tmp/elsewhere.qcow2")))));
        Files.write(dir.resolve("img").resolve(DiskBases.FILE), planted.toJson());
        assertThatThrownBy(() -> CheckpointImage.open(dir.resolve("img")).close()).isInstanceOf(ImageException.Corrupt.class)
                .hasMessageContaining("disk bases: disk 0 (disk0) layer 0: file: expected 'bases/" + SHA + "-1796029200.000000000'")
                .hasMessageContaining("actual '/tmp/elsewhere.qcow2'");
    }

    /** A manifest may not list a file under the names the carried list and its copies take in an image directory. */
    @Test
    void theCarriedListsNamesAreReserved(@TempDir Path dir) {
        Manifest m = imageWithDisk(dir, new DiskIdentity(1 << 20, "2026-11-30T09:00:00Z", "cd".repeat(32)));
        for (String name : List.of(DiskBases.FILE, DiskBases.DIRECTORY)) {
            List<Manifest.FileEntry> files = new java.util.ArrayList<>(m.files());
            Manifest.FileEntry f = files.getFirst();
            files.set(0, new Manifest.FileEntry(name, f.kind(), f.byteSize(), f.checksum()));
            assertThatThrownBy(() -> CheckpointImage.checkNames(Path.of("manifest.thaw"), m.withFiles(files, m.storage())))
                    .isInstanceOf(ImageException.Corrupt.class).hasMessageContaining("actual '" + name + "'");
        }
    }

    /** A push takes a base's chain whole, or refuses it: a backing name Thaw cannot follow would leave QEMU a file short. */
    @Test
    void theWholeChainIsWalkedToItsEndOrRefused(@TempDir Path dir) throws Exception {
        Path low = Files.write(dir.resolve("low.raw"), new byte[8192]);
        Path mid = DiskReferencesTest.qcow2Naming(dir.resolve("mid.qcow2"), "low.raw", 512, 4096);
        Path top = DiskReferencesTest.qcow2Naming(dir.resolve("top.qcow2"), mid.toString(), 512, 4096);
        assertThat(Qcow2Chain.whole(top)).containsExactly(top, mid, low);
        assertThat(Qcow2Chain.formatOf(mid)).isEqualTo("qcow2");
        assertThat(Qcow2Chain.formatOf(low)).isEqualTo("raw");

        Path json = DiskReferencesTest.qcow2Naming(dir.resolve("json.qcow2"), "json:{\"driver\":\"raw\"}", 512, 4096);
        assertThatThrownBy(() -> Qcow2Chain.whole(json)).isInstanceOf(java.io.IOException.class)
                .hasMessage(json + ": expected a backing file name Thaw can follow (a plain file name inside the file's first 1048576 bytes),"
                        + " actual another (a protocol, a JSON description, or one beyond them)");
        Path far = DiskReferencesTest.qcow2Naming(dir.resolve("far.qcow2"), "low.raw", DiskIdentity.SAMPLE_BYTES, DiskIdentity.SAMPLE_BYTES + 4096);
        assertThat(Qcow2Chain.of(far)).as("the restore's walk ends there").containsExactly(far);
        assertThatThrownBy(() -> Qcow2Chain.whole(DiskReferencesTest.qcow2Naming(dir.resolve("on-far.qcow2"), far.toString(), 512, 4096)))
                .hasMessageStartingWith(far + ": expected a backing file name Thaw can follow");
    }
}
