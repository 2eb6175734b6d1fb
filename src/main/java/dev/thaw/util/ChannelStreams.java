package dev.thaw.util;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;

/**
 * An input stream over a blocking socket channel that one thread reads while another writes (through
 * {@link DirectChannelOutput}). The JDK's {@code Channels.newInputStream} serializes on the channel's
 * blocking lock, so a reader blocked in {@code read} would stall every write: fatal for a page server,
 * whose return path is read while pages are written.
 */
public final class ChannelStreams {
    private ChannelStreams() {}

    public static InputStream input(SocketChannel channel) {
        return new InputStream() {
            @Override
            public int read() throws IOException {
                byte[] one = new byte[1];
                int n = read(one, 0, 1);
                return n < 0 ? -1 : one[0] & 0xFF;
            }

            @Override
            public int read(byte[] b, int off, int len) throws IOException {
                if (len == 0) return 0;
                int n = channel.read(ByteBuffer.wrap(b, off, len));
                return n; // -1 at the end
            }
        };
    }
}
