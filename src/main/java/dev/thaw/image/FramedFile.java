package dev.thaw.image;

import java.nio.file.Path;
import java.util.UUID;

/**
 * A small file in the image format's frame (header with magic, kind and owner; XXH3 footer), for files beside images that follow
 * the same conventions: the cluster checkpoint's manifest and frames. Written to a temporary file, fsynced and renamed into place
 * (the directory fsynced too), so a reader sees the whole file or none; read back with the frame, owner and checksum checked,
 * every failure an {@link ImageException} naming the file and offset.
 */
public final class FramedFile {
    private FramedFile() {}

    /** Writes {@code body} to {@code target} atomically, framed as {@code kind} owned by {@code owner}. */
    public static void write(Path target, FileKind kind, UUID owner, byte[] body) {
        try (FramedWriter w = new FramedWriter(target, kind, owner)) {
            w.write(body);
            w.finish();
        }
        FramedWriter.syncDirectory(target.toAbsolutePath().getParent());
    }

    /** The checked body of {@code path}: its frame must say {@code kind}, and {@code owner} unless null. */
    public static byte[] read(Path path, FileKind kind, UUID owner) {
        return Framing.readWholeBody(path, kind, owner);
    }
}
