package dev.thaw.cluster.net;

import dev.thaw.fuzz.FuzzTarget;
import dev.thaw.fuzz.Mutator;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

/**
 * What the cluster network reads from outside this process: a datagram from the tunnel ({@link TunnelDatagram#decode}), and the
 * bytes a member's QEMU writes to its socket ({@link StreamFraming#take}, as the switch reads them, in pieces).
 */
public final class NetFuzzTargets {
    private NetFuzzTargets() {}

    public static FuzzTarget tunnelDatagram() {
        byte[] broadcast = ClusterSwitchTest.frame(ClusterSwitchTest.mac(0xff, 0xff, 0xff, 0xff, 0xff, 0xff), ClusterSwitchTest.macOf(1), "arp");
        List<byte[]> seeds = List.of(TunnelDatagramTest.seed(), new TunnelDatagram(Long.MAX_VALUE, "member-with_a-long-name", "b", broadcast).encode());
        return new FuzzTarget("tunnel-datagram", seeds, Mutator::mutate, input -> {
            TunnelDatagram d = TunnelDatagram.decode(ByteBuffer.wrap(input), "fuzz");
            // Whatever decodes is exactly what its fields say: it encodes back to the same bytes.
            if (!Arrays.equals(d.encode(), input)) throw new AssertionError("decoded " + d + " does not encode back to its input");
        }, List.of(TunnelDatagram.Malformed.class));
    }

    public static FuzzTarget switchFrames() {
        ByteArrayOutputStream two = new ByteArrayOutputStream();
        for (String p : List.of("first", "second frame")) {
            byte[] f = ClusterSwitchTest.frame(ClusterSwitchTest.macOf(2), ClusterSwitchTest.macOf(1), p);
            two.writeBytes(ByteBuffer.allocate(4 + f.length).putInt(f.length).put(f).array());
        }
        return new FuzzTarget("switch-frames", List.of(two.toByteArray(), new byte[] {0, 0, 0, 0}), Mutator::mutate, input -> {
            // As the switch reads a connection: pieces of 1 byte to 4 KiB into its buffer, every whole frame taken after each.
            Random pieces = new Random(Arrays.hashCode(input));
            ByteBuffer buffer = ByteBuffer.allocate(4 + ClusterSwitch.MAX_FRAME_BYTES);
            ByteArrayOutputStream taken = new ByteArrayOutputStream();
            int at = 0;
            while (at < input.length) {
                int n = Math.min(Math.min(input.length - at, 1 + pieces.nextInt(4096)), buffer.remaining());
                buffer.put(input, at, n);
                at += n;
                buffer.flip();
                StreamFraming.Frames read = StreamFraming.take(buffer);
                for (byte[] f : read.frames()) {
                    if (f.length > ClusterSwitch.MAX_FRAME_BYTES) throw new AssertionError("a frame of " + f.length + " bytes taken");
                    taken.writeBytes(ByteBuffer.allocate(4 + f.length).putInt(f.length).put(f).array());
                }
                if (read.badLength() >= 0) {
                    if (read.badLength() <= ClusterSwitch.MAX_FRAME_BYTES) throw new AssertionError("length " + read.badLength() + " refused");
                    break;
                }
                buffer.compact();
            }
            // The frames taken are the input's frames, in order: their framing is a prefix of the input.
            byte[] out = taken.toByteArray();
            if (!Arrays.equals(out, 0, out.length, input, 0, out.length)) throw new AssertionError("the frames taken are not the input's");
        }, List.of());
    }
}
