package dev.thaw.util;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.stream.Stream;

/** File-tree helpers the JDK lacks. */
public final class FileTrees {
    private FileTrees() {}

    /**
     * Deletes a file or directory tree; missing is fine, failures are ignored (temporary trees only). Another deleter of the
     * same tree at once (a shutdown hook beside an aborting restore) is fine too: Files.walk throws unchecked when a file goes
     * while it walks, which made a cluster cohort fail with a bare NoSuchFileException; the walk is then taken again.
     */
    public static void deleteQuietly(Path root) {
        for (int attempt = 0; attempt < 5 && root != null && Files.exists(root, java.nio.file.LinkOption.NOFOLLOW_LINKS); attempt++) {
            try (Stream<Path> paths = Files.walk(root)) {
                for (Path p : paths.sorted(Comparator.reverseOrder()).toList()) {
                    Files.deleteIfExists(p);
                }
                return;
            } catch (java.io.UncheckedIOException | java.nio.file.NoSuchFileException | java.nio.file.DirectoryNotEmptyException e) {
                // raced with another deleter (or a writer): walk again
            } catch (IOException e) {
                return; // best effort: temporary files only
            }
        }
    }

    /** Bytes of the regular files in a tree (links are not followed); 0 for a missing one. */
    public static long size(Path root) throws IOException {
        if (!Files.exists(root, java.nio.file.LinkOption.NOFOLLOW_LINKS)) return 0;
        try (Stream<Path> paths = Files.walk(root)) {
            long total = 0;
            for (Path p : paths.toList()) {
                if (Files.isRegularFile(p, java.nio.file.LinkOption.NOFOLLOW_LINKS)) total += Files.size(p);
            }
            return total;
        }
    }

    /** {@code DIR.suffix} beside a directory: where data derived from an image is kept (its traces, RAM file, disk overlays). */
    public static Path beside(Path dir, String suffix) {
        Path abs = dir.toAbsolutePath().normalize();
        return abs.resolveSibling(abs.getFileName() + "." + suffix);
    }

    /** Deletes a directory tree (a link is not followed); false if there was no directory. */
    public static boolean deleteDirectory(Path dir) {
        if (!java.nio.file.Files.isDirectory(dir, java.nio.file.LinkOption.NOFOLLOW_LINKS)) return false;
        deleteQuietly(dir);
        return true;
    }
}
