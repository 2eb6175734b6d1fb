package dev.thaw.image;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;

/**
 * The backing chain of a disk base as its qcow2 headers name it: what a disk reference's layer means (layer 0 the base,
 * layer n its n-th backing file). Read from the files themselves, by the save and by every restore alike, so that the
 * image records no paths beyond the base's; the base's header (and so its backing file's name) lies in the first MiB its
 * identity hashes, and every block read through a layer is checked against its SHA-256 anyway.
 *
 * <p>The walk follows the header (big-endian: magic {@code QFI\xfb}, version 2 or 3, {@code u64 backing_file_offset} at
 * 8, {@code u32 backing_file_size} at 16) and ends at a file that is not qcow2 (a raw backing file) or that names no
 * backing file. A relative name is taken from the naming file's directory, as QEMU does. A name QEMU would read as a
 * protocol or a JSON description ({@code nbd:...}, {@code json:{...}}) ends the chain: Thaw reads plain files only. So
 * does a name that does not lie whole inside the file's first {@link DiskIdentity#SAMPLE_BYTES} (what its identity hashes),
 * so that a backing name changed since the save always changes the identity of the file naming it.
 * Every file of the chain is opened only once it is known to be a regular file or a block device ({@link #open}): a FIFO
 * would block the open forever.
 */
public final class Qcow2Chain {
    /** The deepest layer a reference may name (a deeper chain is still a valid disk, its lower files are just not indexed). */
    public static final int MAX_LAYERS = 15;
    static final int MAGIC = 0x514649fb;
    /** QEMU's own limit on a backing file's name (block/qcow2.c). */
    static final int MAX_NAME_BYTES = 1023;

    private Qcow2Chain() {}

    /** [base, its backing file, ...], at most {@link #MAX_LAYERS} + 1 files, the base's path absolute and normalized. */
    public static List<Path> of(Path base) throws IOException {
        return upTo(base, MAX_LAYERS);
    }

    /**
     * [base, ..., its {@code deepest}-th backing file] (fewer where the chain ends): the walk stops at the layer needed, so
     * that the files below it (unreadable, or not files at all) do not matter. The base's path is made absolute and
     * normalized, as qemu-img and this walk name the files below it.
     */
    public static List<Path> upTo(Path base, int deepest) throws IOException {
        if (deepest < 0 || deepest > MAX_LAYERS) throw new IllegalArgumentException("layer: expected 0-" + MAX_LAYERS + ", actual " + deepest);
        List<Path> chain = new ArrayList<>();
        Path file = base.toAbsolutePath().normalize();
        while (file != null) {
            chain.add(file);
            if (chain.size() > deepest) break;
            file = backingOf(file);
        }
        return List.copyOf(chain);
    }

    /**
     * Every file QEMU opens for the qcow2 base {@code base}: the base and its whole backing chain, which a push carries to
     * another host. Unlike {@link #of}, a chain the walk cannot follow to its end is refused (an {@link IOException} naming
     * the file): a backing name QEMU reads as a protocol or JSON, one outside the file's first MiB, or more than
     * {@link #MAX_LAYERS} backing files.
     */
    public static List<Path> whole(Path base) throws IOException {
        List<Path> chain = new ArrayList<>();
        Path file = base.toAbsolutePath().normalize();
        while (file != null) {
            chain.add(file);
            Path below = backingOf(file);
            if (below == null && namesBacking(file)) {
                throw new IOException(file + ": expected a backing file name Thaw can follow (a plain file name inside the file's first "
                        + DiskIdentity.SAMPLE_BYTES + " bytes), actual another (a protocol, a JSON description, or one beyond them)");
            }
            if (below != null && chain.size() > MAX_LAYERS) { // MAX_LAYERS + 1 files already
                throw new IOException(base + ": expected a backing chain of at most " + MAX_LAYERS + " files below it, actual more: " + chain);
            }
            file = below;
        }
        return List.copyOf(chain);
    }

    /** raw or qcow2: what QEMU probes a backing file without a recorded format as (qcow2 by its magic). */
    public static String formatOf(Path file) throws IOException {
        try (FileChannel c = open(file)) {
            ByteBuffer magic = ByteBuffer.allocate(4);
            readFully(c, magic, 0);
            return magic.position() == 4 && magic.getInt(0) == MAGIC ? "qcow2" : "raw";
        }
    }

