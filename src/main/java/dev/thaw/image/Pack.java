package dev.thaw.image;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;

/**
 * A pack file of a content store: immutable once sealed. Layout (little-endian):
 *
 * <pre>
 * frame header (48)
 * extent*        header (32): "XTNT", u8 codec, u8 0, u16 page count, u32 stored bytes, u32 0,
 *                             u64 XXH3 of payload, u64 XXH3 of header bytes 0..24
 *                payload (stored bytes): page count x 4096 bytes, compressed per codec
 * index          extent records (32 each): u64 offset, u32 stored bytes, u8 codec, u8 0, u16 pages, u64 checksum, u64 0
 *                page records (40 each):   SHA-256 (32, big-endian words), u32 extent number, u16 slot, u16 0
 * trailer (24)   u64 index offset, u32 extent count, u32 page count, u64 XXH3 of the index
 * frame footer (32)
 * </pre>
 *
 * The index lets later saves find content already stored (dedup across images) and lets
 * {@code --verify} check every page's SHA-256 after decompression.
 */
final class Pack {
    static final int EXTENT_MAGIC = 0x544E5458; // "XTNT" little-endian
    static final int EXTENT_RECORD_BYTES = 32;
    static final int PAGE_RECORD_BYTES = 40;
    static final int TRAILER_BYTES = 24;
    static final int PAGE_BYTES = 4096;

    private Pack() {}

    static String fileName(UUID packId) {
        return "pack-" + packId + ".thaw";
    }

    /** One page of the index: its digest, and where it is. */
    record IndexedPage(PageDigest digest, ExtentInfo extent, int slot) {}

    /** Appends extents, then writes the index and seals the file. Single-threaded. */
    static final class Writer implements AutoCloseable {
        private final UUID id = UUID.randomUUID();
        private final FramedWriter out;
        private final List<ExtentInfo> extents = new ArrayList<>();
        private final List<PageDigest> digests = new ArrayList<>();
        private final List<int[]> pageLocations = new ArrayList<>(); // {extent number, slot}
        private long payloadBytes;

        Writer(Path storeDir) {
            this.out = new FramedWriter(storeDir.resolve(fileName(id)), FileKind.PACK, id);
        }

        UUID id() {
            return id;
        }

        int extentCount() {
            return extents.size();
        }

        long payloadBytes() {
            return payloadBytes;
        }

        /** Stores {@code pageCount} pages from {@code raw}; {@code stored} is the payload as the codec made it. */
        ExtentInfo append(byte[] raw, int pageCount, PageDigest[] pageDigests, Codec codec, int zstdLevel) {
            int rawBytes = pageCount * PAGE_BYTES;
            byte[] compressed = codec.compress(raw, rawBytes, zstdLevel);
            Codec used = compressed == null ? Codec.NONE : codec;
            byte[] payload = compressed == null ? raw : compressed;
            int payloadLength = compressed == null ? rawBytes : compressed.length;
            long checksum = Framing.xxh3(payload, 0, payloadLength);
            ByteBuffer h = Framing.le(ExtentInfo.EXTENT_HEADER_BYTES);
            h.putInt(EXTENT_MAGIC).put((byte) used.code()).put((byte) 0).putShort((short) pageCount).putInt(payloadLength)
                    .putInt(0).putLong(checksum);
            h.putLong(Framing.xxh3(h.array(), 0, 24));
            ExtentInfo info = new ExtentInfo(id, out.position(), payloadLength, used, pageCount, checksum);
            out.write(h.array());
            out.write(payload, 0, payloadLength);
            int number = extents.size();
            extents.add(info);
            for (int slot = 0; slot < pageCount; slot++) {
                digests.add(pageDigests[slot]);
                pageLocations.add(new int[] {number, slot});
            }
            payloadBytes += payloadLength;
            return info;
        }

