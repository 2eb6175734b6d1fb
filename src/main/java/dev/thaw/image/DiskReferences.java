package dev.thaw.image;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The disk-reference table ({@code diskrefs.thaw}, format version 3): the page contents an image takes from its disk
 * bases instead of storing them. Body little-endian: {@code u32 count}, then count records of 48 bytes: {@code u16 disk
 * number + 1 (index into the manifest's disks; 0 is invalid) | u16 layer | u32 0 | u64 byte offset in that file (a
 * multiple of 4096) | SHA-256 of the page's 4096 bytes (32)}. A page-map entry with bit 63 set names a record by its index.
 * Layer 0 is the base file itself (a raw base: the offset is the guest's; a qcow2 base: the file offset of the cluster
 * holding the guest's block); layer n >= 1 (format version 4 only) is the n-th backing file of the base's qcow2 chain, as
 * its headers name them ({@link Qcow2Chain}), the offset again a file offset.
 */
final class DiskReferences {
    static final int RECORD_BYTES = 48;

    /** One referenced block: the content of the 4 KiB at {@code byteOffset} of disk {@code disk}, whose SHA-256 is {@code digest}. */
    record Ref(int disk, int layer, long byteOffset, PageDigest digest) {
        Ref(int disk, long byteOffset, PageDigest digest) {
            this(disk, 0, byteOffset, digest);
        }
    }

    private DiskReferences() {}

    static byte[] encode(List<Ref> refs) {
        ByteBuffer out = ByteBuffer.allocate(4 + refs.size() * RECORD_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        out.putInt(refs.size());
        for (Ref r : refs) {
            out.putShort((short) (r.disk() + 1)).putShort((short) r.layer()).putInt(0).putLong(r.byteOffset());
            r.digest().writeTo(out);
        }
        return out.array();
    }

    /** Decodes a version 3 table: every record in a base file itself (layer 0). */
    static List<Ref> decode(Path path, byte[] body, List<Long> diskByteSizes) {
        return decode(path, body, diskByteSizes, 0);
    }

    /**
     * Decodes the body of {@code path}; every record must name one of the disks (the byte sizes of their base files), a
     * layer up to {@code maxLayer} (0 in version 3, {@link Qcow2Chain#MAX_LAYERS} in version 4) and a whole aligned block
     * in it (inside the base file for layer 0; a backing file's size is known only when it is read).
     */
    static List<Ref> decode(Path path, byte[] body, List<Long> diskByteSizes, int maxLayer) {
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
            int layer = Short.toUnsignedInt(in.getShort());
            int reserved = in.getInt();
            long offset = in.getLong();
            in.get(digest);
            if (disk < 0 || disk >= diskByteSizes.size() || layer > maxLayer || reserved != 0 || offset < 0 || offset % DiskBlockIndex.BLOCK_BYTES != 0
                    || layer == 0 && offset > diskByteSizes.get(disk) - DiskBlockIndex.BLOCK_BYTES) {
                throw corrupt(path, at, "reference " + i + ": expected a disk number 1-" + diskByteSizes.size() + ", a layer 0-" + maxLayer
                        + ", a zero reserved field and a 4 KiB-aligned block inside that file, actual disk number " + (disk + 1)
                        + ", layer " + layer + ", reserved " + reserved + ", offset " + offset);
            }
            refs.add(new Ref(disk, layer, offset, PageDigest.fromBytes(digest, 0)));
        }
        return List.copyOf(refs);
    }

    private static ImageException.Corrupt corrupt(Path path, long bodyOffset, String detail) {
        return new ImageException.Corrupt(path, Framing.HEADER_BYTES + bodyOffset, "disk references: " + detail);
    }
}