    /** Whether a qcow2 file's header names a backing file at all. */
    private static boolean namesBacking(Path file) throws IOException {
        try (FileChannel c = open(file)) {
            ByteBuffer header = ByteBuffer.allocate(16);
            readFully(c, header, 0);
            return header.position() == 16 && header.getInt(0) == MAGIC && header.getLong(8) != 0;
        }
    }

    /**
     * Opens a file of a chain for reading once it is a regular file or a block device (links followed, as QEMU follows them);
     * anything else (a FIFO, a socket, a character device, a directory) is refused, since opening a FIFO blocks until a
     * writer comes. (A file replaced by a FIFO between the check and the open is not caught.)
     */
    public static FileChannel open(Path file) throws IOException {
        String kind = kindOf(file);
        if (!kind.equals("a regular file") && !kind.equals("a block device")) {
            throw new IOException(file + ": expected a regular file or a block device, actual " + kind);
        }
        return FileChannel.open(file, StandardOpenOption.READ);
    }

    /** What kind of file {@code file} is (links followed), in words. */
    static String kindOf(Path file) throws IOException {
        int mode;
        try {
            mode = (Integer) java.nio.file.Files.getAttribute(file, "unix:mode");
        } catch (UnsupportedOperationException e) {
            return java.nio.file.Files.isRegularFile(file) ? "a regular file" : "not a regular file";
        }
        return switch (mode & 0170000) {
            case 0100000 -> "a regular file";
            case 0060000 -> "a block device";
            case 0020000 -> "a character device";
            case 0010000 -> "a FIFO";
            case 0140000 -> "a socket";
            case 0040000 -> "a directory";
            default -> String.format("a file of mode 0%o", mode);
        };
    }

    /**
     * The file {@code file}'s qcow2 header names as its backing file; null for none, for a file that is not qcow2, for a
     * non-file name and for a name outside the first {@link DiskIdentity#SAMPLE_BYTES} of the file.
     */
    static Path backingOf(Path file) throws IOException {
        try (FileChannel c = open(file)) {
            ByteBuffer header = ByteBuffer.allocate(20); // big-endian, as qcow2
            readFully(c, header, 0);
            if (header.position() < 20 || header.getInt(0) != MAGIC) return null;
            int version = header.getInt(4);
            if (version != 2 && version != 3) {
                throw new IOException(file + ": qcow2 version: expected 2 or 3, actual " + version);
            }
            long offset = header.getLong(8);
            long size = Integer.toUnsignedLong(header.getInt(16));
            if (offset == 0) return null;
            if (size == 0 || size > MAX_NAME_BYTES || offset < 20 || offset > c.size() - size) {
                throw new IOException(file + ": qcow2 backing file name: expected 1-" + MAX_NAME_BYTES + " bytes inside the file's "
                        + c.size() + ", actual " + size + " bytes at offset " + offset);
            }
            // Outside what the file's identity hashes, a changed name would leave the identity as it was: no layers below.
            if (offset + size > DiskIdentity.SAMPLE_BYTES) return null;
            ByteBuffer name = ByteBuffer.allocate((int) size);
            readFully(c, name, offset);
            return resolve(file, new String(name.array(), 0, name.position(), StandardCharsets.UTF_8));
        }
    }

    /** The backing file {@code name} written in {@code file}'s header, as QEMU opens it; null for a protocol or JSON name. */
    static Path resolve(Path file, String name) {
        int colon = name.indexOf(':');
        int slash = name.indexOf('/');
        if (name.isEmpty() || colon >= 0 && (slash < 0 || colon < slash) || name.indexOf('\0') >= 0) return null;
        Path named = Path.of(name);
        if (named.isAbsolute()) return named.normalize();
        Path dir = file.toAbsolutePath().getParent();
        return dir.resolve(named).normalize();
    }

    private static void readFully(FileChannel c, ByteBuffer into, long at) throws IOException {
        while (into.hasRemaining()) {
            if (c.read(into, at + into.position()) < 0) return;
        }
    }
}