        FramedWriter.Written seal() {
            long indexOffset = out.position();
            var hash = Framing.newHash();
            ByteBuffer record = Framing.le(PAGE_RECORD_BYTES);
            for (ExtentInfo e : extents) {
                record.clear();
                record.putLong(e.offset()).putInt(e.storedBytes()).put((byte) e.codec().code()).put((byte) 0)
                        .putShort((short) e.pageCount()).putLong(e.checksum()).putLong(0);
                hash.putBytes(record.array(), 0, EXTENT_RECORD_BYTES);
                out.write(record.array(), 0, EXTENT_RECORD_BYTES);
            }
            for (int i = 0; i < digests.size(); i++) {
                record.clear();
                digests.get(i).writeTo(record);
                record.putInt(pageLocations.get(i)[0]).putShort((short) pageLocations.get(i)[1]).putShort((short) 0);
                hash.putBytes(record.array(), 0, PAGE_RECORD_BYTES);
                out.write(record.array(), 0, PAGE_RECORD_BYTES);
            }
            ByteBuffer trailer = Framing.le(TRAILER_BYTES);
            trailer.putLong(indexOffset).putInt(extents.size()).putInt(digests.size()).putLong(hash.getAsLong());
            out.write(trailer.array());
            return out.finish();
        }

        @Override
        public void close() {
            out.close();
        }
    }

    /** Per reading thread: the direct buffer extents are read into, and a heap copy to check and decompress from. */
    private static final ThreadLocal<ByteBuffer> DIRECT_SCRATCH = ThreadLocal.withInitial(() -> ByteBuffer.allocateDirect(64 << 10));
    private static final ThreadLocal<byte[]> HEAP_SCRATCH = ThreadLocal.withInitial(() -> new byte[64 << 10]);

    private static ByteBuffer scratch(int length) {
        ByteBuffer b = DIRECT_SCRATCH.get();
        if (b.capacity() < length) {
            b = ByteBuffer.allocateDirect(Math.max(length, b.capacity() * 2));
            DIRECT_SCRATCH.set(b);
        }
        return b.clear().limit(length);
    }

    private static byte[] payloadScratch(int length) {
        byte[] a = HEAP_SCRATCH.get();
        if (a.length < length) {
            a = new byte[Math.max(length, a.length * 2)];
            HEAP_SCRATCH.set(a);
        }
        return a;
    }

    /** Reads extents by random access; thread-safe (positional reads only, per-thread buffers). */
    static final class Reader implements AutoCloseable {
        private final Path path;
        private final FileChannel channel;
        private final Framing.Frame frame;
        private final UUID id;
        private final PackBytes bytes;

        Reader(Path path, UUID expectedId) {
            this(path, expectedId, PackBytes.LOCAL);
        }

        /** @param bytes asked for each extent's bytes before they are read (the frame and index must be local already) */
        Reader(Path path, UUID expectedId, PackBytes bytes) {
            this.path = path;
            this.id = expectedId;
            this.bytes = bytes;
            try {
                this.channel = FileChannel.open(path, StandardOpenOption.READ);
            } catch (IOException e) {
                throw new ImageException.Missing(path, "cannot be opened: " + e, e);
            }
            try {
                this.frame = Framing.readFrame(path, channel, FileKind.PACK, expectedId);
            } catch (IOException e) {
                close();
                throw new ImageException.Missing(path, "cannot be read: " + e, e);
            } catch (RuntimeException e) {
                close();
                throw e;
            }
        }

        Path path() {
            return path;
        }

        Framing.Frame frame() {
            return frame;
        }

