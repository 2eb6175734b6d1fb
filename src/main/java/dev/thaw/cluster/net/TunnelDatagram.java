package dev.thaw.cluster.net;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.HexFormat;
import java.util.regex.Pattern;

/**
 * One Ethernet frame between two switches joined by a UDP tunnel ({@link ClusterSwitch.Tunnel}): one frame per datagram, its
 * sender and receiver named, so that the receiving switch delivers it to that member only (a flooded frame crosses once per
 * member on the other side, and nothing that came through the tunnel goes back into it).
 *
 * <p>The layout, big-endian: magic {@code THTU} (4 bytes), version (1 byte, {@value #VERSION}), type (1 byte: 0 invalid, 1 frame),
 * the sender's name's length and the receiver's (1 byte each, 1-63), the sending switch's sequence (8 bytes, from 1, one more
 * per datagram: the receiver counts the gaps as lost), the two names (ASCII, as member names are), then the frame (14 bytes up to
 * {@link #MAX_FRAME_BYTES}).
 */
public record TunnelDatagram(long sequence, String from, String to, byte[] frame) {
    public static final int VERSION = 1;
    public static final int TYPE_FRAME = 1;
    static final byte[] MAGIC = {'T', 'H', 'T', 'U'};
    public static final int HEADER_BYTES = 4 + 1 + 1 + 1 + 1 + 8;
    /** The largest UDP payload over IPv4 (65535 - 20 - 8). */
    public static final int MAX_DATAGRAM_BYTES = 65507;
    /** The longest frame that fits a datagram with the longest names; a longer one cannot cross (the sender drops and counts it). */
    public static final int MAX_FRAME_BYTES = MAX_DATAGRAM_BYTES - HEADER_BYTES - 2 * 63;
    private static final Pattern NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9_-]{0,62}");

    /** A datagram that is not one: what was expected, what came, and where (the sender's address). */
    public static final class Malformed extends RuntimeException {
        public Malformed(String message) {
            super(message);
        }
    }

    public TunnelDatagram {
        if (sequence < 1) throw new IllegalArgumentException("tunnel datagram: expected a sequence >= 1, actual " + sequence);
        if (!NAME.matcher(from).matches() || !NAME.matcher(to).matches()) {
            throw new IllegalArgumentException("tunnel datagram: expected member names, actual '" + from + "' -> '" + to + "'");
        }
        if (frame.length < ClusterSwitch.ETHERNET_HEADER_BYTES || frame.length > MAX_FRAME_BYTES) {
            throw new IllegalArgumentException("tunnel datagram: expected a frame of " + ClusterSwitch.ETHERNET_HEADER_BYTES + "-"
                    + MAX_FRAME_BYTES + " bytes, actual " + frame.length);
        }
    }

    public byte[] encode() {
        byte[] f = from.getBytes(StandardCharsets.US_ASCII);
        byte[] t = to.getBytes(StandardCharsets.US_ASCII);
        return ByteBuffer.allocate(HEADER_BYTES + f.length + t.length + frame.length).order(ByteOrder.BIG_ENDIAN).put(MAGIC)
                .put((byte) VERSION).put((byte) TYPE_FRAME).put((byte) f.length).put((byte) t.length).putLong(sequence).put(f).put(t)
                .put(frame).array();
    }

    /**
     * Reads one datagram's bytes ({@code where}: its sender, for the error).
     *
     * @throws Malformed saying which field, where, expected what and actual what
     */
    public static TunnelDatagram decode(ByteBuffer in, String where) {
        ByteBuffer b = in.slice().order(ByteOrder.BIG_ENDIAN);
        int size = b.remaining();
        if (size < HEADER_BYTES) throw bad(where, 0, "a header of " + HEADER_BYTES + " bytes", size + " bytes in all");
        byte[] magic = new byte[4];
        b.get(magic);
        if (!java.util.Arrays.equals(magic, MAGIC)) {
            throw bad(where, 0, "magic " + HexFormat.of().formatHex(MAGIC) + " (THTU)", HexFormat.of().formatHex(magic));
        }
        int version = b.get() & 0xff;
        if (version != VERSION) throw bad(where, 4, "version " + VERSION, String.valueOf(version));
        int type = b.get() & 0xff;
        if (type != TYPE_FRAME) throw bad(where, 5, "type " + TYPE_FRAME + " (frame)", type + (type == 0 ? " (invalid)" : ""));
        int fromLength = b.get() & 0xff;
        int toLength = b.get() & 0xff;
        if (fromLength < 1 || fromLength > 63) throw bad(where, 6, "a sender's name of 1-63 bytes", String.valueOf(fromLength));
        if (toLength < 1 || toLength > 63) throw bad(where, 7, "a receiver's name of 1-63 bytes", String.valueOf(toLength));
        long sequence = b.getLong();
        if (sequence < 1) throw bad(where, 8, "a sequence >= 1", Long.toUnsignedString(sequence));
        int frameBytes = size - HEADER_BYTES - fromLength - toLength;
        if (frameBytes < ClusterSwitch.ETHERNET_HEADER_BYTES) {
            throw bad(where, HEADER_BYTES, "names of " + fromLength + " and " + toLength + " bytes and a frame of at least "
                    + ClusterSwitch.ETHERNET_HEADER_BYTES + " bytes", (size - HEADER_BYTES) + " bytes after the header");
        }
        String from = name(b, fromLength, where, HEADER_BYTES, "sender");
        String to = name(b, toLength, where, HEADER_BYTES + fromLength, "receiver");
        if (from.equals(to)) throw bad(where, HEADER_BYTES, "a receiver other than the sender", "both " + from);
        byte[] frame = new byte[frameBytes];
        b.get(frame);
        return new TunnelDatagram(sequence, from, to, frame);
    }

    private static String name(ByteBuffer b, int length, String where, int offset, String what) {
        byte[] raw = new byte[length];
        b.get(raw);
        String s = new String(raw, StandardCharsets.ISO_8859_1);
        if (!NAME.matcher(s).matches()) throw bad(where, offset, "a " + what + "'s member name matching " + NAME, "'" + s.replaceAll("\\p{Cntrl}", "?") + "'");
        return s;
    }

    private static Malformed bad(String where, int offset, String expected, String actual) {
        return new Malformed("tunnel datagram from " + where + ", offset " + offset + ": expected " + expected + ", actual " + actual);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof TunnelDatagram d && sequence == d.sequence && from.equals(d.from) && to.equals(d.to)
                && java.util.Arrays.equals(frame, d.frame);
    }

    @Override
    public int hashCode() {
        return (Long.hashCode(sequence) * 31 + from.hashCode()) * 31 + java.util.Arrays.hashCode(frame);
    }

    @Override
    public String toString() {
        return "TunnelDatagram[" + sequence + " " + from + " -> " + to + ", " + frame.length + " bytes]";
    }
}
