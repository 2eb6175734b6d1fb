package dev.thaw.image;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.UUID;

/**
 * The XXH3-64 of every non-zero 4 KiB block of a raw disk base (or of a qcow2 file's own data clusters, at their file
 * offsets), sorted by hash: a save looks each page up here to find
 * the pages the guest's disk already holds (a hit is then compared byte for byte with the base's block: a 64-bit hash
 * only proposes). One block per hash: a disk holding one content twice needs one of its places, and two different
 * contents sharing a hash (accidentally) lose only a reference, never correctness.
 *
 * <p>Cached file (framed, kind {@link FileKind#DISK_BLOCK_INDEX}, owner the UUID named from the base's identity key),
 * body little-endian: {@code u32 index version (1) | u32 0 | u64 base byte size | u64 count | count x (u64 XXH3-64 of
 * the block | u64 block number (its file offset / 4096))}, hashes strictly increasing, block numbers below the file's block count.
 */
public final class DiskBlockIndex {
    public static final int BLOCK_BYTES = 4096;
    static final int VERSION = 1;
    private static final int HEADER = 24;
    private static final int ENTRY = 16;
    private static final String CACHE_SUBDIRECTORY = "disk-blocks";

    private final long byteSize;
    private final long[] hashes;
    private final long[] blocks;

    private DiskBlockIndex(long byteSize, long[] hashes, long[] blocks) {
        this.byteSize = byteSize;
        this.hashes = hashes;
        this.blocks = blocks;
    }

    /** The hash a page and a block are indexed under. */
    public static long hash(byte[] data, int offset) {
        return Framing.xxh3(data, offset, BLOCK_BYTES);
    }

    /** The index of {@code byteSize} bytes of blocks whose hashes are {@code hashByBlock} ({@code zero[i]}: block i is all zero or holds no guest data, left out). */
    static DiskBlockIndex of(long byteSize, long[] hashByBlock, boolean[] zero) {
        record Entry(long hash, long block) {}
        List<Entry> entries = new ArrayList<>();
        for (int i = 0; i < hashByBlock.length; i++) {
            if (!zero[i]) entries.add(new Entry(hashByBlock[i], i));
        }
        // Lowest block first among equal hashes, then kept once: the index is the same whatever the order of reading.
        entries.sort(Comparator.comparingLong(Entry::hash).thenComparingLong(Entry::block));
        long[] h = new long[entries.size()];
        long[] b = new long[entries.size()];
        int n = 0;
        for (Entry e : entries) {
            if (n > 0 && h[n - 1] == e.hash()) continue;
            h[n] = e.hash();
            b[n++] = e.block();
        }
        return new DiskBlockIndex(byteSize, Arrays.copyOf(h, n), Arrays.copyOf(b, n));
    }

    /** Reads the raw base through {@code channel} from its start and hashes every 4 KiB block (a short last block is not indexed). */
    static DiskBlockIndex build(FileChannel channel) throws IOException {
        return build(channel, List.of(new Extent(0, channel.size())));
    }

    /**
     * A range of the file holding guest data: for a raw file the whole file, for a qcow2 file each run of its own
     * uncompressed data clusters ({@code qemu-img map}). Only its whole 4 KiB blocks at 4 KiB-aligned file offsets are indexed.
     */
    public record Extent(long fileOffset, long byteLength) {}

    /** Hashes every whole, aligned 4 KiB block of {@code extents} in the file read through {@code channel}; block numbers are file offsets / 4096. */
    static DiskBlockIndex build(FileChannel channel, List<Extent> extents) throws IOException {
        long size = channel.size();
        long count = size / BLOCK_BYTES;
        if (count > Integer.MAX_VALUE) throw new IOException("expected a base below 8 TiB, actual " + size + " bytes");
        long[] hashes = new long[(int) count];
        boolean[] skip = new boolean[(int) count];
        Arrays.fill(skip, true);
        ByteBuffer buffer = ByteBuffer.allocate(1 << 20);
        byte[] array = buffer.array();
        for (Extent e : extents) {
            long first = Math.ceilDiv(Math.max(0, e.fileOffset()), BLOCK_BYTES);
            long end = Math.min(count, Math.floorDiv(e.fileOffset() + e.byteLength(), BLOCK_BYTES));
            for (long block = first; block < end; ) {
                long at = block * BLOCK_BYTES;
                buffer.clear().limit((int) Math.min(buffer.capacity(), (end - block) * BLOCK_BYTES));
                while (buffer.hasRemaining()) {
                    int n = channel.read(buffer, at + buffer.position());
                    if (n < 0) throw new IOException("the base shrank while it was indexed: expected " + size + " bytes, actual " + (at + buffer.position()));
                }
                for (int off = 0; off < buffer.limit(); off += BLOCK_BYTES, block++) {
                    skip[(int) block] = isZero(array, off);
                    if (!skip[(int) block]) hashes[(int) block] = hash(array, off);
                }
            }
        }
        return of(size, hashes, skip);
    }

    private static boolean isZero(byte[] a, int offset) {
        return Arrays.mismatch(a, offset, offset + BLOCK_BYTES, ZEROS, 0, BLOCK_BYTES) < 0;
    }

    private static final byte[] ZEROS = new byte[BLOCK_BYTES];

    /** The block whose content hashes to {@code hash}, or -1. */
    public long find(long hash) {
        int i = Arrays.binarySearch(hashes, hash);
        return i < 0 ? -1 : blocks[i];
    }

