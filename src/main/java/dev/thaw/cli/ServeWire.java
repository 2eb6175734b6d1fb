package dev.thaw.cli;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ReadableByteChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * The bytes between {@code thaw restore --server} and {@code thaw serve} on their unix socket: one request from the client
 * (the command's arguments, the client's working directory, its start and whether a terminal shows its output), then frames
 * from the server (output, error output, heartbeats) ending with the command's exit code. Big-endian; every length bounded;
 * every malformed byte an error that says what was expected and where. Pure: channels in, buffers out.
 */
final class ServeWire {
    /** "THW1": this protocol, version 1. */
    static final int MAGIC = 0x54485731;
    static final int MAX_ARGS = 256;
    static final int MAX_STRING_BYTES = 64 * 1024;
    static final int MAX_FRAME_BYTES = 1 << 20;
    /** A frame at least this often from the server, so that a client can tell a long attached restore from a hung server. */
    static final java.time.Duration HEARTBEAT = java.time.Duration.ofSeconds(5);
    /** No start time sent. */
    private static final long NO_START = Long.MIN_VALUE;

    private ServeWire() {}

    /** What the client asks: {@code args} as {@code thaw} would take them, without {@code --server}. */
    record Request(List<String> args, Path workingDirectory, Optional<Instant> commandStart, boolean terminal) {
        Request {
            args = List.copyOf(args);
        }
    }

    /** A frame's kind on the wire (0 is never one). */
    enum Kind {
        INVALID, OUT, ERR, EXIT, HEARTBEAT;

        static Kind of(int code, long offset) throws ProtocolException {
            if (code <= 0 || code >= values().length) {
                throw new ProtocolException("frame at byte " + offset + ": expected a kind 1-" + (values().length - 1) + ", actual " + code);
            }
            return values()[code];
        }
    }

    record Frame(Kind kind, byte[] payload) {
        /** The exit code of an {@link Kind#EXIT} frame. */
        int exitCode() {
            return ByteBuffer.wrap(payload).getInt();
        }
    }

    /** A peer that does not speak this protocol, or stopped in the middle of a message. */
    static final class ProtocolException extends IOException {
        ProtocolException(String message) {
            super(message);
        }
    }

    /**
     * A command line's {@code --server SOCKET} (or {@code --server=SOCKET}; the first one given) and its other arguments, as
     * sent: the option is the client's, never forwarded. After {@code --} everything is positional.
     */
    record ServerOption(Optional<String> server, List<String> others) {}

    static ServerOption serverOption(List<String> args) {
        String server = null;
        List<String> others = new ArrayList<>();
        for (int i = 0; i < args.size(); i++) {
            String a = args.get(i);
            if (a.equals("--")) { // the rest is positional
                others.addAll(args.subList(i, args.size()));
                break;
            }
            if (a.equals("--server")) {
                if (server == null && i + 1 < args.size()) server = args.get(i + 1);
                i++;
            } else if (a.startsWith("--server=")) {
                if (server == null) server = a.substring("--server=".length());
            } else {
                others.add(a);
            }
        }
        return new ServerOption(Optional.ofNullable(server), List.copyOf(others));
    }

    static ByteBuffer encode(Request r) {
        List<byte[]> strings = new ArrayList<>();
        for (String a : r.args()) strings.add(a.getBytes(StandardCharsets.UTF_8));
        byte[] cwd = r.workingDirectory().toString().getBytes(StandardCharsets.UTF_8);
        int size = 4 + 4 + strings.stream().mapToInt(b -> 4 + b.length).sum() + 4 + cwd.length + 8 + 1;
        ByteBuffer b = ByteBuffer.allocate(size).putInt(MAGIC).putInt(strings.size());
        for (byte[] s : strings) b.putInt(s.length).put(s);
        b.putInt(cwd.length).put(cwd);
        b.putLong(r.commandStart().map(i -> ChronoUnit.MICROS.between(Instant.EPOCH, i)).orElse(NO_START));
        b.put((byte) (r.terminal() ? 1 : 0));
        return b.flip();
    }

