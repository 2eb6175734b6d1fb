package dev.thaw.cluster.checkpoint;

import dev.thaw.cluster.net.ClusterSwitch;
import dev.thaw.cluster.net.Frame;
import dev.thaw.image.FileKind;
import dev.thaw.image.FramedFile;
import dev.thaw.image.ImageException;
import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;

/**
 * The frames a cluster checkpoint's switch held, {@value ClusterManifest#FRAMES_FILE}: framed as {@link FileKind#CLUSTER_FRAMES}
 * owned by the checkpoint's id, its body little-endian, in the order the switch read the frames:
 *
 * <pre>
 * u32 count
 * count x { u64 sequence, u16 sender, u16 receiver (indexes into the manifest's members), u32 length, length bytes }
 * </pre>
 *
 * Every frame is checked on reading: known members, two different ones, an Ethernet header's length up to QEMU's
 * {@link ClusterSwitch#MAX_FRAME_BYTES}, sequences that never go back, nothing after the last frame.
 */
public final class FrameLog {
    private static final int FRAME_HEADER_BYTES = 8 + 2 + 2 + 4;

    private FrameLog() {}

    /** The body of the frames file for {@code frames} between {@code members}. */
    public static byte[] encode(List<Frame> frames, List<String> members) {
        long size = 4;
        for (Frame f : frames) size += FRAME_HEADER_BYTES + f.data().length;
        if (size > Integer.MAX_VALUE - 64) throw new IllegalArgumentException("frames: expected below 2 GiB, actual " + size + " bytes");
        ByteBuffer b = ByteBuffer.allocate((int) size).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(frames.size());
        for (Frame f : frames) {
            b.putLong(f.sequence()).putShort((short) index(members, f.from())).putShort((short) index(members, f.to()));
            b.putInt(f.data().length).put(f.data());
        }
        return b.array();
    }

    /** Writes the frames file into {@code dir}; returns the manifest's record of it. */
    public static ClusterManifest.Frames write(Path dir, java.util.UUID owner, List<Frame> frames, List<String> members) {
        byte[] body = encode(frames, members);
        FramedFile.write(dir.resolve(ClusterManifest.FRAMES_FILE), FileKind.CLUSTER_FRAMES, owner, body);
        return new ClusterManifest.Frames(ClusterManifest.FRAMES_FILE, frames.size(), frames.stream().mapToLong(f -> f.data().length).sum(),
                sha256(body));
    }

    /** Reads the checkpoint's frames file and checks it against its manifest. */
    public static List<Frame> read(Path dir, ClusterManifest manifest) {
        Path file = dir.resolve(ClusterManifest.FRAMES_FILE);
        byte[] body = FramedFile.read(file, FileKind.CLUSTER_FRAMES, manifest.id());
        String sum = sha256(body);
        if (!sum.equals(manifest.frames().sha256())) {
            throw new ImageException.Corrupt(file, 48, "expected SHA-256 " + manifest.frames().sha256() + " (cluster manifest), actual " + sum);
        }
        List<Frame> frames = decode(file, body, manifest.memberNames());
        long bytes = frames.stream().mapToLong(f -> f.data().length).sum();
        if (frames.size() != manifest.frames().count() || bytes != manifest.frames().dataBytes()) {
            throw new ImageException.Corrupt(file, 48, "expected " + manifest.frames().count() + " frames of " + manifest.frames().dataBytes()
                    + " bytes (cluster manifest), actual " + frames.size() + " frames of " + bytes + " bytes");
        }
        return frames;
    }

    /** Parses a frames file's body; {@code file} only names it in errors, whose offsets are the file's (header included). */
    public static List<Frame> decode(Path file, byte[] body, List<String> members) {
        ByteBuffer b = ByteBuffer.wrap(body).order(ByteOrder.LITTLE_ENDIAN);
        int at = 0;
        try {
            int count = b.getInt();
            if (count < 0 || count > (body.length - 4) / FRAME_HEADER_BYTES) {
                throw corrupt(file, 0, "expected a frame count that fits the body's " + body.length + " bytes, actual " + Integer.toUnsignedLong(count));
            }
            List<Frame> frames = new ArrayList<>(count);
            long previous = Long.MIN_VALUE;
            for (int i = 0; i < count; i++) {
                at = b.position();
                long sequence = b.getLong();
                int from = Short.toUnsignedInt(b.getShort());
                int to = Short.toUnsignedInt(b.getShort());
                int length = b.getInt();
                String where = "frame " + i + ": ";
                if (from >= members.size() || to >= members.size()) {
                    throw corrupt(file, at + 8, where + "expected member indexes below " + members.size() + ", actual " + from + " -> " + to);
                }
                if (from == to) throw corrupt(file, at + 8, where + "expected two different members, actual " + members.get(from) + " twice");
                if (length < ClusterSwitch.ETHERNET_HEADER_BYTES || length > ClusterSwitch.MAX_FRAME_BYTES) {
                    throw corrupt(file, at + 12, where + "expected a length of " + ClusterSwitch.ETHERNET_HEADER_BYTES + " to "
                            + ClusterSwitch.MAX_FRAME_BYTES + " bytes, actual " + Integer.toUnsignedLong(length));
                }
                if (sequence < previous) throw corrupt(file, at, where + "expected a sequence >= " + previous + ", actual " + sequence);
                previous = sequence;
                byte[] data = new byte[length];
                b.get(data);
                frames.add(new Frame(sequence, members.get(from), members.get(to), data));
            }
            if (b.hasRemaining()) throw corrupt(file, b.position(), "expected the body to end after " + count + " frames, actual "
                    + b.remaining() + " more bytes");
            return frames;
        } catch (BufferUnderflowException e) {
            throw corrupt(file, at, "truncated: expected a whole frame, actual the body's end at " + body.length + " bytes");
        }
    }

    private static ImageException.Corrupt corrupt(Path file, long bodyOffset, String detail) {
        return new ImageException.Corrupt(file, 48 + bodyOffset, detail);
    }

    private static int index(List<String> members, String member) {
        int i = members.indexOf(member);
        if (i < 0) throw new IllegalArgumentException("frame: expected a member of " + members + ", actual " + member);
        return i;
    }

    static String sha256(byte[] body) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(body));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is missing from this JDK", e);
        }
    }
}
