package dev.thaw.cluster.net;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.ByteBuffer;
import org.junit.jupiter.api.Test;

class TunnelDatagramTest {
    static final byte[] FRAME = ClusterSwitchTest.frame(ClusterSwitchTest.macOf(2), ClusterSwitchTest.macOf(1), "payload");

    static byte[] seed() {
        return new TunnelDatagram(7, "m1", "m2", FRAME).encode();
    }

    private static TunnelDatagram decode(byte[] b) {
        return TunnelDatagram.decode(ByteBuffer.wrap(b), "10.0.0.2:7300");
    }

    @Test
    void roundTripsAndTheHeaderIsAsDocumented() {
        byte[] b = seed();
        assertThat(b).hasSize(TunnelDatagram.HEADER_BYTES + 4 + FRAME.length);
        assertThat(new String(b, 0, 4, java.nio.charset.StandardCharsets.US_ASCII)).isEqualTo("THTU");
        assertThat(b[4]).isEqualTo((byte) 1);
        assertThat(b[5]).isEqualTo((byte) 1);
        assertThat(decode(b)).isEqualTo(new TunnelDatagram(7, "m1", "m2", FRAME));
    }

    @Test
    void eachBadFieldIsNamedWithWhereExpectedAndActual() {
        byte[] b = seed();
        assertThatThrownBy(() -> decode(java.util.Arrays.copyOf(b, 10))).isInstanceOf(TunnelDatagram.Malformed.class)
                .hasMessage("tunnel datagram from 10.0.0.2:7300, offset 0: expected a header of 16 bytes, actual 10 bytes in all");
        byte[] magic = b.clone();
        magic[0] = 'X';
        assertThatThrownBy(() -> decode(magic)).hasMessageContaining("offset 0: expected magic 54485455 (THTU), actual 58485455");
        byte[] version = b.clone();
        version[4] = 2;
        assertThatThrownBy(() -> decode(version)).hasMessageContaining("offset 4: expected version 1, actual 2");
        byte[] type = b.clone();
        type[5] = 0;
        assertThatThrownBy(() -> decode(type)).hasMessageContaining("offset 5: expected type 1 (frame), actual 0 (invalid)");
        byte[] name = b.clone();
        name[6] = 0;
        assertThatThrownBy(() -> decode(name)).hasMessageContaining("offset 6: expected a sender's name of 1-63 bytes, actual 0");
        byte[] sequence = b.clone();
        for (int i = 8; i < 16; i++) sequence[i] = 0;
        assertThatThrownBy(() -> decode(sequence)).hasMessageContaining("offset 8: expected a sequence >= 1, actual 0");
        byte[] shortFrame = java.util.Arrays.copyOf(b, TunnelDatagram.HEADER_BYTES + 4 + 13);
        assertThatThrownBy(() -> decode(shortFrame)).hasMessageContaining("and a frame of at least 14 bytes, actual 17 bytes after the header");
        byte[] badName = b.clone();
        badName[TunnelDatagram.HEADER_BYTES] = '/';
        assertThatThrownBy(() -> decode(badName)).hasMessageContaining("offset 16: expected a sender's member name matching")
                .hasMessageContaining("actual '/1'");
        byte[] same = b.clone();
        same[TunnelDatagram.HEADER_BYTES + 3] = '1';
        assertThatThrownBy(() -> decode(same)).hasMessageContaining("expected a receiver other than the sender, actual both m1");
    }

    @Test
    void aFrameTooLongForADatagramIsRefusedAtEncoding() {
        assertThatThrownBy(() -> new TunnelDatagram(1, "m1", "m2", new byte[TunnelDatagram.MAX_FRAME_BYTES + 1]))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("actual " + (TunnelDatagram.MAX_FRAME_BYTES + 1));
    }
}
