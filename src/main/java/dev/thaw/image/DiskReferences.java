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
 * its headers name them ({@link Qcow2Chain}), the offset again a file offset. Version 4 then adds the identity each backing
 * file a record names had at the save: {@code u32 count}, then count records of 64 bytes, ascending by disk then layer,
 * exactly one per (disk, layer >= 1) the records name: {@code u16 disk number + 1 | u16 layer | u32 0 | u64 byte size |
 * i64 modification time, seconds since the epoch | u32 its nanoseconds | u32 0 | SHA-256 over the file's first and last
 * MiB (32)} ({@link DiskIdentity}), so that a restore checks every backing file before QEMU starts.
 */
final class DiskReferences {
    static final int RECORD_BYTES = 48;

    /** One referenced block: the content of the 4 KiB at {@code byteOffset} of disk {@code disk}, whose SHA-256 is {@code digest}. */
    record Ref(int disk, int layer, long byteOffset, PageDigest digest) {
        Ref(int disk, long byteOffset, PageDigest digest) {
            this(disk, 0, byteOffset, digest);
        }
    }

    static final int LAYER_RECORD_BYTES = 64;

    /** The identity a backing file (layer 1 or deeper of disk {@code disk}'s chain) had at the save (format version 4). */
    public record LayerIdentity(int disk, int layer, DiskIdentity identity) {}

    /** A decoded table: its references and (version 4) the identity of each backing file they name, else empty. */
    record Table(List<Ref> refs, List<LayerIdentity> layers) {}

    private DiskReferences() {}

    /** A version 3 table: every record in a base file itself. */
    static byte[] encode(List<Ref> refs) {
        return encode(refs, null);
    }

    /** A table; with {@code layers} (version 4, ascending by disk and layer) followed by those identities. */
    static byte[] encode(List<Ref> refs, List<LayerIdentity> layers) {
        int size = 4 + refs.size() * RECORD_BYTES + (layers == null ? 0 : 4 + layers.size() * LAYER_RECORD_BYTES);
        ByteBuffer out = ByteBuffer.allocate(size).order(ByteOrder.LITTLE_ENDIAN);
        out.putInt(refs.size());
        for (Ref r : refs) {
            out.putShort((short) (r.disk() + 1)).putShort((short) r.layer()).putInt(0).putLong(r.byteOffset());
            r.digest().writeTo(out);
        }
        if (layers != null) {
            out.putInt(layers.size());
            for (LayerIdentity l : layers) {
                java.time.Instant time = java.time.Instant.parse(l.identity().modifiedAt());
                out.putShort((short) (l.disk() + 1)).putShort((short) l.layer()).putInt(0).putLong(l.identity().byteSize())
                        .putLong(time.getEpochSecond()).putInt(time.getNano()).putInt(0).put(java.util.HexFormat.of().parseHex(l.identity().headTailSha256()));
            }
        }
        return out.array();
    }

    /** Decodes a version 3 table: every record in a base file itself (layer 0). */
    static List<Ref> decode(Path path, byte[] body, List<Long> diskByteSizes) {
        return decode(path, body, diskByteSizes, 0).refs();
    }

