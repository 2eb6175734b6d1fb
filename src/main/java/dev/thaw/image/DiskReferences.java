package dev.thaw.image;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The disk-reference table ({@code diskrefs.thaw}, format version 3): the page contents an image takes from its disk
 * bases instead of storing them. Body little-endian: {@code u32 count}, then count records of 48 bytes: {@code u16 disk
 * number + 1 (index into the manifest's disks; 0 is invalid) | u16 0 | u32 0 | u64 byte offset in the base (a multiple
 * of 4096) | SHA-256 of the page's 4096 bytes (32)}. A page-map entry with bit 63 set names a record by its index.
 */
final class DiskReferences {
    static final int RECORD_BYTES = 48;

    /** One referenced block: the content of the 4 KiB at {@code byteOffset} of disk {@code disk}, whose SHA-256 is {@code digest}. */
    record Ref(int disk, long byteOffset, PageDigest digest) {}

    private DiskReferences() {}

    static byte[] encode(List<Ref> refs) {
        ByteBuffer out = ByteBuffer.allocate(4 + refs.size() * RECORD_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        out.putInt(refs.size());
        for (Ref r : refs) {
            out.putShort((short) (r.disk() + 1)).putShort((short) 0).putInt(0).putLong(r.byteOffset());
            r.digest().writeTo(out);
        }
        return out.array();
    }

    /** Decodes the body of {@code path}; every record must name one of {@code disks} (their virtual sizes) and a whole block in it. */
    static List<Ref> decode(Path path, byte[] body, List<Long> diskByteSizes) {
        ByteBuffer in = ByteBuffer.wrap(body).order(ByteOrder.LITTLE_ENDIAN);
        if (body.length < 4) throw corrupt(path, 0, "truncated: expected the reference count, actual a body of " + body.length + " bytes");
        int count = in.getInt();
        if (count < 0 || in.remaining() != (long) count * RECORD_BYTES) {
            throw corrupt(path, 0, "expected " + count + " records of " + RECORD_BYTES + " bytes, actual " + in.remaining() + " bytes of records");
        }
        List<Ref> refs = new ArrayList<>(count);
        byte[] digest = new byte[PageDigest.BYTES];
        for (int i = 0; i < count; i++) {
            long at = in.position();
            int disk = Short.toUnsignedInt(in.getShort()) - 1;
            int reserved = Short.toUnsignedInt(in.getShort()) | in.getInt();
            long offset = in.getLong();
            in.get(digest);
            if (disk < 0 || disk >= diskByteSizes.size() || reserved != 0 || offset < 0 || offset % DiskBlockIndex.BLOCK_BYTES != 0
                    || offset > diskByteSizes.get(disk) - DiskBlockIndex.BLOCK_BYTES) {
                throw corrupt(path, at, "reference " + i + ": expected a disk number 1-" + diskByteSizes.size()
                        + ", zero reserved fields and a 4 KiB-aligned block inside that disk, actual disk number " + (disk + 1)
                        + ", reserved " + reserved + ", offset " + offset);
            }
            refs.add(new Ref(disk, offset, PageDigest.fromBytes(digest, 0)));
        }
        return List.copyOf(refs);
    }

    private static ImageException.Corrupt corrupt(Path path, long bodyOffset, String detail) {
        return new ImageException.Corrupt(path, Framing.HEADER_BYTES + bodyOffset, "disk references: " + detail);
    }
}