    static Request readRequest(ReadableByteChannel in) throws IOException {
        Reader r = new Reader(in, "request");
        int magic = r.buffer(4, "its magic number").getInt();
        if (magic != MAGIC) {
            throw new ProtocolException(String.format("request at byte 0: expected magic 0x%08x (thaw serve protocol 1), actual 0x%08x",
                    MAGIC, magic));
        }
        int count = r.buffer(4, "its argument count").getInt();
        if (count < 0 || count > MAX_ARGS) {
            throw new ProtocolException("request at byte 4: expected 0-" + MAX_ARGS + " arguments, actual " + count);
        }
        List<String> args = new ArrayList<>(count);
        for (int i = 0; i < count; i++) args.add(r.string("argument " + (i + 1)));
        Path cwd = Path.of(r.string("its working directory"));
        if (!cwd.isAbsolute()) throw new ProtocolException("request: expected an absolute working directory, actual '" + cwd + "'");
        long startMicros = r.buffer(8, "its start time").getLong();
        int terminal = r.buffer(1, "its terminal flag").get();
        if (terminal != 0 && terminal != 1) {
            throw new ProtocolException("request at byte " + (r.offset - 1) + ": expected a terminal flag 0 or 1, actual " + terminal);
        }
        Optional<Instant> start = startMicros == NO_START ? Optional.empty()
                : Optional.of(Instant.EPOCH.plus(startMicros, ChronoUnit.MICROS));
        return new Request(args, cwd, start, terminal == 1);
    }

    static ByteBuffer frame(Kind kind, byte[] payload, int offset, int length) {
        if (kind == Kind.INVALID) throw new IllegalArgumentException("frame: expected a valid kind, actual " + kind);
        if (length > MAX_FRAME_BYTES) throw new IllegalArgumentException("frame: expected at most " + MAX_FRAME_BYTES + " bytes, actual " + length);
        return ByteBuffer.allocate(5 + length).put((byte) kind.ordinal()).putInt(length).put(payload, offset, length).flip();
    }

    static ByteBuffer exitFrame(int code) {
        return frame(Kind.EXIT, ByteBuffer.allocate(4).putInt(code).array(), 0, 4);
    }

    /** Frames from one stream: {@link #next} until an exit frame. */
    static final class FrameReader {
        private final Reader reader;

        FrameReader(ReadableByteChannel in) {
            this.reader = new Reader(in, "frame");
        }

        /** The next frame; empty at the end of the stream before one starts. */
        Optional<Frame> next() throws IOException {
            long at = reader.offset;
            Optional<ByteBuffer> head = reader.bufferOrEnd(5, "its header");
            if (head.isEmpty()) return Optional.empty();
            Kind kind = Kind.of(head.get().get(), at);
            int length = head.get().getInt();
            if (length < 0 || length > MAX_FRAME_BYTES) {
                throw new ProtocolException("frame at byte " + at + ": expected 0-" + MAX_FRAME_BYTES + " bytes of payload, actual " + length);
            }
            if (kind == Kind.EXIT && length != 4) {
                throw new ProtocolException("exit frame at byte " + at + ": expected 4 bytes of payload, actual " + length);
            }
            byte[] payload = new byte[length];
            reader.buffer(length, "its " + kind.name().toLowerCase(java.util.Locale.ROOT) + " payload").get(payload);
            return Optional.of(new Frame(kind, payload));
        }

        long offset() {
            return reader.offset;
        }
    }

    /** Exact reads with the message's name and the offset in every error. */
    private static final class Reader {
        private final ReadableByteChannel in;
        private final String what;
        long offset;

        Reader(ReadableByteChannel in, String what) {
            this.in = in;
            this.what = what;
        }

        ByteBuffer buffer(int n, String part) throws IOException {
            return bufferOrEnd(n, part).orElseThrow(() -> new ProtocolException(what + " at byte " + offset + ": expected " + n
                    + " bytes of " + part + ", actual the end of the stream"));
        }

        /** {@code n} bytes, or empty if the stream ends before the first; an end after that is an error. */
        Optional<ByteBuffer> bufferOrEnd(int n, String part) throws IOException {
            ByteBuffer b = ByteBuffer.allocate(n);
            while (b.hasRemaining()) {
                if (in.read(b) < 0) {
                    if (b.position() == 0) return Optional.empty();
                    throw new ProtocolException(what + " at byte " + offset + ": expected " + n + " bytes of " + part + ", actual "
                            + b.position() + " before the end of the stream");
                }
            }
            offset += n;
            return Optional.of(b.flip());
        }

        String string(String part) throws IOException {
            long at = offset;
            int length = buffer(4, "the length of " + part).getInt();
            if (length < 0 || length > MAX_STRING_BYTES) {
                throw new ProtocolException(what + " at byte " + at + ": expected a length of " + part + " of 0-" + MAX_STRING_BYTES
                        + " bytes, actual " + length);
            }
            try {
                return StandardCharsets.UTF_8.newDecoder().decode(buffer(length, part)).toString();
            } catch (java.nio.charset.CharacterCodingException e) {
                throw new ProtocolException(what + " at byte " + at + ": expected " + part + " in UTF-8, actual " + e);
            }
        }
    }
}
