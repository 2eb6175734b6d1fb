package dev.thaw.image;

import com.dynatrace.hash4j.hashing.HashStream64;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Writes one framed file: header, body, footer; into a temporary name beside the target, fsynced,
 * then renamed into place, so a reader never sees a partial file under the final name. The file is
 * created with mode 0600 (it may hold guest memory). The first error of the background writeback
 * fails the file: Linux reports a writeback error to one fsync only, so a later fsync may succeed
 * although pages never reached the disk.
 */
final class FramedWriter implements AutoCloseable {
    private final Path target;
    private final Path temp;
    private final FileChannel channel;
    private final HashStream64 hash = Framing.newHash();
    private final ByteBuffer buffer = ByteBuffer.allocate(1 << 20);
    private long position;
    private boolean finished;
    private long writtenSinceSync;
    private final long writebackByteSize;
    private final Force force;
    private final AtomicReference<IOException> writebackError = new AtomicReference<>();
    private CompletableFuture<Void> writeback = CompletableFuture.completedFuture(null);
    /**
     * Bytes after which writeback to storage is started in the background. Without it the kernel
     * starts writing only at its dirty threshold (GiBs here), and the final fsync then waits for
     * all of it: receiving and writing would run one after the other instead of overlapping.
     */
    static final long WRITEBACK_BYTES = 64L << 20;

    /** What was written. */
    record Written(Path path, long byteSize, long checksum) {}

    /** The fsync of the file's data; tests inject failures through it. */
    @FunctionalInterface
    interface Force {
        void force(FileChannel channel, boolean metadata) throws IOException;
    }

    FramedWriter(Path target, FileKind kind, UUID owner) {
        this(target, kind, owner, WRITEBACK_BYTES, FileChannel::force);
    }

    FramedWriter(Path target, FileKind kind, UUID owner, long writebackByteSize, Force force) {
        this.target = target;
        this.writebackByteSize = writebackByteSize;
        this.force = force;
        this.temp = target.resolveSibling(target.getFileName() + ".tmp-" + UUID.randomUUID().toString().substring(0, 8));
        try {
            this.channel = FileChannel.open(temp, java.util.Set.of(StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE),
                    dev.thaw.util.OwnerOnly.FILE);
        } catch (IOException e) {
            throw new ImageException.CannotWrite(target, e.toString(), e);
        }
        write(Framing.header(kind, owner));
    }

    /** Bytes written so far, header included: the offset the next byte will have. */
    long position() {
        return position;
    }

    void write(byte[] bytes) {
        write(bytes, 0, bytes.length);
    }

    void write(byte[] bytes, int offset, int length) {
        throwIfWritebackFailed();
        hash.putBytes(bytes, offset, length);
        position += length;
        try {
            if (length > buffer.remaining()) {
                flushBuffer();
                if (length > buffer.capacity()) {
                    ByteBuffer direct = ByteBuffer.wrap(bytes, offset, length);
                    while (direct.hasRemaining()) channel.write(direct);
                    return;
                }
            }
            buffer.put(bytes, offset, length);
        } catch (IOException e) {
            throw new ImageException.CannotWrite(target, e.toString(), e);
        }
    }

    private void flushBuffer() throws IOException {
        writtenSinceSync += buffer.position();
        buffer.flip();
        while (buffer.hasRemaining()) channel.write(buffer);
        buffer.clear();
        if (writtenSinceSync >= writebackByteSize && writeback.isDone()) {
            writtenSinceSync = 0;
            // fdatasync from another thread while this one keeps writing. Its error is kept: the kernel reports a
            // writeback error once, so the final fsync would not see it again.
            writeback = CompletableFuture.runAsync(() -> {
                try {
                    force.force(channel, false);
                } catch (IOException e) {
                    writebackError.compareAndSet(null, e);
                }
            }, r -> Thread.ofVirtual().name("writeback-" + target.getFileName()).start(r));
        }
    }

    private void throwIfWritebackFailed() {
        IOException e = writebackError.get();
        if (e != null) throw new ImageException.CannotWrite(target, "background fsync failed: " + e, e);
    }

    /** Writes the footer, fsyncs, renames into place. The directory entry is fsynced by the caller. */
    Written finish() {
        long body = position - Framing.HEADER_BYTES;
        long checksum = hash.getAsLong();
        byte[] footer = Framing.footer(body, checksum);
        try {
            if (footer.length > buffer.remaining()) flushBuffer(); // a body that filled the buffer exactly
            buffer.put(footer);
            position += footer.length;
            flushBuffer();
            writeback.join();
            throwIfWritebackFailed();
            force.force(channel, true);
            channel.close();
            Files.move(temp, target, StandardCopyOption.ATOMIC_MOVE);
            finished = true;
        } catch (IOException e) {
            throw new ImageException.CannotWrite(target, e.toString(), e);
        }
        return new Written(target, position, checksum);
    }

    /** Abandons the file unless it was finished. */
    @Override
    public void close() {
        if (finished) return;
        try {
            writeback.join();
            channel.close();
            Files.deleteIfExists(temp);
        } catch (IOException e) {
            // the temporary file is garbage either way
        }
    }

    /** fsyncs a directory, so that renames into it survive a crash. */
    static void syncDirectory(Path dir) {
        try (FileChannel d = FileChannel.open(dir, StandardOpenOption.READ)) {
            d.force(true);
        } catch (IOException e) {
            throw new ImageException.CannotWrite(dir, "fsync of the directory failed: " + e, e);
        }
    }
}
