package dev.thaw.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.ReadableByteChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;

class ServeWireTest {
    private static ReadableByteChannel channel(ByteBuffer... parts) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (ByteBuffer b : parts) {
            byte[] a = new byte[b.remaining()];
            b.get(a);
            out.writeBytes(a);
        }
        return Channels.newChannel(new ByteArrayInputStream(out.toByteArray()));
    }

    private static ReadableByteChannel bytes(byte[] b) {
        return Channels.newChannel(new ByteArrayInputStream(b));
    }

    @Test
    void aRequestComesBackAsSent() throws Exception {
        ServeWire.Request sent = new ServeWire.Request(List.of("restore", "imägé", "--mode", "ws", ""), Path.of("/home/u/vms"),
                Optional.of(Instant.ofEpochSecond(1_796_000_000L, 123_456_000)), true);
        assertThat(ServeWire.readRequest(channel(ServeWire.encode(sent)))).isEqualTo(sent);
        ServeWire.Request noStart = new ServeWire.Request(List.of(), Path.of("/"), Optional.empty(), false);
        assertThat(ServeWire.readRequest(channel(ServeWire.encode(noStart)))).isEqualTo(noStart);
    }

    @Test
    void aMalformedRequestSaysWhatAndWhere() {
        ByteBuffer good = ServeWire.encode(new ServeWire.Request(List.of("restore", "img"), Path.of("/d"), Optional.empty(), false));
        byte[] all = new byte[good.remaining()];
        good.get(all);
        assertThatThrownBy(() -> ServeWire.readRequest(bytes("GET / HTTP/1.1\r\n".getBytes(StandardCharsets.US_ASCII))))
                .hasMessageContaining("request at byte 0: expected magic 0x54485731 (thaw serve protocol 1), actual 0x47455420");
        assertThatThrownBy(() -> ServeWire.readRequest(bytes(java.util.Arrays.copyOf(all, all.length - 3))))
                .hasMessageContaining("expected 8 bytes of its start time, actual 6 before the end of the stream");
        assertThatThrownBy(() -> ServeWire.readRequest(bytes(new byte[0]))).hasMessageContaining("expected 4 bytes of its magic number, actual the end");
        assertThatThrownBy(() -> ServeWire.readRequest(channel(ByteBuffer.allocate(8).putInt(ServeWire.MAGIC).putInt(100_000).flip())))
                .hasMessageContaining("request at byte 4: expected 0-256 arguments, actual 100000");
        assertThatThrownBy(() -> ServeWire.readRequest(channel(ByteBuffer.allocate(12).putInt(ServeWire.MAGIC).putInt(1).putInt(-5).flip())))
                .hasMessageContaining("request at byte 8: expected a length of argument 1 of 0-65536 bytes, actual -5");
        byte[] badFlag = all.clone();
        badFlag[badFlag.length - 1] = 7;
        assertThatThrownBy(() -> ServeWire.readRequest(bytes(badFlag))).hasMessageContaining("expected a terminal flag 0 or 1, actual 7");
        ByteBuffer relative = ServeWire.encode(new ServeWire.Request(List.of(), Path.of("/x"), Optional.empty(), false));
        byte[] r = new byte[relative.remaining()];
        relative.get(r);
        r[12] = 'y'; // the directory's two bytes, after the magic, the count and its length: "/x" -> "yy"
        r[13] = 'y';
        assertThatThrownBy(() -> ServeWire.readRequest(bytes(r))).hasMessageContaining("expected an absolute working directory, actual 'yy'");
        byte[] notUtf8 = ByteBuffer.allocate(14).putInt(ServeWire.MAGIC).putInt(1).putInt(2).put((byte) 0xC3).put((byte) 0x28).array();
        assertThatThrownBy(() -> ServeWire.readRequest(bytes(notUtf8))).hasMessageContaining("expected argument 1 in UTF-8");
    }

    @Test
    void framesComeBackInOrderAndEndCleanly() throws Exception {
        byte[] text = "guest running\n".getBytes(StandardCharsets.UTF_8);
        ServeWire.FrameReader r = new ServeWire.FrameReader(channel(ServeWire.frame(ServeWire.Kind.OUT, text, 0, 5),
                ServeWire.frame(ServeWire.Kind.HEARTBEAT, new byte[0], 0, 0), ServeWire.frame(ServeWire.Kind.ERR, text, 6, 8),
                ServeWire.exitFrame(3)));
        assertThat(r.next().orElseThrow()).satisfies(f -> {
            assertThat(f.kind()).isEqualTo(ServeWire.Kind.OUT);
            assertThat(new String(f.payload(), StandardCharsets.UTF_8)).isEqualTo("guest");
        });
        assertThat(r.next().orElseThrow().kind()).isEqualTo(ServeWire.Kind.HEARTBEAT);
        assertThat(new String(r.next().orElseThrow().payload(), StandardCharsets.UTF_8)).isEqualTo("running\n");
        assertThat(r.next().orElseThrow().exitCode()).isEqualTo(3);
        assertThat(r.next()).isEmpty();
        assertThatThrownBy(() -> ServeWire.frame(ServeWire.Kind.INVALID, new byte[0], 0, 0)).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void aMalformedFrameSaysWhatAndWhere() {
        ByteBuffer out = ServeWire.frame(ServeWire.Kind.OUT, new byte[3], 0, 3); // 8 bytes
        ServeWire.FrameReader unknown = new ServeWire.FrameReader(channel(out.duplicate(), ByteBuffer.wrap(new byte[] {9, 0, 0, 0, 0})));
        assertThatThrownBy(() -> {
            unknown.next();
            unknown.next();
        }).hasMessageContaining("frame at byte 8: expected a kind 1-4, actual 9");
        assertThatThrownBy(() -> new ServeWire.FrameReader(channel(ByteBuffer.wrap(new byte[] {0, 0, 0, 0, 0}))).next())
                .hasMessageContaining("frame at byte 0: expected a kind 1-4, actual 0");
        assertThatThrownBy(() -> new ServeWire.FrameReader(channel(ByteBuffer.wrap(new byte[] {3, 0, 0, 0, 2, 0, 0}))).next())
                .hasMessageContaining("exit frame at byte 0: expected 4 bytes of payload, actual 2");
        assertThatThrownBy(() -> new ServeWire.FrameReader(channel(ByteBuffer.wrap(new byte[] {1, 0x7f, 0, 0, 0}))).next())
                .hasMessageContaining("expected 0-1048576 bytes of payload, actual 2130706432");
        assertThatThrownBy(() -> new ServeWire.FrameReader(channel(ByteBuffer.wrap(new byte[] {1, 0, 0, 0, 4, 'a'}))).next())
                .hasMessageContaining("frame at byte 5: expected 4 bytes of its out payload, actual 1 before the end of the stream");
        assertThatThrownBy(() -> new ServeWire.FrameReader(channel(ByteBuffer.wrap(new byte[] {1, 0}))).next())
                .hasMessageContaining("frame at byte 0: expected 5 bytes of its header, actual 2 before the end of the stream");
    }

    @Test
    void theServerOptionIsTheClientsAndNeverForwarded() {
        assertThat(ServeWire.serverOption(List.of("restore", "--server", "/s", "img", "--server=/t", "--exit")).others())
                .containsExactly("restore", "img", "--exit");
        assertThat(ServeWire.serverOption(List.of("restore", "--", "--server", "x")).others()).containsExactly("restore", "--", "--server", "x");
        assertThat(ServeClient.serverOf(new String[] {"restore", "img", "--server", "/s"}, Map.of())).contains(Path.of("/s"));
        assertThat(ServeClient.serverOf(new String[] {"restore", "--server=/s", "img"}, Map.of("THAW_SERVER", "/e"))).contains(Path.of("/s"));
        assertThat(ServeClient.serverOf(new String[] {"restore", "img"}, Map.of("THAW_SERVER", "/e"))).contains(Path.of("/e"));
        assertThat(ServeClient.serverOf(new String[] {"restore", "img"}, Map.of("THAW_SERVER", " "))).isEmpty();
        assertThat(ServeClient.serverOf(new String[] {"save", "--server", "/s"}, Map.of("THAW_SERVER", "/e"))).as("restore only").isEmpty();
        assertThat(ServeClient.serverOf(new String[] {"restore", "--", "--server", "/s"}, Map.of())).isEmpty();
        assertThat(ServeClient.serverOf(new String[0], Map.of("THAW_SERVER", "/e"))).isEmpty();
    }
}
