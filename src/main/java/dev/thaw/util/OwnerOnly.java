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
}
