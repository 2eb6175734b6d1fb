package dev.thaw.util;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileAttribute;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Set;

/**
 * Permissions for files that hold guest memory (images, packs, mapped RAM files): readable by their
 * owner only. Guest memory holds keys and passwords, so the mode is given at creation: a umask can
 * narrow it but never widen it, and no moment exists in which the file is readable by others.
 */
public final class OwnerOnly {
    /** rw------- */
    public static final FileAttribute<Set<PosixFilePermission>> FILE = PosixFilePermissions.asFileAttribute(
            PosixFilePermissions.fromString("rw-------"));
    /** rwx------ */
    public static final FileAttribute<Set<PosixFilePermission>> DIRECTORY = PosixFilePermissions.asFileAttribute(
            PosixFilePermissions.fromString("rwx------"));

    private OwnerOnly() {}

    /** Creates {@code dir} and its missing parents with mode 0700; directories that exist keep theirs. */
    public static Path createDirectories(Path dir) throws IOException {
        return Files.createDirectories(dir, DIRECTORY);
    }

    /**
     * Checks that {@code file} and its directory belong to whoever runs Thaw (or root) and that nobody
     * else can write them (a directory may be shared if sticky, like /tmp): configuration read from a
     * file is trusted no more than whoever can write it.
     */
    public static void requireTrustedWriters(Path file, String what) throws IOException {
        int self = (int) Files.getAttribute(Path.of("/proc/self"), "unix:uid");
        Path real = file.toRealPath();
        for (Path p : java.util.List.of(real, real.getParent())) {
            int uid = (int) Files.getAttribute(p, "unix:uid");
            int mode = (int) Files.getAttribute(p, "unix:mode");
            boolean othersWrite = (mode & 0022) != 0 && !(Files.isDirectory(p) && (mode & 01000) != 0);
            if ((uid != self && uid != 0) || othersWrite) {
                throw new IllegalArgumentException(what + " " + p + ": expected owned by uid " + self + " or root and writable by its owner"
                        + " only, actual uid " + uid + ", mode " + Integer.toOctalString(mode & 07777));
            }
        }
    }
}
