package dev.thaw.image;

import java.nio.file.Path;

/**
 * Everything that can be wrong with a checkpoint image. Each message names the file and, where
 * one exists, the byte offset, and says {@code expected ... actual ...}.
 */
public sealed abstract class ImageException extends RuntimeException {
    private final Path file;

    ImageException(Path file, String message, Throwable cause) {
        super(message, cause);
        this.file = file;
    }

    public Path file() {
        return file;
    }

    /** Bytes that fail a check: checksum, magic, length, structure. */
    public static final class Corrupt extends ImageException {
        private final long offset;

        public Corrupt(Path file, long offset, String detail) {
            this(file, offset, detail, null);
        }

        public Corrupt(Path file, long offset, String detail, Throwable cause) {
            super(file, "corrupt image file " + file + " at offset " + offset + ": " + detail, cause);
            this.offset = offset;
        }

        public long offset() {
            return offset;
        }
    }

    /** A well-formed file of a format version this Thaw does not read. */
    public static final class UnsupportedVersion extends ImageException {
        public UnsupportedVersion(Path file, int actual, int minimum, int maximum) {
            super(file, "image file " + file + " has format version " + actual + ": expected " + minimum
                    + (minimum == maximum ? "" : " to " + maximum) + (actual > maximum ? " (written by a newer Thaw)" : ""), null);
        }
    }

    /** A file the image needs is absent or unreadable. */
    public static final class Missing extends ImageException {
        public Missing(Path file, String detail, Throwable cause) {
            super(file, "image file " + file + " " + detail, cause);
        }
    }

    /** The image cannot be written where asked. */
    public static final class CannotWrite extends ImageException {
        public CannotWrite(Path file, String detail, Throwable cause) {
            super(file, "cannot write image file " + file + ": " + detail, cause);
        }
    }
}
