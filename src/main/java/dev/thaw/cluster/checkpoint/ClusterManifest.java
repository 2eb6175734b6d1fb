package dev.thaw.cluster.checkpoint;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.thaw.cluster.net.PairRecord;
import dev.thaw.guest.ClusterMember;
import dev.thaw.image.FileKind;
import dev.thaw.image.FramedFile;
import dev.thaw.image.ImageException;
import java.io.IOException;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;

/**
 * The description of a cluster checkpoint, {@value #FILE} in its directory: written last, in the image format's frame
 * ({@link FramedFile}: magic, kind {@link FileKind#CLUSTER_MANIFEST}, the checkpoint's id as owner, XXH3 checksum), renamed into
 * place, so a checkpoint is complete exactly when its manifest is there. JSON inside, like an image's manifest.
 *
 * <pre>
 * CHECKPOINT/
 *   cluster.thaw   this manifest
 *   frames.thaw    the frames the switch held at the cut ({@link FrameLog}), owned by the same id
 *   m1/ m2/ ...    one image per member (dev.thaw.image), named as the member
 * </pre>
 *
 * @param formatVersion {@value #VERSION}
 * @param checkpointId  a UUID, the owner in both framed files' headers
 * @param members       in the order the cluster was up, each with its image
 * @param cut           when the switch was cut and how far apart the members' stops were
 * @param switchState   the switch's queue bound and learned MAC table at the save
 * @param traffic       the switch's per-pair traffic record before the save (the restore graph's enrichment)
 * @param frames        the frames file: how many frames, their bytes, the SHA-256 of its body
 */
