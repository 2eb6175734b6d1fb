package dev.thaw.util;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.Optional;
import java.util.stream.Stream;

/**
 * The host's page cache for one file, through libc ({@code posix_fadvise}, {@code mincore}) by Java's foreign-function API: hints
 * that start reads ({@link Advice#willNeed}), eviction of a file's cached pages ({@link #evict}), and how much of a file is cached
 * ({@link #residentBytes}). Eviction lets a measurement restore a snapshot that is not in the cache without dropping every other
 * file's pages (QEMU's binary, the guest kernel, other work on the host) as writing {@code /proc/sys/vm/drop_caches} does.
 */
public final class PageCache {
    private static final int O_RDONLY = 0;
    private static final int POSIX_FADV_WILLNEED = 3;
    private static final int POSIX_FADV_DONTNEED = 4;
    private static final long PAGE_BYTES = 4096;
    private static final MethodHandle OPEN;
    private static final MethodHandle FADVISE;
    private static final MethodHandle CLOSE;
    private static final MethodHandle MINCORE;
    private static final String UNAVAILABLE;

    static {
        MethodHandle open = null;
        MethodHandle fadvise = null;
        MethodHandle close = null;
        MethodHandle mincore = null;
        String unavailable = null;
        try {
            Linker linker = Linker.nativeLinker();
            var libc = linker.defaultLookup();
            open = linker.downcallHandle(libc.find("open").orElseThrow(), FunctionDescriptor.of(ValueLayout.JAVA_INT,
                    ValueLayout.ADDRESS, ValueLayout.JAVA_INT), Linker.Option.firstVariadicArg(2));
            fadvise = linker.downcallHandle(libc.find("posix_fadvise").orElseThrow(), FunctionDescriptor.of(ValueLayout.JAVA_INT,
                    ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT));
            close = linker.downcallHandle(libc.find("close").orElseThrow(), FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT));
            mincore = linker.downcallHandle(libc.find("mincore").orElseThrow(), FunctionDescriptor.of(ValueLayout.JAVA_INT,
                    ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.ADDRESS));
        } catch (RuntimeException | LinkageError e) {
            unavailable = e.toString();
        }
        OPEN = open;
        FADVISE = fadvise;
        CLOSE = close;
        MINCORE = mincore;
        UNAVAILABLE = unavailable;
    }

    private PageCache() {}

    /** Why this host's libc cannot be called, if it cannot (then nothing here works and {@link #open} says so). */
    public static Optional<String> unavailable() {
        return Optional.ofNullable(UNAVAILABLE);
    }

    /** An open file to give hints about; close it when done. */
    public static final class Advice implements AutoCloseable {
        private final Path file;
        private final int fd;

        private Advice(Path file, int fd) {
            this.file = file;
            this.fd = fd;
        }

        /** Starts reading {@code byteSize} bytes from {@code offset} into the cache and returns; 0 or the error number. */
        public int willNeed(long offset, long byteSize) {
            return advise(offset, byteSize, POSIX_FADV_WILLNEED);
        }

        /** Drops the range's clean, unmapped pages from the cache; 0 or the error number. */
        public int dontNeed(long offset, long byteSize) {
            return advise(offset, byteSize, POSIX_FADV_DONTNEED);
        }

        private int advise(long offset, long byteSize, int advice) {
            try {
                return (int) FADVISE.invokeExact(fd, offset, byteSize, advice);
            } catch (Throwable t) {
                throw new IllegalStateException("posix_fadvise on " + file + " failed: " + t, t);
            }
        }

        @Override
        public void close() {
            try {
                int ignored = (int) CLOSE.invokeExact(fd);
            } catch (Throwable ignored) {
                // the descriptor goes with the process at the latest
            }
        }
    }

    /** Opens {@code file} for reading, for hints. */
    public static Advice open(Path file) throws IOException {
        if (UNAVAILABLE != null) throw new IOException("page-cache hints for " + file + ": libc cannot be called here (" + UNAVAILABLE + ")");
        int fd;
        try (Arena arena = Arena.ofConfined()) {
            fd = (int) OPEN.invokeExact(arena.allocateFrom(file.toString()), O_RDONLY);
        } catch (Throwable t) {
            throw new IOException("page-cache hints: cannot open " + file + ": " + t, t);
        }
        if (fd < 0) throw new IOException("page-cache hints: cannot open " + file + " for reading");
        return new Advice(file, fd);
    }

    /**
     * Evicts {@code file}'s pages from the page cache: writes its dirty pages first ({@code fsync}; the kernel drops only clean
     * ones), then {@code POSIX_FADV_DONTNEED} over the whole file. Pages that a process has mapped stay.
     */
    public static void evict(Path file) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            ch.force(false);
        }
        try (Advice a = open(file)) {
            int error = a.dontNeed(0, 0); // length 0: to the end of the file
            if (error != 0) throw new IOException("evicting " + file + " from the page cache: posix_fadvise failed with error " + error);
        }
    }

    /** {@link #evict} for every regular file under each of {@code roots} (files or directories; missing ones skipped). */
    public static long evictTrees(List<Path> roots) throws IOException {
        List<Path> files = regularFiles(roots);
        for (Path p : files) evict(p);
        return files.size();
    }

    /** Bytes of {@code file} in the page cache now (by {@code mincore} over a read-only mapping of it, which reads nothing). */
    public static long residentBytes(Path file) throws IOException {
        if (UNAVAILABLE != null) throw new IOException("page-cache residency of " + file + ": libc cannot be called here (" + UNAVAILABLE + ")");
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ); Arena arena = Arena.ofConfined()) {
            long size = ch.size();
            if (size == 0) return 0;
            MemorySegment mapped = ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
            long pages = (size + PAGE_BYTES - 1) / PAGE_BYTES;
            MemorySegment vector = arena.allocate(pages);
            int error;
            try {
                error = (int) MINCORE.invokeExact(mapped, size, vector);
            } catch (Throwable t) {
                throw new IOException("mincore on " + file + " failed: " + t, t);
            }
            if (error != 0) throw new IOException("mincore on " + file + ": expected 0, actual " + error);
            long resident = 0;
            for (long i = 0; i < pages; i++) {
                if ((vector.get(ValueLayout.JAVA_BYTE, i) & 1) != 0) resident++;
            }
            return Math.min(size, resident * PAGE_BYTES);
        }
    }

    /** {@link #residentBytes} summed over every regular file under each of {@code roots}. */
    public static long residentBytesOfTrees(List<Path> roots) throws IOException {
        long total = 0;
        for (Path p : regularFiles(roots)) total += residentBytes(p);
        return total;
    }

    private static List<Path> regularFiles(List<Path> roots) throws IOException {
        List<Path> files = new java.util.ArrayList<>();
        for (Path root : roots) {
            if (!Files.exists(root)) continue;
            try (Stream<Path> walk = Files.walk(root)) {
                walk.filter(Files::isRegularFile).forEach(files::add);
            }
        }
        return files;
    }
}
