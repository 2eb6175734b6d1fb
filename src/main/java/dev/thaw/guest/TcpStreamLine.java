package dev.thaw.guest;

import java.util.Optional;

/** A line tcpstream (guest/src/tcpstream.c, a cluster member's workload) prints on the console. */
public sealed interface TcpStreamLine {
    /** Which end of a stream. */
    enum Direction { TX, RX }

    /** The server listens on {@code port}. */
    record Listening(int port) implements TcpStreamLine {}

    /** The client reached its server at {@code peer} (host:port). */
    record Connected(String peer) implements TcpStreamLine {}

    /**
     * Every 100 ms: the bytes sent (TX) or received (RX) so far, at guest time {@code guestNanos}.
     *
     * @param bad  RX: received bytes that differ from what the stream must hold at their offset; 0 for TX
     * @param peer RX: the client's address; empty for TX
     */
    record Tick(Direction direction, long seq, long guestNanos, long bytes, long bad, String peer) implements TcpStreamLine {}

    /** The end of a stream: its bytes, the bad ones (RX) and FNV-1a over its 64-bit words, in hex. */
    record Done(Direction direction, long bytes, long bad, String fnv, String peer) implements TcpStreamLine {}

    /** tcpstream failed. */
    record Failed(String text) implements TcpStreamLine {}

    String PREFIX = "tcpstream ";

    /** The line's meaning, or empty for any other console line (a malformed tcpstream line included). */
    static Optional<TcpStreamLine> parse(String line) {
        int at = line.indexOf(PREFIX);
        if (at < 0) return Optional.empty();
        String[] f = line.substring(at + PREFIX.length()).trim().split(" ");
        try {
            return Optional.ofNullable(switch (f[0]) {
                case "server" -> f.length == 3 && f[1].equals("listening") ? new Listening(Integer.parseInt(f[2])) : null;
                case "client" -> f.length == 3 && f[1].equals("connected") ? new Connected(f[2]) : null;
                case "tx" -> f[1].equals("tick") && f.length == 5 ? new Tick(Direction.TX, Long.parseLong(f[2]), Long.parseLong(f[3]),
                        Long.parseLong(f[4]), 0, "")
                        : f[1].equals("done") && f.length == 4 ? new Done(Direction.TX, Long.parseLong(f[2]), 0, f[3], "") : null;
                case "rx" -> f[1].equals("tick") && f.length == 7 ? new Tick(Direction.RX, Long.parseLong(f[2]), Long.parseLong(f[3]),
                        Long.parseLong(f[4]), Long.parseLong(f[5]), f[6])
                        : f[1].equals("done") && f.length == 6 ? new Done(Direction.RX, Long.parseLong(f[2]), Long.parseLong(f[3]), f[4], f[5])
                        : null;
                case "error" -> new Failed(line.substring(at));
                default -> null;
            });
        } catch (NumberFormatException | ArrayIndexOutOfBoundsException e) {
            return Optional.empty();
        }
    }
}
