package dev.thaw.cluster.checkpoint;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.cluster.net.Frame;
import dev.thaw.cluster.net.PairRecord;
import dev.thaw.guest.ClusterMember;
import dev.thaw.image.FileKind;
import dev.thaw.image.FramedFile;
import dev.thaw.image.ImageException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The cluster checkpoint's format, pure: the manifest and the frames file written and read back, and every malformed input refused. */
class ClusterManifestTest {
    private static final UUID ID = UUID.fromString("9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f");
    private static final List<String> MEMBERS = List.of("m1", "m2");

    @TempDir
    Path dir;

    static byte[] ethernet(int from, int to, String payload) {
        byte[] p = payload.getBytes(StandardCharsets.UTF_8);
        return ByteBuffer.allocate(14 + p.length).put(new byte[] {0x52, 0x54, 0, 0, 3, (byte) to})
                .put(new byte[] {0x52, 0x54, 0, 0, 3, (byte) from}).putShort((short) 0x0800).put(p).array();
    }

    static List<Frame> frames() {
        return List.of(new Frame(7, "m2", "m1", ethernet(2, 1, "data 0")), new Frame(8, "m2", "m1", ethernet(2, 1, "data 1")),
                new Frame(9, "m1", "m2", ethernet(1, 2, "ack")));
    }

    private ClusterManifest write(List<Frame> frames) {
        ClusterManifest manifest = manifest(FrameLog.write(dir, ID, frames, MEMBERS));
        manifest.write(dir);
        return manifest;
    }

    /** A checkpoint's manifest and frames written into {@code work} (a fuzz target's seed). */
    static ClusterManifest manifestIn(Path work) {
        ClusterManifest manifest = manifest(FrameLog.write(work, ID, frames(), MEMBERS));
        manifest.write(work);
        return manifest;
    }

    private static ClusterManifest manifest(ClusterManifest.Frames entry) {
        List<ClusterManifest.Member> members = new ArrayList<>();
        for (ClusterMember m : ClusterMember.starOf(2, 256, 8 << 20)) {
            members.add(new ClusterManifest.Member(m, m.name(), UUID.nameUUIDFromBytes(m.name().getBytes()).toString(), 1_000_000, 100 << 20));
        }
        return new ClusterManifest(ClusterManifest.VERSION, ID.toString(), "2026-11-29T17:00:00Z", "dev", members,
                new ClusterManifest.Cut("2026-11-29T16:59:59Z", 832_000, Map.of("m1", 1_000L, "m2", 833_000L), 1, 4_000_000,
                        Map.of("m1", 0L, "m2", 0L)),
                new ClusterManifest.SwitchState(4096, 16L << 20, Map.of("52:54:00:00:03:01", "m1", "52:54:00:00:03:02", "m2")),
                List.of(new PairRecord("m2", "m1", 9000, 9_000_000, Instant.parse("2026-11-29T16:59:59Z"))), entry);
    }

    @Test
    void aCheckpointsManifestAndFramesReadBackAsWritten() throws IOException {
        ClusterManifest written = write(frames());
        ClusterManifest read = ClusterManifest.read(dir);
        assertThat(read).isEqualTo(written);
        assertThat(read.memberNames()).containsExactly("m1", "m2");
        assertThat(read.frames().count()).isEqualTo(3);
        assertThat(FrameLog.read(dir, read)).isEqualTo(frames()); // in order, bytes intact
        assertThat(dir.resolve(ClusterManifest.FILE)).isRegularFile();
        try (var files = Files.list(dir)) {
            assertThat(files.map(p -> p.getFileName().toString())).as("no temporary file left").containsExactlyInAnyOrder("cluster.thaw", "frames.thaw");
        }
    }

    @Test
    void noFramesIsACheckpointToo() {
        write(List.of());
        assertThat(FrameLog.read(dir, ClusterManifest.read(dir))).isEmpty();
    }

