package dev.thaw.image;

import dev.thaw.estimate.Estimator;
import dev.thaw.estimate.PageRef;
import dev.thaw.estimate.WorkingSet;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;

/**
 * The optional working-set section of an image ({@code workingset-ID.thaw}, kind {@link FileKind#WORKING_SET}):
 * the estimate (estimator, queue, size) and a copy of the queue's non-zero pages in queue order in
 * a pack of their own, so that a restore reads its prefetch sequentially (HotRestore's sequential
 * loading). Body, little-endian:
 *
 * <pre>
 * u32 section version (1)
 * u8  estimator code (dev.thaw.estimate.Estimator; 0 invalid), u8 0, u16 0
 * u64 estimated working-set size in pages
 * u32 description length, then that many bytes of UTF-8
 * u32 entry count, then per entry (24 bytes):
 *     u32 block, u32 page, i64 first-access nanoseconds (-1 unknown),
 *     i64 location: 0 for a zero page (not copied), else (extent + 1) &lt;&lt; 8 | slot in this section's extents
 * u32 extent count; if non-zero: u64 + u64 pack id (most, least significant), then per extent (32 bytes):
 *     u64 offset, u32 stored bytes, u8 codec, u8 0, u16 pages, u64 payload checksum, u64 0
 * </pre>
 */
public record WorkingSetSection(WorkingSet workingSet, long[] locations, UUID packId, List<ExtentInfo> extents) {
    public static final int VERSION = 1;
    static final String FILE_PREFIX = "workingset-";

    byte[] encode() {
        byte[] description = workingSet.description().getBytes(StandardCharsets.UTF_8);
        List<WorkingSet.Entry> entries = workingSet.entries();
        ByteBuffer b = Framing.le(4 + 4 + 8 + 4 + description.length + 4 + entries.size() * 24 + 4 + 16 + extents.size() * 32);
        b.putInt(VERSION).put((byte) workingSet.estimator().code()).put((byte) 0).putShort((short) 0);
        b.putLong(workingSet.estimatedPageCount());
        b.putInt(description.length).put(description);
        b.putInt(entries.size());
        for (int i = 0; i < entries.size(); i++) {
            WorkingSet.Entry e = entries.get(i);
            b.putInt(e.page().block()).putInt(e.page().page()).putLong(e.firstAccessNanos()).putLong(locations[i]);
        }
        b.putInt(extents.size());
        if (!extents.isEmpty()) {
            b.putLong(packId.getMostSignificantBits()).putLong(packId.getLeastSignificantBits());
            for (ExtentInfo x : extents) {
                b.putLong(x.offset()).putInt(x.storedBytes()).put((byte) x.codec().code()).put((byte) 0).putShort((short) x.pageCount())
                        .putLong(x.checksum()).putLong(0);
            }
        }
        byte[] out = new byte[b.position()];
        b.flip().get(out);
        return out;
    }

    /** Decodes and checks a section body against the image's blocks; {@code path} names the file in errors. */
    static WorkingSetSection decode(Path path, byte[] body, int[] blockPageCounts) {
        ByteBuffer b = ByteBuffer.wrap(body).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        try {
            int version = b.getInt();
            if (version != VERSION) {
                throw new ImageException.Corrupt(path, Framing.HEADER_BYTES, "working-set section version: expected " + VERSION
                        + ", actual " + version);
            }
            int code = b.get() & 0xFF;
            Estimator estimator = Estimator.of(code);
            if (estimator == Estimator.INVALID) {
                throw new ImageException.Corrupt(path, Framing.HEADER_BYTES + 4, "estimator: expected a code 1-5, actual " + code);
            }
            b.get();
            b.getShort();
            long estimated = b.getLong();
            int descriptionLength = b.getInt();
            if (descriptionLength < 0 || descriptionLength > b.remaining()) {
                throw corrupt(path, b, "description length: expected 0.." + b.remaining() + ", actual " + descriptionLength);
            }
            byte[] description = new byte[descriptionLength];
            b.get(description);
            int count = b.getInt();
            if (count < 0 || (long) count * 24 > b.remaining()) {
                throw corrupt(path, b, "entry count: expected at most " + b.remaining() / 24 + ", actual " + count);
            }
            List<WorkingSet.Entry> entries = new ArrayList<>(count);
            long[] locations = new long[count];
            for (int i = 0; i < count; i++) {
                int block = b.getInt();
                int page = b.getInt();
                if (block < 0 || block >= blockPageCounts.length || page < 0 || page >= blockPageCounts[block]) {
                    throw corrupt(path, b, "entry " + i + ": expected a page of the image's blocks, actual block " + block + " page " + page);
                }
                entries.add(new WorkingSet.Entry(new PageRef(block, page), b.getLong()));
                locations[i] = b.getLong();
            }
            int extentCount = b.getInt();
            if (extentCount < 0 || (extentCount > 0 && (long) extentCount * 32 + 16 != b.remaining()) || (extentCount == 0 && b.hasRemaining())) {
                throw corrupt(path, b, "extents: expected " + extentCount + " records and the end of the section, actual "
                        + b.remaining() + " bytes");
            }
            UUID pack = null;
            List<ExtentInfo> extents = new ArrayList<>(extentCount);
            if (extentCount > 0) {
                pack = new UUID(b.getLong(), b.getLong());
                for (int i = 0; i < extentCount; i++) {
                    ExtentInfo e = ExtentInfo.read(b, pack);
                    b.getLong();
                    if (!e.plausible()) {
                        throw corrupt(path, b, "extent " + i + ": expected a valid codec, 1-256 pages, actual " + e.codec() + ", "
                                + e.pageCount() + " pages");
                    }
                    extents.add(e);
                }
            }
            for (int i = 0; i < count; i++) {
                long loc = locations[i];
                if (loc != PageMap.ZERO && (loc < 0 || PageMap.extentOf(loc) < 0 || PageMap.extentOf(loc) >= extentCount || PageMap.slotOf(loc) >= extents.get(PageMap.extentOf(loc)).pageCount())) {
                    throw new ImageException.Corrupt(path, Framing.HEADER_BYTES, String.format(
                            "entry %d: expected a location in %d extents, actual 0x%016x", i, extentCount, loc));
                }
            }
            WorkingSet ws;
            try {
                ws = new WorkingSet(estimator, entries, estimated, new String(description, StandardCharsets.UTF_8));
            } catch (IllegalArgumentException e) {
                throw new ImageException.Corrupt(path, Framing.HEADER_BYTES, "working set: " + e.getMessage());
            }
            return new WorkingSetSection(ws, locations, pack, List.copyOf(extents));
        } catch (java.nio.BufferUnderflowException e) {
            throw new ImageException.Corrupt(path, Framing.HEADER_BYTES + b.position(), "working-set section truncated", e);
        }
    }

    private static ImageException.Corrupt corrupt(Path path, ByteBuffer b, String what) {
        return new ImageException.Corrupt(path, Framing.HEADER_BYTES + b.position(), what);
    }
}
