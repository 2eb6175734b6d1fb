package dev.thaw.image;

import com.github.luben.zstd.Zstd;
import java.util.Locale;
import net.jpountz.lz4.LZ4Compressor;
import net.jpountz.lz4.LZ4Factory;

/** How an extent's payload is compressed; the number is on disk (0 is never valid). */
public enum Codec {
    INVALID(0),
    NONE(1),
    LZ4(2),
    ZSTD(3);

    private static final LZ4Factory LZ4_FACTORY = LZ4Factory.fastestInstance();

    private final int code;

    Codec(int code) {
        this.code = code;
    }

    public int code() {
        return code;
    }

    public static Codec of(int code) {
        for (Codec c : values()) {
            if (c.code == code && c != INVALID) return c;
        }
        return INVALID;
    }

    /** Parses a user's choice: zstd, lz4 or none. */
    public static Codec parse(String name) {
        return switch (name.toLowerCase(Locale.ROOT)) {
            case "zstd" -> ZSTD;
            case "lz4" -> LZ4;
            case "none" -> NONE;
            default -> throw new IllegalArgumentException("codec: expected zstd, lz4 or none, actual '" + name + "'");
        };
    }

    /**
     * Compresses {@code length} bytes; returns null when compression does not make them smaller
     * (the caller then stores them with {@link #NONE}).
     */
    byte[] compress(byte[] data, int length, int zstdLevel) {
        return switch (this) {
            case NONE -> null;
            case ZSTD -> {
                byte[] out = new byte[(int) Zstd.compressBound(length)];
                long n = Zstd.compressByteArray(out, 0, out.length, data, 0, length, zstdLevel);
                if (Zstd.isError(n)) throw new IllegalStateException("zstd compression failed: " + Zstd.getErrorName(n));
                yield n < length ? java.util.Arrays.copyOf(out, (int) n) : null;
            }
            case LZ4 -> {
                LZ4Compressor c = LZ4_FACTORY.fastCompressor();
                byte[] out = new byte[c.maxCompressedLength(length)];
                int n = c.compress(data, 0, length, out, 0, out.length);
                yield n < length ? java.util.Arrays.copyOf(out, n) : null;
            }
            case INVALID -> throw new IllegalStateException("invalid codec");
        };
    }

    /** Decompresses into {@code out[0..rawLength)}; throws IllegalArgumentException on malformed input. */
    void decompress(byte[] payload, int payloadOffset, int payloadLength, byte[] out, int rawLength) {
        switch (this) {
            case NONE -> {
                if (payloadLength != rawLength) {
                    throw new IllegalArgumentException("expected " + rawLength + " stored bytes, actual " + payloadLength);
                }
                System.arraycopy(payload, payloadOffset, out, 0, rawLength);
            }
            case ZSTD -> {
                long n;
                try {
                    n = Zstd.decompressByteArray(out, 0, rawLength, payload, payloadOffset, payloadLength);
                } catch (com.github.luben.zstd.ZstdException e) { // zstd-jni throws some errors rather than returning their code
                    throw new IllegalArgumentException("zstd: " + e.getMessage(), e);
                }
                if (Zstd.isError(n) || n != rawLength) {
                    throw new IllegalArgumentException("zstd: expected " + rawLength + " bytes, actual "
                            + (Zstd.isError(n) ? Zstd.getErrorName(n) : n + " bytes"));
                }
            }
            case LZ4 -> {
                try {
                    // The safe decompressor is bounded by the payload's known length; the fast one trusts the input
                    // and may read past it.
                    int n = LZ4_FACTORY.safeDecompressor().decompress(payload, payloadOffset, payloadLength, out, 0, rawLength);
                    if (n != rawLength) {
                        throw new IllegalArgumentException("lz4: expected " + rawLength + " bytes, actual " + n);
                    }
                } catch (net.jpountz.lz4.LZ4Exception e) {
                    throw new IllegalArgumentException("lz4: " + e.getMessage(), e);
                }
            }
            case INVALID -> throw new IllegalArgumentException("invalid codec");
        }
    }
}
