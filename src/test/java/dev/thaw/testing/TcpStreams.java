package dev.thaw.testing;

import java.util.Locale;

/** The cluster member guest's tcpstream (guest/src/tcpstream.c) as its definition says, computed on the host. */
public final class TcpStreams {
    private TcpStreams() {}

    /** FNV-1a over the stream's 64-bit words, word i being splitmix64(i), as tcpstream defines it. */
    public static String expectedFnv(long bytes) {
        long hash = 0xcbf29ce484222325L;
        for (long i = 0; i < bytes / 8; i++) {
            long z = i + 0x9e3779b97f4a7c15L;
            z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
            z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
            hash = (hash ^ (z ^ (z >>> 31))) * 0x100000001b3L;
        }
        return String.format(Locale.ROOT, "%016x", hash);
    }
}
