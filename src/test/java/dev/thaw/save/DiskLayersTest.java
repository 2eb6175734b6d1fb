package dev.thaw.save;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.thaw.image.DiskBlockIndex;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** What of a qcow2 chain a save indexes, from qemu-img's JSON (as QEMU 7.2.22's qemu-img printed it here). */
class DiskLayersTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @Test
    void onlyTheFilesOwnUncompressedNonZeroDataIsIndexedTrimmedToWholeGuestBlocks() throws Exception {
        JsonNode map = JSON.readTree("""
                [{ "start": 0, "length": 65536, "depth": 1, "present": true, "zero": false, "data": true, "offset": 327680},
                { "start": 65536, "length": 65536, "depth": 0, "present": true, "zero": false, "data": true, "offset": 327680},
                { "start": 131072, "length": 65536, "depth": 0, "present": true, "zero": true, "data": false, "offset": 393216},
                { "start": 196608, "length": 65536, "depth": 0, "present": true, "zero": false, "data": true},
                { "start": 262144, "length": 65536, "depth": 0, "present": true, "zero": true, "data": true, "offset": 458752},
                { "start": 327680, "length": 65536, "depth": 0, "present": false, "zero": true, "data": false},
                { "start": 395264, "length": 10240, "depth": 0, "present": true, "zero": false, "data": true, "offset": 526336},
                { "start": 409600, "length": 8192, "depth": 0, "present": true, "zero": false, "data": true, "offset": 532992}]
                """);
        assertThat(DiskLayers.dataExtents(map)).containsExactly(
                new DiskBlockIndex.Extent(327680, 65536), // its own data; the backing file's (depth 1) is not this file's
                // zero clusters (allocated or not), a compressed cluster (no offset) and a data range whose guest and file
                // offsets are aligned differently are left out; a range starting mid-block keeps its whole blocks only
                // (guest 395264 = 96.5 blocks: its blocks 97 and 98, at file offset 526336 + 2048)
                new DiskBlockIndex.Extent(528384, 8192));
    }

    @Test
    void aLayerIsIndexedOnlyWhereQemuImgAndTheHeadersAgreeAndItsBytesAreTheGuests() throws Exception {
        Path top = Path.of("/d/top.qcow2");
        Path mid = Path.of("/d/mid.qcow2");
        Path raw = Path.of("/d/base.raw");
        List<String> warnings = new ArrayList<>();
        JsonNode plain = JSON.readTree("""
                [{"filename": "/d/top.qcow2", "format": "qcow2", "format-specific": {"type": "qcow2", "data": {"compat": "1.1"}}},
                 {"filename": "/d/mid.qcow2", "format": "qcow2", "format-specific": {"type": "qcow2", "data": {"compat": "1.1"}}},
                 {"filename": "/d/base.raw", "format": "raw"}]""");
        assertThat(DiskLayers.indexable(List.of(top, mid, raw), plain, warnings::add)).containsExactly(
                new DiskLayers.Layer(0, top, "qcow2"), new DiskLayers.Layer(1, mid, "qcow2"), new DiskLayers.Layer(2, raw, "raw"));
        assertThat(warnings).isEmpty();

        JsonNode otherName = JSON.readTree("""
                [{"filename": "/d/top.qcow2", "format": "qcow2"}, {"filename": "/elsewhere/mid.qcow2", "format": "qcow2"}]""");
        assertThat(DiskLayers.indexable(List.of(top, mid), otherName, warnings::add)).containsExactly(new DiskLayers.Layer(0, top, "qcow2"));
        assertThat(warnings).singleElement().asString().contains("layer 1: expected qemu-img to name /d/mid.qcow2")
                .contains("actual /elsewhere/mid.qcow2");

        warnings.clear();
        JsonNode dataFile = JSON.readTree("""
                [{"filename": "/d/top.qcow2", "format": "qcow2", "format-specific": {"type": "qcow2", "data": {"data-file": "/d/top.data"}}},
                 {"filename": "/d/mid.qcow2", "format": "qcow2"}]""");
        assertThat(DiskLayers.indexable(List.of(top, mid), dataFile, warnings::add)).isEmpty();
        assertThat(warnings).singleElement().asString().contains("external data file");

        warnings.clear();
        JsonNode encrypted = JSON.readTree("""
                [{"filename": "/d/top.qcow2", "format": "qcow2"}, {"filename": "/d/mid.qcow2", "format": "qcow2", "encrypted": true}]""");
        assertThat(DiskLayers.indexable(List.of(top, mid), encrypted, warnings::add)).containsExactly(new DiskLayers.Layer(0, top, "qcow2"));
        assertThat(warnings).singleElement().asString().contains("layer 1").contains("encrypted");

        warnings.clear();
        JsonNode vmdk = JSON.readTree("""
                [{"filename": "/d/top.qcow2", "format": "qcow2"}, {"filename": "/d/mid.qcow2", "format": "vmdk"}]""");
        assertThat(DiskLayers.indexable(List.of(top, mid), vmdk, warnings::add)).hasSize(1);
        assertThat(warnings).singleElement().asString().contains("actual format vmdk");
    }

    /** A disk named by a relative or non-normalized path is indexed: Thaw's walk names its top file as qemu-img does. */
    @Test
    void aTopFileNamedByARelativeOrNonNormalizedPathIsStillIndexed(@org.junit.jupiter.api.io.TempDir Path dir) throws Exception {
        Path top = java.nio.file.Files.write(dir.resolve("top.qcow2"), new byte[4096]); // not qcow2: the walk ends at it
        JsonNode info = JSON.readTree("[{\"filename\": " + JSON.writeValueAsString(top.toString()) + ", \"format\": \"qcow2\"}]");
        List<String> warnings = new ArrayList<>();
        for (Path named : List.of(dir.resolve("sub/../top.qcow2"), Path.of("").toAbsolutePath().relativize(top))) {
            assertThat(DiskLayers.indexable(dev.thaw.image.Qcow2Chain.of(named), info, warnings::add)).as(named.toString())
                    .containsExactly(new DiskLayers.Layer(0, top, "qcow2"));
        }
        assertThat(warnings).isEmpty();
    }
}
