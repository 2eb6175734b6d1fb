package dev.thaw.cluster.net;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;

/**
 * QEMU 7.2's stream netdev framing as the switch reads it from a member's socket (net/stream.c {@code net_stream_receive},
 * net/net.c {@code net_fill_rstate}): each frame is its length as a 4-byte big-endian integer, then the frame, with no vnet header.
 * A length beyond {@link ClusterSwitch#MAX_FRAME_BYTES} (QEMU's NET_BUFSIZE) ends the connection, as it does in QEMU.
 */
public final class StreamFraming {
    /**
     * What one read found.
     *
     * @param frames    the frames whole in the buffer, in order
     * @param badLength a length out of range that came after them (the connection must end), as an unsigned number; -1 when none
     */
    public record Frames(List<byte[]> frames, long badLength) {}

    private StreamFraming() {}

    /**
     * Takes every whole frame from {@code in} (ready to read). It is left at the first byte not taken: an incomplete frame's, which
     * the caller keeps ({@code compact()}) for the next read, or a bad length's.
     */
    public static Frames take(ByteBuffer in) {
        List<byte[]> frames = new ArrayList<>();
        while (in.remaining() >= 4) {
            int length = in.getInt(in.position());
            if (length < 0 || length > ClusterSwitch.MAX_FRAME_BYTES) return new Frames(frames, Integer.toUnsignedLong(length));
            if (in.remaining() < 4 + length) break;
            in.getInt();
            byte[] data = new byte[length];
            in.get(data);
            frames.add(data);
        }
        return new Frames(frames, -1);
    }
}
