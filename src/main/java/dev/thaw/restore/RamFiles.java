package dev.thaw.restore;

import dev.thaw.image.CheckpointImage;
import dev.thaw.migration.RamBlock;
import dev.thaw.util.FileTrees;
import dev.thaw.util.OwnerOnly;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Optional;

/**
 * The raw RAM file that a mapped restore ({@link Restorer.Mode#MAPPED}) maps: the image's {@value MappedRestore#RAM_BLOCK} as a
 * sparse file, kept beside the image in {@code IMAGE.ram/} (the image itself is never modified). It is derived data: written
 * from the verified image ({@code thaw save --ram-file}, or the first mapped restore), atomically and owner-only, and named by
 * the image's id, so that a file left by an earlier image of the same path is never mapped into this one's guest. It is never
 * written in place: QEMU maps it privately, and a rewrite goes to a new inode, so a running guest keeps the pages it mapped.
 * Writers take the directory's lock ({@value #LOCK_FILE}); readers need none.
 */
public final class RamFiles {
    private RamFiles() {}

    public static Path directoryFor(Path image) {
        return dev.thaw.util.FileTrees.beside(image, "ram");
    }

    /** Where this image's RAM file is, whether or not it was written. */
    public static Path fileFor(CheckpointImage image) {
        return directoryFor(image.directory()).resolve(image.manifest().imageId() + "." + MappedRestore.RAM_BLOCK);
    }

    /** The image's RAM file when it was written and has the block's size; empty otherwise. */
    public static Optional<Path> existing(CheckpointImage image) {
        Path file = fileFor(image);
        try {
            if (!Files.isRegularFile(file, LinkOption.NOFOLLOW_LINKS)) return Optional.empty();
            return Files.size(file) == ramBlock(image).usedByteSize() ? Optional.of(file) : Optional.empty();
        } catch (IOException e) {
            return Optional.empty();
        }
    }

    /**
     * Writes the image's RAM file (replacing one of a wrong size) and removes the files of other images from the directory:
     * they can only be left over from an image that had this path before.
     */
    public static MappedRestore.RamFile write(CheckpointImage image) {
        return locked(image, () -> writeAndClean(image));
    }

    /**
     * The existing RAM file, or one written now (the first mapped restore of an image saved without {@code --ram-file}); one
     * that a concurrent writer finished while this one waited for the lock is used as it is.
     */
    public static Path ensure(CheckpointImage image, java.util.function.Consumer<String> progress) {
        Optional<Path> existing = existing(image);
        if (existing.isPresent()) return existing.get();
        progress.accept("writing the image's RAM file once (" + (ramBlock(image).usedByteSize() >> 20) + " MiB) into " + directoryFor(image.directory()));
        return locked(image, () -> {
            Optional<Path> meanwhile = existing(image);
            return meanwhile.isPresent() ? meanwhile.get() : writeAndClean(image).file();
        });
    }

    /** The lock file of the RAM file's directory: one writer at a time. */
    public static final String LOCK_FILE = ".lock";

    /** One monitor per RAM-file directory (by its real path) and process. */
    private static final java.util.Map<Path, Object> IN_PROCESS = new java.util.concurrent.ConcurrentHashMap<>();

    private interface Locked<T> {
        T run() throws IOException;
    }

    /**
     * Runs {@code action} holding the directory's lock ({@value #LOCK_FILE}, a file lock: across processes too). Two writers
     * at once (two first mapped restores of one image, a save's {@code --ram-file} beside one) would each delete the other's
     * temporary file as the file of another image.
     */
    private static <T> T locked(CheckpointImage image, Locked<T> action) {
        Path dir = directoryFor(image.directory());
        try {
            OwnerOnly.createDirectories(dir);
            // Guest memory is secret: a directory that existed (made by hand, by an older Thaw) is closed too.
            Files.setPosixFilePermissions(dir, java.nio.file.attribute.PosixFilePermissions.fromString("rwx------"));
            // The JVM holds one file lock per process and throws on an overlapping one: writers inside it wait on a monitor.
            synchronized (IN_PROCESS.computeIfAbsent(dir.toRealPath(), d -> new Object())) {
                try (FileChannel lockFile = FileChannel.open(dir.resolve(LOCK_FILE), StandardOpenOption.CREATE, StandardOpenOption.WRITE);
                     FileLock lock = lockFile.lock()) {
                    return action.run();
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("writing the RAM file of " + image.directory() + " into " + dir + " failed: " + e.getMessage(), e);
        }
    }

    /** Under the lock: the file, then every other image's file removed (not the lock). */
    private static MappedRestore.RamFile writeAndClean(CheckpointImage image) throws IOException {
        Path file = fileFor(image);
        MappedRestore.RamFile written = MappedRestore.writeRamFile(image, file);
        try (DirectoryStream<Path> entries = Files.newDirectoryStream(file.getParent())) {
            for (Path p : entries) {
                String name = p.getFileName().toString();
                if (!name.equals(file.getFileName().toString()) && !name.equals(LOCK_FILE)) FileTrees.deleteQuietly(p);
            }
        }
        return written;
    }

    /** Deletes the image's RAM files (when the image itself is removed); false if it had none. */
    public static boolean deleteFor(Path image) {
        return dev.thaw.util.FileTrees.deleteDirectory(directoryFor(image));
    }

    private static RamBlock ramBlock(CheckpointImage image) {
        return image.ramBlocks().get(MappedRestore.ramBlockIndex(image));
    }
}