    public long byteSize() {
        return byteSize;
    }

    /** Non-zero blocks indexed (distinct hashes). */
    public int entryCount() {
        return hashes.length;
    }

    byte[] encode() {
        ByteBuffer out = ByteBuffer.allocate(HEADER + hashes.length * ENTRY).order(ByteOrder.LITTLE_ENDIAN);
        out.putInt(VERSION).putInt(0).putLong(byteSize).putLong(hashes.length);
        for (int i = 0; i < hashes.length; i++) out.putLong(hashes[i]).putLong(blocks[i]);
        return out.array();
    }

    /** Decodes a cached body; {@code path} and offsets (from the body's start after the frame) name what is wrong. */
    static DiskBlockIndex decode(Path path, byte[] body) {
        ByteBuffer in = ByteBuffer.wrap(body).order(ByteOrder.LITTLE_ENDIAN);
        if (body.length < HEADER) throw corrupt(path, 0, "expected a " + HEADER + "-byte header, actual " + body.length + " bytes");
        int version = in.getInt();
        if (version != VERSION) throw corrupt(path, 0, "index version: expected " + VERSION + ", actual " + version);
        in.getInt();
        long size = in.getLong();
        long count = in.getLong();
        if (size < 0 || count < 0 || count > size / BLOCK_BYTES || in.remaining() != count * ENTRY) {
            throw corrupt(path, 8, "expected a size >= 0 and count <= its " + Math.max(0, size / BLOCK_BYTES) + " blocks with " + count * ENTRY
                    + " bytes of entries, actual size " + size + ", count " + count + ", " + in.remaining() + " bytes of entries");
        }
        long[] h = new long[(int) count];
        long[] b = new long[(int) count];
        for (int i = 0; i < count; i++) {
            h[i] = in.getLong();
            b[i] = in.getLong();
            if (i > 0 && Long.compare(h[i - 1], h[i]) >= 0 || b[i] < 0 || b[i] >= size / BLOCK_BYTES) {
                throw corrupt(path, HEADER + (long) i * ENTRY, "entry " + i + ": expected a hash above the previous one and a block below "
                        + size / BLOCK_BYTES + ", actual hash " + Long.toHexString(h[i]) + ", block " + b[i]);
            }
        }
        return new DiskBlockIndex(size, h, b);
    }

    private static ImageException.Corrupt corrupt(Path path, long bodyOffset, String detail) {
        return new ImageException.Corrupt(path, Framing.HEADER_BYTES + bodyOffset, "disk block index " + detail);
    }

    /** An index and where it came from. */
    public record Loaded(DiskBlockIndex index, boolean fromCache, long nanos, Path cacheFile) {}

    /**
     * The index of the raw base {@code file} whose identity is {@code identity}: read from {@code cacheDirectory} when a
     * previous save cached it for that identity, else built (reading the whole base) and cached there, written atomically.
     * A damaged cache file is rebuilt: it is only a cache, and a hash that points at a wrong block only fails a byte
     * comparison.
     */
    public static Loaded forBase(Path file, DiskIdentity identity, Path cacheDirectory) throws IOException {
        return forBase(file, identity, cacheDirectory, null);
    }

    /** What a qcow2 layer's index is built from: its own data clusters' file ranges (called only when the index is not cached). */
    public interface DataExtents {
        List<Extent> of(Path file) throws IOException;
    }

    /**
     * The index of {@code file} as {@link #forBase(Path, DiskIdentity, Path)}, of a raw file ({@code qcow2Extents} null: every
     * block) or of a qcow2 file (only the blocks of the data clusters {@code qcow2Extents} gives, at their file offsets: cached
     * under another key, since the same file indexed raw would give another index).
     */
    public static Loaded forBase(Path file, DiskIdentity identity, Path cacheDirectory, DataExtents qcow2Extents) throws IOException {
        long started = System.nanoTime();
        String key = keyOf(identity, qcow2Extents != null);
        UUID owner = UUID.nameUUIDFromBytes(key.getBytes(java.nio.charset.StandardCharsets.UTF_8));
        Path dir = cacheDirectory.resolve(CACHE_SUBDIRECTORY);
        Path cached = dir.resolve(key + ".thaw");
        if (Files.isRegularFile(cached)) {
            try {
                DiskBlockIndex index = decode(cached, Framing.readWholeBody(cached, FileKind.DISK_BLOCK_INDEX, owner));
                if (index.byteSize == identity.byteSize()) return new Loaded(index, true, System.nanoTime() - started, cached);
            } catch (ImageException e) {
                // rebuilt below
            }
        }
        DiskBlockIndex index;
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            index = qcow2Extents == null ? build(channel) : build(channel, qcow2Extents.of(file));
        }
        if (index.byteSize != identity.byteSize()) {
            throw new IOException(file + ": expected " + identity.byteSize() + " bytes (its identity), actual " + index.byteSize + " when indexed");
        }
        dev.thaw.util.OwnerOnly.createDirectories(dir);
        try (FramedWriter out = new FramedWriter(cached, FileKind.DISK_BLOCK_INDEX, owner)) {
            out.write(index.encode());
            out.finish();
        }
        return new Loaded(index, false, System.nanoTime() - started, cached);
    }

    /** The cache key of a base: its identity, hashed (the cache file's name), with the index version. */
    static String keyOf(DiskIdentity identity, boolean qcow2) {
        return identity.cacheKey((qcow2 ? "qcow2 data clusters\n" : "") + "v" + VERSION + "\n");
    }
}
