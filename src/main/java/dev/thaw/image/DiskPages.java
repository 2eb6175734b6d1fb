package dev.thaw.image;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The save's side of disk references: finds the pages that equal a block of one of the image's disk bases or their
 * backing files (the
 * block index proposes by XXH3, the bytes read from the base decide) and numbers the distinct blocks taken, in the
 * order first found.
 */
public final class DiskPages implements AutoCloseable {
    private static final int PAGE_BYTES = DiskBlockIndex.BLOCK_BYTES;

    /**
     * A disk base the save may take pages from.
     *
     * @param disk     its index in the manifest's disks (the order the save gives them)
     * @param layer    0 for the base file itself, n for the n-th file of its backing chain ({@link Qcow2Chain})
     * @param file     the file: a raw base, or a qcow2 file of the chain (its index names its data clusters' file offsets)
     * @param identity the file's identity at the stop; a base's (layer 0) must be the image's, and no file may change before the commit
     */
    public record Base(int disk, int layer, Path file, DiskIdentity identity, DiskBlockIndex index) {
        public Base(int disk, Path file, DiskIdentity identity, DiskBlockIndex index) {
            this(disk, 0, file, identity, index);
        }
    }

    private final List<Base> bases;
    private final FileChannel[] channels;
    private final List<DiskReferences.Ref> refs = new ArrayList<>();
    private final Map<PageDigest, Integer> byDigest = new HashMap<>();
    private final ByteBuffer block = ByteBuffer.allocate(PAGE_BYTES);

    DiskPages(List<Base> bases) {
        this.bases = List.copyOf(bases);
        this.channels = new FileChannel[bases.size()];
        for (int i = 0; i < channels.length; i++) {
            try {
                channels[i] = FileChannel.open(bases.get(i).file(), StandardOpenOption.READ);
            } catch (IOException e) {
                close();
                throw new ImageException.Missing(bases.get(i).file(), "cannot be read as a disk base: " + e, e);
            }
        }
    }

    /** The reference number of a page with this content taken from a base already. */
    Integer known(PageDigest digest) {
        return byDigest.get(digest);
    }

    /** The reference number of a base block equal to the page, taken now; null when no base holds it. */
    Integer find(byte[] data, int offset, PageDigest digest) {
        long hash = DiskBlockIndex.hash(data, offset);
        for (int i = 0; i < bases.size(); i++) {
            long number = bases.get(i).index().find(hash);
            if (number < 0) continue;
            long at = number * PAGE_BYTES;
            read(i, at);
            if (Arrays.mismatch(block.array(), 0, PAGE_BYTES, data, offset, offset + PAGE_BYTES) >= 0) continue; // a hash only proposes
            int ref = refs.size();
            refs.add(new DiskReferences.Ref(bases.get(i).disk(), bases.get(i).layer(), at, digest));
            byDigest.put(digest, ref);
            return ref;
        }
        return null;
    }

    private void read(int base, long at) {
        block.clear();
        try {
            while (block.hasRemaining()) {
                if (channels[base].read(block, at + block.position()) < 0) {
                    throw new IOException("expected " + PAGE_BYTES + " bytes at offset " + at + ", actual " + block.position() + " (end of file)");
                }
            }
        } catch (IOException e) {
            throw new ImageException.Missing(bases.get(base).file(), "cannot be read as a disk base: " + e, e);
        }
    }

    List<DiskReferences.Ref> refs() {
        return List.copyOf(refs);
    }

    /** The identity at the stop of each backing file (layer >= 1) a reference names, ascending by disk and layer (format version 4). */
    List<DiskReferences.LayerIdentity> layerIdentities() {
        java.util.TreeMap<Long, DiskReferences.LayerIdentity> used = new java.util.TreeMap<>();
        for (DiskReferences.Ref r : refs) {
            if (r.layer() == 0) continue;
            long key = (long) r.disk() * (Qcow2Chain.MAX_LAYERS + 1) + r.layer();
            if (used.containsKey(key)) continue;
            Base base = bases.stream().filter(b -> b.disk() == r.disk() && b.layer() == r.layer()).findFirst().orElseThrow();
            used.put(key, new DiskReferences.LayerIdentity(r.disk(), r.layer(), base.identity()));
        }
        return List.copyOf(used.values());
    }

    /** Every base taken from must still be what it was when indexed: the manifest records this identity for restores to check. */
    void checkUnchanged(List<Manifest.Disk> disks) {
        for (Base b : bases) {
            if (b.disk() >= disks.size()) {
                throw new IllegalStateException("disk base " + b.file() + ": expected disk " + b.disk() + " among the image's " + disks.size() + " disks");
            }
            DiskIdentity now;
            try {
                now = b.layer() == 0 ? disks.get(b.disk()).identity() : DiskIdentity.of(b.file());
            } catch (IOException e) {
                throw new ImageException.CannotWrite(b.file(), "cannot take the identity of a disk's backing file: " + e, e);
            }
            List<String> changed = b.identity().differencesTo(now);
            if (!changed.isEmpty()) {
                throw new ImageException.CannotWrite(b.file(), "the disk base changed during the save, so its blocks cannot stand for pages: "
                        + String.join("; ", changed), null);
            }
        }
    }

    @Override
    public void close() {
        for (FileChannel c : channels) {
            try {
                if (c != null) c.close();
            } catch (IOException e) {
                // read-only
            }
        }
    }
}
