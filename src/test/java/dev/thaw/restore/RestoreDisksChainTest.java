package dev.thaw.restore;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.image.DiskBases;
import dev.thaw.image.DiskIdentity;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The backing name an overlay on a fetched chain gets: the copies, each with its format, none of the headers' names. */
class RestoreDisksChainTest {
    @Test
    void theChainIsNamedExplicitlyFromTheCopies() {
        DiskIdentity id = new DiskIdentity(1, "2026-11-30T09:00:00Z", "00".repeat(32));
        List<DiskBases.Layer> layers = List.of(new DiskBases.Layer("qcow2", id, "aa".repeat(32), "a"), new DiskBases.Layer("qcow2", id, "bb".repeat(32), "b"),
                new DiskBases.Layer("raw", id, "cc".repeat(32), "c"));
        assertThat(RestoreDisks.chainSpec(layers, List.of(Path.of("/c/a"), Path.of("/c/b"), Path.of("/c/c")))).isEqualTo(
                "{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\"filename\":\"/c/a\"},\"backing\":{\"driver\":\"qcow2\",\"file\":"
                        + "{\"driver\":\"file\",\"filename\":\"/c/b\"},\"backing\":{\"driver\":\"raw\",\"file\":{\"driver\":\"file\",\"filename\":\"/c/c\"}}}}");
    }

    /** A chain that ends on a qcow2 file (or is one alone) says so: QEMU must not follow the backing name in its header. */
    @Test
    void aQcow2ChainEndsExplicitly() {
        DiskIdentity id = new DiskIdentity(1, "2026-11-30T09:00:00Z", "00".repeat(32));
        DiskBases.Layer a = new DiskBases.Layer("qcow2", id, "aa".repeat(32), "a");
        DiskBases.Layer b = new DiskBases.Layer("qcow2", id, "bb".repeat(32), "b");
        assertThat(RestoreDisks.chainSpec(List.of(a), List.of(Path.of("/c/a")))).isEqualTo(
                "{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\"filename\":\"/c/a\"},\"backing\":null}");
        assertThat(RestoreDisks.chainSpec(List.of(a, b), List.of(Path.of("/c/a"), Path.of("/c/b")))).isEqualTo(
                "{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\"filename\":\"/c/a\"},\"backing\":{\"driver\":\"qcow2\",\"file\":"
                        + "{\"driver\":\"file\",\"filename\":\"/c/b\"},\"backing\":null}}");
    }
}
