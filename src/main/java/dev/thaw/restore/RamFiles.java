package dev.thaw.restore;

import dev.thaw.image.CheckpointImage;
import dev.thaw.migration.RamBlock;
import dev.thaw.util.FileTrees;
import dev.thaw.util.OwnerOnly;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.Optional;

/**
 * The raw RAM file that a mapped restore ({@link Restorer.Mode#MAPPED}) maps: the image's {@value MappedRestore#RAM_BLOCK} as a
 * sparse file, kept beside the image in {@code IMAGE.ram/} (the image itself is never modified). It is derived data: written
 * from the verified image ({@code thaw save --ram-file}, or the first mapped restore), atomically and owner-only, and named by
 * the image's id, so that a file left by an earlier image of the same path is never mapped into this one's guest. It is never
 * written in place: QEMU maps it privately, and a rewrite goes to a new inode, so a running guest keeps the pages it mapped.
 */
public final class RamFiles {
    private RamFiles() {}

    public static Path directoryFor(Path image) {
        Path abs = image.toAbsolutePath().normalize();
        return abs.resolveSibling(abs.getFileName() + ".ram");
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
        Path dir = directoryFor(image.directory());
        try {
            OwnerOnly.createDirectories(dir);
            // Guest memory is secret: a directory that existed (made by hand, by an older Thaw) is closed too.
            Files.setPosixFilePermissions(dir, java.nio.file.attribute.PosixFilePermissions.fromString("rwx------"));
            Path file = fileFor(image);
            MappedRestore.RamFile written = MappedRestore.writeRamFile(image, file);
            try (DirectoryStream<Path> entries = Files.newDirectoryStream(dir)) {
                for (Path p : entries) {
                    if (!p.getFileName().equals(file.getFileName())) FileTrees.deleteQuietly(p);
                }
            }
            return written;
        } catch (IOException e) {
            throw new UncheckedIOException("writing the RAM file of " + image.directory() + " into " + dir + " failed: " + e.getMessage(), e);
        }
    }

    /** The existing RAM file, or one written now (the first mapped restore of an image saved without {@code --ram-file}). */
    public static Path ensure(CheckpointImage image, java.util.function.Consumer<String> progress) {
        Optional<Path> existing = existing(image);
        if (existing.isPresent()) return existing.get();
        progress.accept("writing the image's RAM file once (" + (ramBlock(image).usedByteSize() >> 20) + " MiB) into " + directoryFor(image.directory()));
        return write(image).file();
    }

    /** Deletes the image's RAM files (when the image itself is removed); false if it had none. */
    public static boolean deleteFor(Path image) {
        Path dir = directoryFor(image);
        if (!Files.isDirectory(dir, LinkOption.NOFOLLOW_LINKS)) return false;
        FileTrees.deleteQuietly(dir);
        return true;
    }

    private static RamBlock ramBlock(CheckpointImage image) {
        return image.ramBlocks().get(MappedRestore.ramBlockIndex(image));
    }
}
