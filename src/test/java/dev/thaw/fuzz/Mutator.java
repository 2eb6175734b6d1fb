package dev.thaw.fuzz;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

/**
 * Byte-level mutations of a valid input: bit flips, interesting bytes, length fields set to their extremes
 * (both byte orders, since the migration stream is big-endian and image files little-endian), truncations,
 * deletions, insertions, duplicated chunks and splices with another input of the corpus. Stacks 1-4 of them.
 */
public final class Mutator {
    /** Values that break length and count checks: signs, widths, page sizes, off-by-one. */
    private static final long[] EXTREMES = {0, 1, -1, 2, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x1_0000, 4095, 4096, 4097,
            0x7FFF_FFFFL, 0x8000_0000L, 0xFFFF_FFFFL, 0x1_0000_0000L, 1L << 40, (1L << 40) + 4096, Long.MAX_VALUE, Long.MIN_VALUE,
            Long.MAX_VALUE - 4095, Integer.MIN_VALUE, Integer.MAX_VALUE - 63};

    /** Inputs stay below this, so that no case is slow for its size alone. */
    static final int MAX_BYTES = 1 << 20;

    private Mutator() {}

    public static byte[] mutate(byte[] input, List<byte[]> corpus, Random random) {
        byte[] out = input;
        int rounds = 1 + (random.nextInt(4) == 0 ? random.nextInt(4) : 0);
        for (int i = 0; i < rounds; i++) out = once(out, corpus, random);
        return out.length > MAX_BYTES ? Arrays.copyOf(out, MAX_BYTES) : out;
    }

    private static byte[] once(byte[] in, List<byte[]> corpus, Random random) {
        if (in.length == 0) return randomBytes(random, 1 + random.nextInt(16));
        byte[] b = in.clone();
        int at = random.nextInt(b.length);
        switch (random.nextInt(10)) {
            case 0 -> b[at] ^= (byte) (1 << random.nextInt(8));
            case 1 -> b[at] = (byte) EXTREMES[random.nextInt(EXTREMES.length)];
            case 2, 3 -> {
                // A whole field: 2, 4 or 8 bytes, big- or little-endian, at a random place or aligned.
                int width = 2 << random.nextInt(3);
                if (random.nextBoolean()) at -= at % width;
                if (at + width > b.length) return b;
                long v = EXTREMES[random.nextInt(EXTREMES.length)];
                if (random.nextInt(4) == 0) v += random.nextInt(9) - 4;
                ByteBuffer field = ByteBuffer.allocate(8).order(random.nextBoolean() ? ByteOrder.BIG_ENDIAN : ByteOrder.LITTLE_ENDIAN);
                if (width == 8) field.putLong(v);
                else if (width == 4) field.putInt((int) v);
                else field.putShort((short) v);
                System.arraycopy(field.array(), 0, b, at, width);
            }
            case 4 -> {
                return Arrays.copyOf(b, random.nextInt(b.length));
            }
            case 5 -> {
                int length = 1 + random.nextInt(Math.min(b.length - at, 64));
                byte[] out = new byte[b.length - length];
                System.arraycopy(b, 0, out, 0, at);
                System.arraycopy(b, at + length, out, at, b.length - at - length);
                return out;
            }
            case 6 -> {
                return insert(b, at, random.nextBoolean() ? randomBytes(random, 1 + random.nextInt(16))
                        : chunk(b, random, 256));
            }
            case 7 -> {
                // Overwrite with a chunk of itself from elsewhere (a record moved, a header repeated).
                byte[] c = chunk(b, random, 64);
                System.arraycopy(c, 0, b, at, Math.min(c.length, b.length - at));
            }
            case 8 -> {
                byte[] other = corpus.get(random.nextInt(corpus.size()));
                if (other.length == 0) return b;
                int cut = random.nextInt(b.length);
                int from = random.nextInt(other.length);
                byte[] out = Arrays.copyOf(b, cut + other.length - from);
                System.arraycopy(other, from, out, cut, other.length - from);
                return out;
            }
            default -> {
                int length = 1 + random.nextInt(Math.min(b.length - at, 8));
                for (int i = 0; i < length; i++) b[at + i] = (byte) random.nextInt(256);
            }
        }
        return b;
    }

    private static byte[] chunk(byte[] b, Random random, int max) {
        int from = random.nextInt(b.length);
        return Arrays.copyOfRange(b, from, from + 1 + random.nextInt(Math.min(b.length - from, max)));
    }

    private static byte[] insert(byte[] b, int at, byte[] what) {
        byte[] out = new byte[b.length + what.length];
        System.arraycopy(b, 0, out, 0, at);
        System.arraycopy(what, 0, out, at, what.length);
        System.arraycopy(b, at, out, at + what.length, b.length - at);
        return out;
    }

    private static byte[] randomBytes(Random random, int n) {
        byte[] out = new byte[n];
        random.nextBytes(out);
        return out;
    }
}