    /**
     * Decodes the body of {@code path}; every record must name one of the disks (the byte sizes of their base files), a
     * layer up to {@code maxLayer} (0 in version 3, {@link Qcow2Chain#MAX_LAYERS} in version 4) and a whole aligned block
     * in it (inside the base file for layer 0; a backing file's size is known only when it is read); in version 4
     * ({@code maxLayer} above 0) the backing files' identities follow, one for each (disk, layer) the records name.
     */
    static Table decode(Path path, byte[] body, List<Long> diskByteSizes, int maxLayer) {
        ByteBuffer in = ByteBuffer.wrap(body).order(ByteOrder.LITTLE_ENDIAN);
        if (body.length < 4) throw corrupt(path, 0, "truncated: expected the reference count, actual a body of " + body.length + " bytes");
        int count = in.getInt();
        long recordBytes = (long) count * RECORD_BYTES;
        if (count < 0 || (maxLayer == 0 ? in.remaining() != recordBytes : in.remaining() < recordBytes + 4)) {
            throw corrupt(path, 0, "expected " + count + " records of " + RECORD_BYTES + " bytes" + (maxLayer == 0 ? "" : " and the backing files' count")
                    + ", actual " + in.remaining() + " bytes of records");
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
        if (maxLayer == 0) return new Table(List.copyOf(refs), List.of());
        return new Table(List.copyOf(refs), decodeLayers(path, in, refs, diskByteSizes.size(), maxLayer));
    }

    /** The version 4 identities after the records: exactly one per (disk, layer >= 1) some record names, in ascending order. */
    private static List<LayerIdentity> decodeLayers(Path path, ByteBuffer in, List<Ref> refs, int diskCount, int maxLayer) {
        long countAt = in.position();
        int count = in.getInt();
        if (count < 0 || in.remaining() != (long) count * LAYER_RECORD_BYTES) {
            throw corrupt(path, countAt, "expected " + count + " backing file identities of " + LAYER_RECORD_BYTES + " bytes, actual "
                    + in.remaining() + " bytes of them");
        }
        java.util.TreeSet<Long> named = new java.util.TreeSet<>();
        for (Ref r : refs) if (r.layer() > 0) named.add(key(r.disk(), r.layer()));
        List<LayerIdentity> layers = new ArrayList<>(count);
        byte[] sha = new byte[32];
        long previous = -1;
        for (int i = 0; i < count; i++) {
            long at = in.position();
            int disk = Short.toUnsignedInt(in.getShort()) - 1;
            int layer = Short.toUnsignedInt(in.getShort());
            int reserved = in.getInt();
            long byteSize = in.getLong();
            long seconds = in.getLong();
            int nanos = in.getInt();
            int reserved2 = in.getInt();
            in.get(sha);
            long key = key(disk, layer);
            if (disk < 0 || disk >= diskCount || layer < 1 || layer > maxLayer || reserved != 0 || reserved2 != 0 || byteSize < 0
                    || nanos < 0 || nanos >= 1_000_000_000 || seconds < java.time.Instant.MIN.getEpochSecond()
                    || seconds > java.time.Instant.MAX.getEpochSecond() || key <= previous || !named.contains(key)) {
                throw corrupt(path, at, "backing file identity " + i + ": expected a disk number 1-" + diskCount + " and a layer 1-" + maxLayer
                        + " that a reference names, after the previous one's, zero reserved fields, a size >= 0 and nanoseconds below 10^9,"
                        + " actual disk number " + (disk + 1) + ", layer " + layer + ", reserved " + reserved + " and " + reserved2
                        + ", size " + byteSize + ", time " + seconds + " s " + nanos + " ns");
            }
            previous = key;
            named.remove(key);
            layers.add(new LayerIdentity(disk, layer, new DiskIdentity(byteSize, java.time.Instant.ofEpochSecond(seconds, nanos).toString(),
                    java.util.HexFormat.of().formatHex(sha))));
        }
        if (!named.isEmpty()) {
            long missing = named.first();
            throw corrupt(path, countAt, "expected a backing file identity for every layer a reference names, actual none for disk number "
                    + (missing / (Qcow2Chain.MAX_LAYERS + 1) + 1) + " layer " + missing % (Qcow2Chain.MAX_LAYERS + 1));
        }
        return List.copyOf(layers);
    }

    private static long key(int disk, int layer) {
        return (long) disk * (Qcow2Chain.MAX_LAYERS + 1) + layer;
    }

    private static ImageException.Corrupt corrupt(Path path, long bodyOffset, String detail) {
        return new ImageException.Corrupt(path, Framing.HEADER_BYTES + bodyOffset, "disk references: " + detail);
    }
}
