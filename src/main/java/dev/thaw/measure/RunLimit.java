package dev.thaw.measure;

import dev.thaw.qemu.QemuVm;
import dev.thaw.qemu.VmConfig;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;

/**
 * The run's own limit for a restore (issue 12): QEMU's start plus the working set's bytes at the sequential read rate of the
 * image's storage, both measured in the same run, so that a TTR can be read against what this host allowed that day (its disk
 * read 0.3-1.2 GB/s on different days). No restore that reads its working set from that storage into a new QEMU can be
 * responsive sooner.
 *
 * @param qemuStartSeconds   an incoming QEMU of the saved guest's configuration, from its launch until its monitor answers
 * @param readBytesPerSecond the sequential read rate of the image's largest file (from the disk with {@code --cold} or {@code --evict})
 * @param readBytes          the bytes read to measure that rate
 * @param workingSetBytes    the workload's working set W
 */
public record RunLimit(double qemuStartSeconds, double readBytesPerSecond, long readBytes, long workingSetBytes) {
    /** Enough to see the storage's sequential rate past its first request; bounded so that a 4 GiB image costs seconds at most. */
    static final long READ_LIMIT_BYTES = 256L << 20;
    /** Large sequential reads, as a restore that streams its working set would issue. */
    static final int READ_BUFFER_BYTES = 8 << 20;

    public RunLimit {
        if (!(readBytesPerSecond > 0)) {
            throw new IllegalArgumentException("sequential read rate: expected > 0 B/s, actual " + readBytesPerSecond + " B/s over "
                    + readBytes + " bytes");
        }
    }

    /** QEMU's start plus the working set at the read rate. */
    public double seconds() {
        return qemuStartSeconds + workingSetBytes / readBytesPerSecond;
    }

    /**
     * Measures both parts: reads the largest file under {@code imageDir} (after bringing the page cache into the restores' state, as the
     * restores start), then launches and quits an incoming QEMU named {@code vmName} of {@code source}'s configuration.
     */
    public static RunLimit measure(VmConfig source, String vmName, Path imageDir, long workingSetBytes, CacheState cache) {
        Path file = largestFile(imageDir);
        cache.prepare(List.of(file));
        long[] read = readSequentially(file, READ_LIMIT_BYTES);
        cache.prepare(List.of(file)); // QEMU starts as the restores do
        long launched = System.nanoTime();
        long startNanos;
        try (QemuVm vm = QemuVm.launch(source.asIncoming(vmName))) {
            startNanos = System.nanoTime() - launched;
        }
        return new RunLimit(startNanos / 1e9, read[0] * 1e9 / Math.max(1, read[1]), read[0], workingSetBytes);
    }

    /** Reads {@code file} from its start, up to {@code maxBytes}: {bytes read, nanoseconds taken}. */
    static long[] readSequentially(Path file, long maxBytes) {
        ByteBuffer buffer = ByteBuffer.allocateDirect(READ_BUFFER_BYTES);
        long bytes = 0;
        long started = System.nanoTime();
        try (FileChannel ch = FileChannel.open(file)) {
            while (bytes < maxBytes) {
                buffer.clear().limit((int) Math.min(buffer.capacity(), maxBytes - bytes));
                int n = ch.read(buffer);
                if (n < 0) break;
                bytes += n;
            }
        } catch (IOException e) {
            throw new UncheckedIOException("reading " + file + " for the sequential read rate at byte " + bytes + ": " + e.getMessage(), e);
        }
        long nanos = System.nanoTime() - started;
        if (bytes == 0) throw new IllegalStateException("sequential read rate: expected a non-empty file, actual " + file + " is empty");
        return new long[] {bytes, nanos};
    }

    static Path largestFile(Path dir) {
        try (Stream<Path> files = Files.walk(dir)) {
            return files.filter(Files::isRegularFile).max(Comparator.comparingLong(RunLimit::size))
                    .orElseThrow(() -> new IllegalStateException("sequential read rate: expected a file under " + dir + ", actual none"));
        } catch (IOException e) {
            throw new UncheckedIOException("listing " + dir + " for the sequential read rate: " + e.getMessage(), e);
        }
    }

    private static long size(Path p) {
        try {
            return Files.size(p);
        } catch (IOException e) {
            throw new UncheckedIOException("size of " + p + ": " + e.getMessage(), e);
        }
    }
}