public record ClusterManifest(int formatVersion, String checkpointId, String createdAt, String thawVersion, List<Member> members,
                              Cut cut, SwitchState switchState, List<PairRecord> traffic, Frames frames) {
    public static final int VERSION = 1;
    public static final String FILE = "cluster.thaw";
    public static final String FRAMES_FILE = "frames.thaw";
    private static final ObjectMapper JSON = new ObjectMapper().findAndRegisterModules();

    /**
     * @param image     the member's image directory, relative to the checkpoint (its name)
     * @param saveNanos how long its save took
     */
    public record Member(ClusterMember member, String image, String imageId, long saveNanos, long streamBytes) {}

    /**
     * @param at                   the cut's instant (ISO-8601)
     * @param stopSkewNanos        from the first member's stop to the last one's, as the stops' answers arrived
     * @param stoppedNanosAfterCut per member, its stop's answer after the cut
     * @param framesAtCut          frames in the switch's queues at the cut (the rest of {@link Frames#count} came before the stops)
     * @param drainNanos           from the cut until every member's QEMU had read what the switch had written to it (the stops
     *                             waited for that, at most {@link ClusterSave#DRAIN_TIMEOUT}); -1 when it could not be seen
     * @param unreadBytesAtStop    per member, bytes the switch had written that its QEMU had not read when it stopped: in
     *                             neither the guest nor the checkpoint (TCP resends them); empty when it could not be seen
     */
    public record Cut(String at, long stopSkewNanos, Map<String, Long> stoppedNanosAfterCut, int framesAtCut, long drainNanos,
                      Map<String, Long> unreadBytesAtStop) {}

    /** The switch at the save: its queues' bound and the MAC addresses it had learned, by member. */
    public record SwitchState(int queueFrames, long queueBytes, Map<String, String> macTable) {}

    /** {@value #FRAMES_FILE}: {@code count} frames of {@code dataBytes} bytes in all; {@code sha256} of the file's body. */
    public record Frames(String file, int count, long dataBytes, String sha256) {}

    public UUID id() {
        return UUID.fromString(checkpointId);
    }

    public List<String> memberNames() {
        return members.stream().map(m -> m.member().name()).toList();
    }

    /** Writes {@code DIR/cluster.thaw} atomically (the frames file and the images must be there already). */
    public void write(Path dir) {
        check(dir.resolve(FILE));
        byte[] body;
        try {
            body = JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(this);
        } catch (IOException e) {
            throw new ImageException.CannotWrite(dir.resolve(FILE), e.toString(), e);
        }
        FramedFile.write(dir.resolve(FILE), FileKind.CLUSTER_MANIFEST, id(), body);
    }

    /** Reads and checks {@code DIR/cluster.thaw}: frame, checksum, version, and every field a restore uses. */
    public static ClusterManifest read(Path dir) {
        Path file = dir.resolve(FILE);
        return parse(file, FramedFile.read(file, FileKind.CLUSTER_MANIFEST, null));
    }

    static ClusterManifest parse(Path file, byte[] body) {
        ClusterManifest m;
        try {
            m = JSON.readValue(body, ClusterManifest.class);
        } catch (IOException e) {
            throw corrupt(file, "cluster manifest JSON does not parse: " + e.getMessage());
        }
        if (m.formatVersion != VERSION) throw new ImageException.UnsupportedVersion(file, m.formatVersion, VERSION, VERSION);
        m.check(file);
        return m;
    }

    private void check(Path file) {
        try {
            UUID.fromString(require(file, checkpointId, "checkpointId"));
        } catch (IllegalArgumentException e) {
            throw corrupt(file, "checkpointId: expected a UUID, actual '" + checkpointId + "'");
        }
        if (require(file, members, "members").isEmpty()) throw corrupt(file, "members: expected at least one, actual none");
        Set<String> names = new HashSet<>();
        Set<Integer> indexes = new HashSet<>();
        for (int i = 0; i < members.size(); i++) {
            String at = "members[" + i + "]";
            Member m = require(file, members.get(i), at);
            ClusterMember cm = require(file, m.member(), at + ".member");
            if (!names.add(cm.name())) throw corrupt(file, at + ".member.name: expected distinct names, actual " + cm.name() + " twice");
            if (!indexes.add(cm.index())) throw corrupt(file, at + ".member.index: expected distinct indexes, actual " + cm.index() + " twice");
            // The image lies inside the checkpoint, named as its member: no path from outside.
            if (!cm.name().equals(m.image())) throw corrupt(file, at + ".image: expected '" + cm.name() + "', actual '" + m.image() + "'");
            try {
                UUID.fromString(require(file, m.imageId(), at + ".imageId"));
            } catch (IllegalArgumentException e) {
                throw corrupt(file, at + ".imageId: expected a UUID, actual '" + m.imageId() + "'");
            }
        }
        require(file, require(file, cut, "cut").at(), "cut.at");
        if (cut.stopSkewNanos() < 0) throw corrupt(file, "cut.stopSkewNanos: expected >= 0, actual " + cut.stopSkewNanos());
        requireMembers(file, require(file, cut.stoppedNanosAfterCut(), "cut.stoppedNanosAfterCut").keySet(), names, "cut.stoppedNanosAfterCut");
        requireMembers(file, require(file, cut.unreadBytesAtStop(), "cut.unreadBytesAtStop").keySet(), names, "cut.unreadBytesAtStop");
        require(file, switchState, "switchState");
        Set<String> owners = new HashSet<>();
        require(file, switchState.macTable(), "switchState.macTable").forEach((mac, owner) -> owners.add(require(file, owner,
                "switchState.macTable['" + mac + "']")));
        requireMembers(file, owners, names, "switchState.macTable");
        for (int i = 0; i < require(file, traffic, "traffic").size(); i++) {
            PairRecord p = require(file, traffic.get(i), "traffic[" + i + "]");
            requireMembers(file, new HashSet<>(List.of(require(file, p.from(), "traffic[" + i + "].from"),
                    require(file, p.to(), "traffic[" + i + "].to"))), names, "traffic[" + i + "]");
            try {
                p.traffic();
            } catch (IllegalArgumentException e) {
                throw corrupt(file, "traffic[" + i + "]: " + e.getMessage());
            }
        }
        require(file, frames, "frames");
        if (!FRAMES_FILE.equals(frames.file())) throw corrupt(file, "frames.file: expected '" + FRAMES_FILE + "', actual '" + frames.file() + "'");
        if (frames.count() < 0 || frames.dataBytes() < 0) {
            throw corrupt(file, "frames: expected count and dataBytes >= 0, actual " + frames.count() + ", " + frames.dataBytes());
        }
        if (!require(file, frames.sha256(), "frames.sha256").matches("[0-9a-f]{64}")) {
            throw corrupt(file, "frames.sha256: expected 64 hex digits, actual '" + frames.sha256() + "'");
        }
    }

    private static void requireMembers(Path file, Set<String> used, Set<String> members, String field) {
        for (String u : used) {
            if (!members.contains(u)) throw corrupt(file, field + ": expected a member of " + new java.util.TreeSet<>(members) + ", actual '" + u + "'");
        }
    }

    private static <T> T require(Path file, T value, String field) {
        if (value == null) throw corrupt(file, field + ": expected a value, actual none");
        return value;
    }

    static ImageException.Corrupt corrupt(Path file, String detail) {
        return new ImageException.Corrupt(file, 48, detail); // the body starts after the 48-byte header
    }
}
