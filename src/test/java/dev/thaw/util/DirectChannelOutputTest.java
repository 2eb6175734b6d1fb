package dev.thaw.util;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.WritableByteChannel;
import java.util.Random;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

class DirectChannelOutputTest {
    /** A channel that takes at most {@code perCall} bytes a write, as a socket with a full send buffer does. */
    private static final class TrickleChannel implements WritableByteChannel {
        final ByteArrayOutputStream received = new ByteArrayOutputStream();
        final int perCall;
        int calls;

        TrickleChannel(int perCall) {
            this.perCall = perCall;
        }

        @Override
        public int write(ByteBuffer src) {
            calls++;
            int n = Math.min(perCall, src.remaining());
            byte[] b = new byte[n];
            src.get(b);
            received.write(b, 0, n);
            return n;
        }

        @Override
        public boolean isOpen() {
            return true;
        }

        @Override
        public void close() {}
    }

    @Test
    void everyByteArrivesInOrderAndIsCountedThroughPartialWrites() throws IOException {
        byte[] data = new byte[100_000];
        new Random(7).nextBytes(data);
        TrickleChannel channel = new TrickleChannel(333);
        AtomicLong written = new AtomicLong();
        DirectChannelOutput out = new DirectChannelOutput(channel, 4096, written);
        out.write(data[0]);
        out.write(data, 1, 5000); // more than the buffer holds
        assertThat(written.get()).as("the first full buffer went out").isEqualTo(4096);
        for (int at = 5001; at < data.length; at += 17) out.write(data, at, Math.min(17, data.length - at));
        assertThat(channel.received.size()).as("nothing is sent early that is not a full buffer").isLessThanOrEqualTo(data.length);
        out.flush();
        assertThat(channel.received.toByteArray()).isEqualTo(data);
        assertThat(written.get()).isEqualTo(data.length);
        out.flush();
        assertThat(written.get()).as("a second flush sends nothing").isEqualTo(data.length);
    }

    @Test
    void aFailingChannelFailsTheWriteAndLeavesTheCountAtWhatWasSent() {
        AtomicLong written = new AtomicLong();
        WritableByteChannel broken = new WritableByteChannel() {
            @Override
            public int write(ByteBuffer src) throws IOException {
                throw new IOException("Broken pipe");
            }

            @Override
            public boolean isOpen() {
                return true;
            }

            @Override
            public void close() {}
        };
        DirectChannelOutput out = new DirectChannelOutput(broken, 16, written);
        assertThatThrownBy(() -> out.write(new byte[40], 0, 40)).isInstanceOf(IOException.class).hasMessage("Broken pipe");
        assertThat(written.get()).isZero();
    }

    @Test
    void refusesAnEmptyBuffer() {
        assertThatThrownBy(() -> new DirectChannelOutput(new TrickleChannel(1), 0, new AtomicLong()))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("expected at least 1 byte, actual 0");
    }
}