        /** Reads, checks and decompresses one extent into {@code raw} (at least pageCount x 4096 bytes). */
        void readExtent(ExtentInfo e, byte[] raw) {
            long end = Framing.HEADER_BYTES + frame.bodyBytes();
            if (e.offset() < Framing.HEADER_BYTES || e.offset() + ExtentInfo.EXTENT_HEADER_BYTES + e.storedBytes() > end) {
                throw new ImageException.Corrupt(path, e.offset(), "extent of " + e.storedBytes() + " bytes: expected inside the"
                        + " body (" + Framing.HEADER_BYTES + ".." + end + ")");
            }
            int length = ExtentInfo.EXTENT_HEADER_BYTES + e.storedBytes();
            bytes.require(id, e.offset(), length);
            // One positional read into this thread's direct buffer: a read into a heap buffer makes the JDK copy through a
            // temporary direct buffer of its own, which cost 24-34 us per 64 KiB extent here against 9 us (demand-fault path).
            ByteBuffer b = scratch(length);
            try {
                while (b.hasRemaining()) {
                    if (channel.read(b, e.offset() + b.position()) < 0) break;
                }
            } catch (java.nio.channels.ClosedChannelException ex) {
                // Not damage: the image was closed, or a reading thread was interrupted (which closes a FileChannel).
                throw new ImageException.Missing(path, "cannot be read at offset " + e.offset() + ": its channel was closed ("
                        + ex.getClass().getSimpleName() + ")", ex);
            } catch (IOException ex) {
                throw new ImageException.Corrupt(path, e.offset(), "extent read failed: " + ex, ex);
            }
            if (b.hasRemaining()) {
                throw new ImageException.Corrupt(path, e.offset(), "extent read: expected " + length + " bytes, actual " + b.position());
            }
            b.order(java.nio.ByteOrder.LITTLE_ENDIAN);
            byte[] header = new byte[ExtentInfo.EXTENT_HEADER_BYTES];
            b.get(0, header);
            long headerSum = Framing.xxh3(header, 0, 24);
            if (b.getInt(0) != EXTENT_MAGIC || headerSum != b.getLong(24)) {
                throw new ImageException.Corrupt(path, e.offset(), String.format("extent header: expected magic 'XTNT' and header"
                        + " checksum 0x%016x, actual magic 0x%08x and checksum 0x%016x", b.getLong(24), b.getInt(0), headerSum));
            }
            Codec codec = Codec.of(b.get(4) & 0xFF);
            int pages = b.getShort(6) & 0xFFFF;
            int stored = b.getInt(8);
            long checksum = b.getLong(16);
            if (codec != e.codec() || pages != e.pageCount() || stored != e.storedBytes() || checksum != e.checksum()) {
                throw new ImageException.Corrupt(path, e.offset(), "extent header: expected " + e.codec() + ", " + e.pageCount()
                        + " pages, " + e.storedBytes() + " bytes, checksum " + Long.toHexString(e.checksum()) + " (from the extent"
                        + " table), actual " + codec + ", " + pages + " pages, " + stored + " bytes, checksum " + Long.toHexString(checksum));
            }
            // A stored (uncompressed) payload goes straight into raw: one copy, checked in place.
            boolean direct = codec == Codec.NONE && stored == pages * PAGE_BYTES;
            byte[] payload = direct ? raw : payloadScratch(stored);
            b.get(ExtentInfo.EXTENT_HEADER_BYTES, payload, 0, stored);
            long actual = Framing.xxh3(payload, 0, stored);
            if (actual != checksum) {
                throw new ImageException.Corrupt(path, e.offset() + ExtentInfo.EXTENT_HEADER_BYTES, String.format(
                        "extent payload checksum: expected 0x%016x, actual 0x%016x", checksum, actual));
            }
            if (direct) return;
            try {
                codec.decompress(payload, 0, stored, raw, pages * PAGE_BYTES);
            } catch (IllegalArgumentException ex) {
                throw new ImageException.Corrupt(path, e.offset(), "extent does not decompress: " + ex.getMessage(), ex);
            }
        }