    @Test
    void aDamagedOrForeignFileIsRefusedNamingItAndTheOffset() throws IOException {
        write(frames());
        Path file = dir.resolve(ClusterManifest.FILE);
        byte[] bytes = Files.readAllBytes(file);
        bytes[60] ^= 1;
        Files.write(file, bytes);
        assertThatThrownBy(() -> ClusterManifest.read(dir)).isInstanceOf(ImageException.Corrupt.class).hasMessageContaining("cluster.thaw");
        assertThatThrownBy(() -> ClusterManifest.read(dir.resolve("nowhere"))).isInstanceOf(ImageException.Missing.class)
                .hasMessageContaining("is missing");
        // A frames file in the manifest's place: the kind is checked.
        Files.copy(dir.resolve(ClusterManifest.FRAMES_FILE), file, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        assertThatThrownBy(() -> ClusterManifest.read(dir)).hasMessageContaining("expected a cluster manifest file, actual kind 8");
    }

    @Test
    void aManifestWithBadFieldsIsRefusedNamingTheField() {
        ClusterManifest good = write(frames());
        assertThatThrownBy(() -> rewrite(json -> json.replace("\"formatVersion\" : 1", "\"formatVersion\" : 2")))
                .isInstanceOf(ImageException.UnsupportedVersion.class).hasMessageContaining("format version 2: expected 1");
        assertThatThrownBy(() -> rewrite(json -> json.replace("\"image\" : \"m2\"", "\"image\" : \"../m2\"")))
                .hasMessageContaining("members[1].image: expected 'm2', actual '../m2'");
        assertThatThrownBy(() -> rewrite(json -> json.replace("\"name\" : \"m2\"", "\"name\" : \"m1\"")))
                .hasMessageContaining("members[1].member.name: expected distinct names, actual m1 twice");
        assertThatThrownBy(() -> rewrite(json -> json.replace("\"to\" : \"m1\"", "\"to\" : \"m9\"")))
                .hasMessageContaining("traffic[0]: expected a member of [m1, m2], actual 'm9'");
        assertThatThrownBy(() -> rewrite(json -> json.replace("\"to\" : \"m1\"", "\"to\" : \"m2\"")))
                .hasMessageContaining("traffic[0]: traffic: expected two different members, actual m2 -> m2");
        assertThatThrownBy(() -> rewrite(json -> json.replace("\"file\" : \"frames.thaw\"", "\"file\" : \"/etc/passwd\"")))
                .hasMessageContaining("frames.file: expected 'frames.thaw', actual '/etc/passwd'");
        assertThatThrownBy(() -> rewrite(json -> json.replace(good.checkpointId(), "not-a-uuid")))
                .hasMessageContaining("checkpointId: expected a UUID, actual 'not-a-uuid'");
        assertThatThrownBy(() -> rewrite(json -> json.replace("\"cut\"", "\"uncut\""))).hasMessageContaining("does not parse");
    }

    @Test
    void aFramesFileThatDisagreesWithItsManifestIsRefused() throws IOException {
        ClusterManifest manifest = write(frames());
        // Another checkpoint's frames file: its owner differs.
        FrameLog.write(dir, UUID.randomUUID(), frames(), MEMBERS);
        assertThatThrownBy(() -> FrameLog.read(dir, manifest)).hasMessageContaining("expected owner id " + ID);
        // The same owner, other frames: the manifest's SHA-256 catches them.
        FrameLog.write(dir, ID, frames().subList(0, 2), MEMBERS);
        assertThatThrownBy(() -> FrameLog.read(dir, manifest)).hasMessageContaining("expected SHA-256 " + manifest.frames().sha256());
    }

    @Test
    void malformedFrameRecordsAreRefusedWithTheirOffset() {
        Path file = Path.of("frames.thaw");
        byte[] good = FrameLog.encode(frames(), MEMBERS);
        assertThat(FrameLog.decode(file, good, MEMBERS)).isEqualTo(frames());
        assertThatThrownBy(() -> FrameLog.decode(file, java.util.Arrays.copyOf(good, good.length - 1), MEMBERS))
                .isInstanceOf(ImageException.Corrupt.class).hasMessageContaining("truncated: expected a whole frame");
        assertThatThrownBy(() -> FrameLog.decode(file, java.util.Arrays.copyOf(good, good.length + 3), MEMBERS))
                .hasMessageContaining("expected the body to end after 3 frames, actual 3 more bytes");
        byte[] badIndex = good.clone();
        ByteBuffer.wrap(badIndex).order(ByteOrder.LITTLE_ENDIAN).putShort(4 + 8, (short) 5);
        assertThatThrownBy(() -> FrameLog.decode(file, badIndex, MEMBERS))
                .hasMessageContaining("at offset 60: frame 0: expected member indexes below 2, actual 5 -> 0");
        byte[] self = good.clone();
        ByteBuffer.wrap(self).order(ByteOrder.LITTLE_ENDIAN).putShort(4 + 8, (short) 0);
        assertThatThrownBy(() -> FrameLog.decode(file, self, MEMBERS)).hasMessageContaining("expected two different members, actual m1 twice");
        byte[] tooLong = good.clone();
        ByteBuffer.wrap(tooLong).order(ByteOrder.LITTLE_ENDIAN).putInt(4 + 12, 1 << 20);
        assertThatThrownBy(() -> FrameLog.decode(file, tooLong, MEMBERS)).hasMessageContaining("expected a length of 14 to 69632 bytes, actual 1048576");
        byte[] count = good.clone();
        ByteBuffer.wrap(count).order(ByteOrder.LITTLE_ENDIAN).putInt(0, -1);
        assertThatThrownBy(() -> FrameLog.decode(file, count, MEMBERS)).hasMessageContaining("actual 4294967295");
        List<Frame> backwards = List.of(frames().get(1), frames().get(0));
        assertThatThrownBy(() -> FrameLog.decode(file, FrameLog.encode(backwards, MEMBERS), MEMBERS))
                .hasMessageContaining("frame 1: expected a sequence >= 8, actual 7");
    }

    /** Rewrites the manifest's JSON and frames it again (a well-framed file with bad content), then reads it. */
    private void rewrite(UnaryOperator<String> change) {
        Path file = dir.resolve(ClusterManifest.FILE);
        String json = new String(FramedFile.read(file, FileKind.CLUSTER_MANIFEST, ID), StandardCharsets.UTF_8);
        String changed = change.apply(json);
        assertThat(changed).as("the change applies").isNotEqualTo(json);
        try {
            Files.delete(file);
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
        FramedFile.write(file, FileKind.CLUSTER_MANIFEST, ID, changed.getBytes(StandardCharsets.UTF_8));
        try {
            ClusterManifest.read(dir);
        } finally {
            write(frames()); // the next case starts from a good manifest
        }
    }
}
