package dev.thaw.util;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.channels.WritableByteChannel;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A buffered stream onto a channel whose buffer is direct memory: a channel write from a heap array copies it into a
 * temporary direct buffer first, one more copy of every byte a restore sends (docs/benchmarks.md, twelfth session). Counts
 * the bytes handed to the channel into a shared counter (progress, stall watchdogs). Not thread-safe: one writer owns it.
 */
public final class DirectChannelOutput extends OutputStream {
    private final WritableByteChannel channel;
    private final ByteBuffer buffer;
    private final AtomicLong written;

    public DirectChannelOutput(WritableByteChannel channel, int bufferBytes, AtomicLong written) {
        if (bufferBytes < 1) throw new IllegalArgumentException("buffer: expected at least 1 byte, actual " + bufferBytes);
        this.channel = channel;
        this.buffer = ByteBuffer.allocateDirect(bufferBytes);
        this.written = written;
    }

    @Override
    public void write(int b) throws IOException {
        if (!buffer.hasRemaining()) drain();
        buffer.put((byte) b);
    }

    @Override
    public void write(byte[] b, int off, int len) throws IOException {
        java.util.Objects.checkFromIndexSize(off, len, b.length);
        while (len > 0) {
            if (!buffer.hasRemaining()) drain();
            int n = Math.min(len, buffer.remaining());
            buffer.put(b, off, n);
            off += n;
            len -= n;
        }
    }

    @Override
    public void flush() throws IOException {
        drain();
    }

    /** Flushes; the channel stays open (its owner closes it). */
    @Override
    public void close() throws IOException {
        drain();
    }

    private void drain() throws IOException {
        buffer.flip();
        try {
            while (buffer.hasRemaining()) {
                int n = channel.write(buffer);
                written.addAndGet(n);
            }
        } finally {
            buffer.compact();
        }
    }
}