        /** Reads and checks the index (extents and page digests). */
        List<IndexedPage> readIndex() {
            try {
                long trailerAt = Framing.HEADER_BYTES + frame.bodyBytes() - TRAILER_BYTES;
                if (trailerAt < Framing.HEADER_BYTES) {
                    throw new ImageException.Corrupt(path, trailerAt, "expected a pack trailer, actual a body of " + frame.bodyBytes() + " bytes");
                }
                ByteBuffer t = Framing.readAt(channel, trailerAt, TRAILER_BYTES);
                long indexOffset = t.getLong(0);
                int extentCount = t.getInt(8);
                int pageCount = t.getInt(12);
                long expectedIndexBytes = (long) extentCount * EXTENT_RECORD_BYTES + (long) pageCount * PAGE_RECORD_BYTES;
                if (extentCount < 0 || pageCount < 0 || indexOffset < Framing.HEADER_BYTES
                        || indexOffset + expectedIndexBytes != trailerAt) {
                    throw new ImageException.Corrupt(path, trailerAt, "pack trailer: expected an index of " + extentCount
                            + " extents and " + pageCount + " pages ending at " + trailerAt + ", actual index offset " + indexOffset);
                }
                ByteBuffer index = Framing.readAt(channel, indexOffset, Math.toIntExact(expectedIndexBytes));
                long sum = Framing.xxh3(index.array(), 0, index.capacity());
                if (sum != t.getLong(16)) {
                    throw new ImageException.Corrupt(path, indexOffset, String.format("pack index checksum: expected 0x%016x, actual 0x%016x",
                            t.getLong(16), sum));
                }
                UUID id = frame.owner();
                List<ExtentInfo> extents = new ArrayList<>(extentCount);
                for (int i = 0; i < extentCount; i++) {
                    int at = i * EXTENT_RECORD_BYTES;
                    extents.add(new ExtentInfo(id, index.getLong(at), index.getInt(at + 8), Codec.of(index.get(at + 12) & 0xFF),
                            index.getShort(at + 14) & 0xFFFF, index.getLong(at + 16)));
                }
                List<IndexedPage> pages = new ArrayList<>(pageCount);
                int base = extentCount * EXTENT_RECORD_BYTES;
                for (int i = 0; i < pageCount; i++) {
                    int at = base + i * PAGE_RECORD_BYTES;
                    PageDigest digest = PageDigest.fromBytes(index.array(), at);
                    int extent = index.getInt(at + 32);
                    int slot = index.getShort(at + 36) & 0xFFFF;
                    if (extent < 0 || extent >= extentCount || slot >= extents.get(extent).pageCount()) {
                        throw new ImageException.Corrupt(path, indexOffset + at, "pack index page " + i + ": expected extent < "
                                + extentCount + " and a slot inside it, actual extent " + extent + " slot " + slot);
                    }
                    pages.add(new IndexedPage(digest, extents.get(extent), slot));
                }
                return pages;
            } catch (IOException e) {
                throw new ImageException.Corrupt(path, 0, "pack index read failed: " + e.getMessage(), e);
            }
        }

        /**
         * Reads each of {@code extents} that lives in this pack and checks every page's SHA-256 against the index;
         * returns the number of page digests checked.
         */
        long verifyExtents(Iterable<ExtentInfo> extents) {
            java.util.Map<Long, List<IndexedPage>> byExtent = new java.util.HashMap<>();
            for (IndexedPage p : readIndex()) {
                byExtent.computeIfAbsent(p.extent().offset(), k -> new ArrayList<>()).add(p);
            }
            long checked = 0;
            for (ExtentInfo e : extents) {
                if (!e.packId().equals(frame.owner())) continue;
                byte[] raw = new byte[e.pageCount() * PAGE_BYTES];
                readExtent(e, raw);
                for (IndexedPage p : byExtent.getOrDefault(e.offset(), List.of())) {
                    PageDigest actual = PageDigest.of(raw, p.slot() * PAGE_BYTES, PAGE_BYTES);
                    if (!actual.equals(p.digest())) {
                        throw new ImageException.Corrupt(path, e.offset(), "page in slot " + p.slot() + ": expected SHA-256 "
                                + p.digest() + " (pack index), actual " + actual);
                    }
                    checked++;
                }
            }
            return checked;
        }

        void verifyFileChecksum() {
            bytes.require(id, 0, frame.fileBytes());
            try {
                Framing.verifyFileChecksum(frame, channel);
            } catch (IOException e) {
                throw new ImageException.Corrupt(path, 0, "read failed: " + e.getMessage(), e);
            }
        }

        @Override
        public void close() {
            try {
                channel.close();
            } catch (IOException e) {
                // read-only
            }
        }
    }
}
