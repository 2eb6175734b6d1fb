package dev.thaw.util;

import java.io.FilterOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.util.concurrent.atomic.AtomicLong;

/** Counts the bytes written through it into a shared counter (progress reports, stall watchdogs). */
public final class CountingOutputStream extends FilterOutputStream {
    private final AtomicLong count;

    public CountingOutputStream(OutputStream out, AtomicLong count) {
        super(out);
        this.count = count;
    }

    @Override
    public void write(byte[] b, int off, int len) throws IOException {
        out.write(b, off, len);
        count.addAndGet(len);
    }

    @Override
    public void write(int b) throws IOException {
        out.write(b);
        count.incrementAndGet();
    }
}
