package dev.thaw.image;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.migration.SaveStreamParser;
import dev.thaw.testing.Seeds;
import dev.thaw.testing.SyntheticGuest;
import java.io.ByteArrayInputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Pages a disk base holds: its block index, the disk-reference table, and images whose pages are taken from a base. */
class DiskReferencesTest {
    private static final int B = DiskBlockIndex.BLOCK_BYTES;

    private static byte[] block(Random random) {
        byte[] b = new byte[B];
        random.nextBytes(b);
        return b;
    }

    /** A raw disk of {@code blocks} (null: a zero block). */
    private static Path disk(Path file, List<byte[]> blocks) throws Exception {
        byte[] all = new byte[blocks.size() * B];
        for (int i = 0; i < blocks.size(); i++) if (blocks.get(i) != null) System.arraycopy(blocks.get(i), 0, all, i * B, B);
        return Files.write(file, all);
    }

    @Test
    void theIndexFindsEveryNonZeroBlockOnceAndNoZeroBlock(@TempDir Path dir) throws Exception {
        Random random = Seeds.random("theIndexFindsEveryNonZeroBlockOnceAndNoZeroBlock");
        byte[] twice = block(random);
        List<byte[]> blocks = new ArrayList<>();
        for (int i = 0; i < 300; i++) blocks.add(i % 3 == 0 ? null : block(random));
        blocks.set(7, twice);
        blocks.set(200, twice);
        Path file = disk(dir.resolve("disk.raw"), blocks);
        DiskBlockIndex index;
        try (FileChannel c = FileChannel.open(file)) {
            index = DiskBlockIndex.build(c);
        }
        assertThat(index.byteSize()).isEqualTo(300L * B);
        assertThat(index.entryCount()).isEqualTo(199); // 200 non-zero blocks, one content twice
        for (int i = 0; i < blocks.size(); i++) {
            if (blocks.get(i) == null || i == 200) continue;
            assertThat(index.find(DiskBlockIndex.hash(blocks.get(i), 0))).as("block " + i).isEqualTo(i);
        }
        assertThat(index.find(DiskBlockIndex.hash(twice, 0))).as("the lowest block of a content held twice").isEqualTo(7);
        assertThat(index.find(DiskBlockIndex.hash(new byte[B], 0))).as("zero blocks are not indexed").isEqualTo(-1);
        assertThat(index.find(DiskBlockIndex.hash(block(random), 0))).isEqualTo(-1);

        DiskBlockIndex back = DiskBlockIndex.decode(file, index.encode());
        assertThat(back.entryCount()).isEqualTo(index.entryCount());
        assertThat(back.find(DiskBlockIndex.hash(blocks.get(1), 0))).isEqualTo(1);
    }

    @Test
    void aMalformedIndexIsRefusedSayingWhatAndWhere(@TempDir Path dir) throws Exception {
        Random random = Seeds.random("aMalformedIndexIsRefusedSayingWhatAndWhere");
        Path file = disk(dir.resolve("disk.raw"), List.of(block(random), block(random), block(random)));
        byte[] good;
        try (FileChannel c = FileChannel.open(file)) {
            good = DiskBlockIndex.build(c).encode();
        }
        byte[] version = good.clone();
        version[0] = 2;
        assertThatThrownBy(() -> DiskBlockIndex.decode(file, version)).isInstanceOf(ImageException.Corrupt.class)
                .hasMessageContaining("index version: expected 1, actual 2");
        assertThatThrownBy(() -> DiskBlockIndex.decode(file, java.util.Arrays.copyOf(good, good.length - 1)))
                .isInstanceOf(ImageException.Corrupt.class).hasMessageContaining("count 3, 47 bytes of entries");
        byte[] unsorted = good.clone();
        ByteBuffer u = ByteBuffer.wrap(unsorted).order(ByteOrder.LITTLE_ENDIAN);
        u.putLong(24 + 16, u.getLong(24)); // entry 1's hash equal to entry 0's
        assertThatThrownBy(() -> DiskBlockIndex.decode(file, unsorted)).isInstanceOf(ImageException.Corrupt.class)
                .hasMessageContaining("offset " + (Framing.HEADER_BYTES + 24 + 16)).hasMessageContaining("entry 1: expected a hash above the previous one");
        byte[] beyond = good.clone();
        ByteBuffer.wrap(beyond).order(ByteOrder.LITTLE_ENDIAN).putLong(24 + 8, 3);
        assertThatThrownBy(() -> DiskBlockIndex.decode(file, beyond)).isInstanceOf(ImageException.Corrupt.class)
                .hasMessageContaining("entry 0: expected a hash above the previous one and a block below 3").hasMessageContaining("block 3");
    }

    @Test
    void anIndexIsBuiltOncePerIdentityAndRebuiltWhenItsCacheIsDamaged(@TempDir Path dir) throws Exception {
        Random random = Seeds.random("anIndexIsBuiltOncePerIdentityAndRebuiltWhenItsCacheIsDamaged");
        Path file = disk(dir.resolve("disk.raw"), List.of(block(random), block(random)));
        DiskIdentity identity = DiskIdentity.of(file);
        DiskBlockIndex.Loaded first = DiskBlockIndex.forBase(file, identity, dir.resolve("cache"));
        DiskBlockIndex.Loaded second = DiskBlockIndex.forBase(file, identity, dir.resolve("cache"));
        assertThat(first.fromCache()).isFalse();
        assertThat(second.fromCache()).isTrue();
        assertThat(second.cacheFile()).isEqualTo(first.cacheFile());
        assertThat(second.index().entryCount()).isEqualTo(2);

        byte[] cached = Files.readAllBytes(first.cacheFile());
        cached[Framing.HEADER_BYTES + 30] ^= 1;
        Files.write(first.cacheFile(), cached);
        DiskBlockIndex.Loaded rebuilt = DiskBlockIndex.forBase(file, identity, dir.resolve("cache"));
        assertThat(rebuilt.fromCache()).as("a damaged cache is rebuilt").isFalse();
        assertThat(DiskBlockIndex.forBase(file, identity, dir.resolve("cache")).fromCache()).isTrue();

        Files.write(file, block(random), StandardOpenOption.APPEND);
        DiskBlockIndex.Loaded other = DiskBlockIndex.forBase(file, DiskIdentity.of(file), dir.resolve("cache"));
        assertThat(other.fromCache()).as("another identity, another index").isFalse();
        assertThat(other.index().entryCount()).isEqualTo(3);
    }

    @Test
    void theReferenceTableRoundTripsAndRefusesMalformedRecords() {
        Path where = Path.of("/img/diskrefs.thaw");
        PageDigest digest = PageDigest.of(new byte[B], 0, B);
        List<DiskReferences.Ref> refs = List.of(new DiskReferences.Ref(0, 0, digest), new DiskReferences.Ref(1, 5L * B, digest));
        byte[] body = DiskReferences.encode(refs);
        assertThat(DiskReferences.decode(where, body, List.of(8L * B, 8L * B))).isEqualTo(refs);

        assertThatThrownBy(() -> DiskReferences.decode(where, body, List.of(8L * B))).isInstanceOf(ImageException.Corrupt.class)
                .hasMessageContaining("offset " + (Framing.HEADER_BYTES + 4 + 48)).hasMessageContaining("reference 1: expected a disk number 1-1")
                .hasMessageContaining("actual disk number 2");
        byte[] zeroDisk = body.clone();
        zeroDisk[4] = 0;
        assertThatThrownBy(() -> DiskReferences.decode(where, zeroDisk, List.of(8L * B, 8L * B))).hasMessageContaining("actual disk number 0");
        byte[] unaligned = body.clone();
        ByteBuffer.wrap(unaligned).order(ByteOrder.LITTLE_ENDIAN).putLong(4 + 48 + 8, 5L * B + 1);
        assertThatThrownBy(() -> DiskReferences.decode(where, unaligned, List.of(8L * B, 8L * B))).hasMessageContaining("offset " + (5L * B + 1));
        assertThatThrownBy(() -> DiskReferences.decode(where, body, List.of(8L * B, 5L * B))).as("a block past the disk's end")
                .hasMessageContaining("offset " + 5L * B);
        assertThatThrownBy(() -> DiskReferences.decode(where, java.util.Arrays.copyOf(body, body.length - 1), List.of(8L * B, 8L * B)))
                .hasMessageContaining("expected 2 records of 48 bytes, actual 95 bytes of records");

        // Version 4: a record may name a backing file of the base (its layer), whose size only its read knows; the identity
        // of each backing file named follows the records.
        List<DiskReferences.Ref> layered = List.of(new DiskReferences.Ref(0, 0, 3L * B, digest), new DiskReferences.Ref(0, 2, 100L * B, digest));
        DiskIdentity identity = new DiskIdentity(123L * B, "2026-11-30T07:05:04.123456789Z", "ab".repeat(32));
        List<DiskReferences.LayerIdentity> layers = List.of(new DiskReferences.LayerIdentity(0, 2, identity));
        byte[] v4 = DiskReferences.encode(layered, layers);
        assertThat(DiskReferences.decode(where, v4, List.of(8L * B), Qcow2Chain.MAX_LAYERS)).isEqualTo(new DiskReferences.Table(layered, layers));
        assertThatThrownBy(() -> DiskReferences.decode(where, DiskReferences.encode(layered), List.of(8L * B))).as("a version 3 image names no backing file")
                .isInstanceOf(ImageException.Corrupt.class).hasMessageContaining("offset " + (Framing.HEADER_BYTES + 4 + 48))
                .hasMessageContaining("reference 1: expected a disk number 1-1, a layer 0-0").hasMessageContaining("actual disk number 1, layer 2");
        assertThatThrownBy(() -> DiskReferences.decode(where, v4, List.of(8L * B))).as("nor any identity")
                .hasMessageContaining("expected 2 records of 48 bytes, actual " + (2 * 48 + 4 + 64) + " bytes of records");
        byte[] deep = v4.clone();
        ByteBuffer.wrap(deep).order(ByteOrder.LITTLE_ENDIAN).putShort(4 + 48 + 2, (short) (Qcow2Chain.MAX_LAYERS + 1));
        assertThatThrownBy(() -> DiskReferences.decode(where, deep, List.of(8L * B), Qcow2Chain.MAX_LAYERS))
                .hasMessageContaining("a layer 0-" + Qcow2Chain.MAX_LAYERS).hasMessageContaining("layer " + (Qcow2Chain.MAX_LAYERS + 1));
        byte[] reserved = v4.clone();
        reserved[4 + 48 + 4] = 1;
        assertThatThrownBy(() -> DiskReferences.decode(where, reserved, List.of(8L * B), Qcow2Chain.MAX_LAYERS)).hasMessageContaining("reserved 1");

        // Malformed identity tables: refused naming the entry and its offset.
        int at = 4 + 2 * 48;
        assertThatThrownBy(() -> DiskReferences.decode(where, DiskReferences.encode(layered, List.of()), List.of(8L * B), Qcow2Chain.MAX_LAYERS))
                .isInstanceOf(ImageException.Corrupt.class).hasMessageContaining("offset " + (Framing.HEADER_BYTES + at))
                .hasMessageContaining("expected a backing file identity for every layer a reference names, actual none for disk number 1 layer 2");
        assertThatThrownBy(() -> DiskReferences.decode(where, java.util.Arrays.copyOf(v4, v4.length - 1), List.of(8L * B), Qcow2Chain.MAX_LAYERS))
                .hasMessageContaining("expected 1 backing file identities of 64 bytes, actual 63 bytes");
        assertThatThrownBy(() -> DiskReferences.decode(where, java.util.Arrays.copyOf(v4, at), List.of(8L * B), Qcow2Chain.MAX_LAYERS))
                .hasMessageContaining("expected 2 records of 48 bytes and the backing files' count, actual 96 bytes of records");
        assertThatThrownBy(() -> DiskReferences.decode(where, DiskReferences.encode(layered, List.of(new DiskReferences.LayerIdentity(0, 1, identity))),
                List.of(8L * B), Qcow2Chain.MAX_LAYERS)).as("a layer no reference names")
                .hasMessageContaining("offset " + (Framing.HEADER_BYTES + at + 4)).hasMessageContaining("backing file identity 0").hasMessageContaining("layer 1,");
        assertThatThrownBy(() -> DiskReferences.decode(where, DiskReferences.encode(layered, List.of(layers.getFirst(), layers.getFirst())),
                List.of(8L * B), Qcow2Chain.MAX_LAYERS)).as("twice").hasMessageContaining("backing file identity 1");
        byte[] nanos = v4.clone();
        ByteBuffer.wrap(nanos).order(ByteOrder.LITTLE_ENDIAN).putInt(at + 4 + 24, 1_000_000_000);
        assertThatThrownBy(() -> DiskReferences.decode(where, nanos, List.of(8L * B), Qcow2Chain.MAX_LAYERS)).hasMessageContaining("1000000000 ns");
        byte[] reserved2 = v4.clone();
        reserved2[at + 4 + 28] = 1;
        assertThatThrownBy(() -> DiskReferences.decode(where, reserved2, List.of(8L * B), Qcow2Chain.MAX_LAYERS)).hasMessageContaining("reserved 0 and 1");
        byte[] disk2 = v4.clone();
        disk2[at + 4] = 2;
        assertThatThrownBy(() -> DiskReferences.decode(where, disk2, List.of(8L * B), Qcow2Chain.MAX_LAYERS)).hasMessageContaining("actual disk number 2, layer 2");
    }

    @Test
    void pageMapEntriesTellDiskReferencesFromExtentsAndPendingPages() {
        assertThat(PageMap.isDiskReference(PageMap.diskReference(0))).isTrue();
        assertThat(PageMap.diskReferenceOf(PageMap.diskReference(Integer.MAX_VALUE))).isEqualTo(Integer.MAX_VALUE);
        assertThat(PageMap.isDiskReference(PageMap.stored(5, 3))).isFalse();
        assertThat(PageMap.isDiskReference(PageMap.ZERO)).isFalse();
        for (int slot = 0; slot < 256; slot++) assertThat(PageMap.isDiskReference(PageMap.pending(slot))).isFalse();
    }

    /** A guest some of whose pages are blocks of its disk; the image takes those from the disk and stores the rest. */
    @Test
    @org.junit.jupiter.api.Timeout(value = 60, threadMode = org.junit.jupiter.api.Timeout.ThreadMode.SEPARATE_THREAD)
    void pagesEqualToBaseBlocksAreTakenFromTheBaseAndCheckedWhenRead(@TempDir Path dir) throws Exception {
        Random random = Seeds.random("pagesEqualToBaseBlocksAreTakenFromTheBaseAndCheckedWhenRead");
        SyntheticGuest guest = SyntheticGuest.random(random, 2, 150, 200, 0.3, 0.1);
        List<byte[]> blocks = new ArrayList<>();
        for (int i = 0; i < 64; i++) blocks.add(i % 4 == 0 ? null : block(random));
        long onDisk = 0;
        int next = 1;
        for (byte[][] pages : guest.pages) {
            for (int p = 0; p < pages.length; p += 5) {
                if (pages[p] == null || next >= blocks.size()) continue;
                if (blocks.get(next) == null) next++;
                pages[p] = blocks.get(next++).clone();
                onDisk++;
            }
        }
        Path base = disk(dir.resolve("disk.raw"), blocks);
        DiskIdentity identity = DiskIdentity.of(base);
        Manifest manifest;
        try (ImageWriter writer = ImageWriter.create(dir.resolve("img"), ImageWriter.Options.defaults())) {
            writer.diskBases(List.of(new DiskPages.Base(0, base, identity, DiskBlockIndex.forBase(base, identity, dir.resolve("cache")).index())));
            SaveStreamParser.parse(new ByteArrayInputStream(guest.toStream(50)), ImageRoundTripTest.sink(writer));
            writer.disks(List.of(new Manifest.Disk("disk0", "04.0", "raw", base.toString(), false, Files.size(base), identity)));
            manifest = writer.commit(new Manifest.Source("7.2.22", null, List.of(), null), "test");
        }
        assertThat(onDisk).isGreaterThan(10);
        assertThat(manifest.formatVersion()).isEqualTo(Manifest.VERSION_WITH_DISK_REFS);
        assertThat(manifest.stats().diskReferencePageCount()).isEqualTo(onDisk);
        long nonZero = 0;
        for (byte[][] pages : guest.pages) for (byte[] p : pages) if (p != null) nonZero++;
        assertThat(manifest.stats().storedPageCount() + manifest.stats().duplicatePageCount() + onDisk).isEqualTo(nonZero);

        try (CheckpointImage image = CheckpointImage.open(dir.resolve("img"))) {
            assertThat(image.diskReferences().pageCount()).isEqualTo(onDisk);
            assertThat(image.verify().diskPageCount()).isEqualTo(image.diskReferences().blockCount()).isPositive();
            assertThat(SyntheticGuest.sameMemory(guest, ImageRoundTripTest.restoreStream(image))).as("RAM after stream -> image -> stream").isTrue();
        }

        // The base written since (its time put back, so its identity still matches): the page read names the disk and offset.
        FileTime time = Files.getLastModifiedTime(base);
        try (FileChannel c = FileChannel.open(base, StandardOpenOption.WRITE)) {
            c.write(ByteBuffer.wrap(new byte[] {1, 2, 3}), 2L * B + 100);
        }
        Files.setLastModifiedTime(base, time);
        try (CheckpointImage image = CheckpointImage.open(dir.resolve("img"))) {
            assertThatThrownBy(image::verify).isInstanceOf(ImageException.Corrupt.class)
                    .hasMessageContaining("disk disk0 block at offset " + 2L * B).hasMessageContaining("expected SHA-256")
                    .hasMessageContaining("actual").hasMessageContaining("the base changed since the save");
        }

        // The base replaced by a FIFO: the read is refused by the file's kind instead of waiting forever in the open.
        Files.delete(base);
        fifo(base);
        try (CheckpointImage image = CheckpointImage.open(dir.resolve("img"))) {
            assertThatThrownBy(image::verify).isInstanceOf(ImageException.Missing.class)
                    .hasMessageContaining("disk disk0 block at offset").hasMessageContaining(base + ": expected a regular file or a block device, actual a FIFO");
        }
    }

    private static String qemuImg(String... args) {
        List<String> command = new ArrayList<>(List.of("qemu-img"));
        command.addAll(List.of(args));
        return dev.thaw.util.ExternalCommand.check(command, java.time.Duration.ofSeconds(60));
    }

    @Test
    void theBackingChainIsWalkedFromTheHeadersAsQemuOpensIt(@TempDir Path dir) throws Exception {
        qemuImg("create", "-q", "-f", "raw", dir.resolve("base.raw").toString(), "1M");
        Files.createDirectories(dir.resolve("sub"));
        qemuImg("create", "-q", "-f", "qcow2", "-F", "raw", "-b", "../base.raw", dir.resolve("sub/mid.qcow2").toString());
        qemuImg("create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", "sub/mid.qcow2", dir.resolve("top.qcow2").toString());
        assertThat(Qcow2Chain.of(dir.resolve("top.qcow2"))).as("relative names from the naming file's directory, a raw file ends it")
                .containsExactly(dir.resolve("top.qcow2"), dir.resolve("sub/mid.qcow2"), dir.resolve("base.raw"));
        assertThat(Qcow2Chain.of(dir.resolve("base.raw"))).containsExactly(dir.resolve("base.raw"));
        assertThat(Qcow2Chain.resolve(dir.resolve("top.qcow2"), "nbd:localhost:10809")).as("a protocol is not a file").isNull();
        assertThat(Qcow2Chain.resolve(dir.resolve("top.qcow2"), "json:{\"driver\": \"raw\"}")).isNull();
        assertThat(Qcow2Chain.resolve(dir.resolve("top.qcow2"), "/abs/./x.qcow2")).isEqualTo(Path.of("/abs/x.qcow2"));

        byte[] header = Files.readAllBytes(dir.resolve("top.qcow2"));
        ByteBuffer.wrap(header).putInt(16, 4000); // a backing name longer than QEMU allows
        Path bad = Files.write(dir.resolve("bad.qcow2"), header);
        assertThatThrownBy(() -> Qcow2Chain.of(bad)).hasMessageContaining("qcow2 backing file name: expected 1-1023 bytes")
                .hasMessageContaining("actual 4000 bytes at offset");
    }

    /**
     * A qcow2 disk on a qcow2 backing file, as qemu-img writes them (real clusters, not at their guest offsets; compressed
     * ones left out): pages equal to a guest-visible block of either file are references to that file's cluster, read back
     * and checked; the backing file changed since is caught by the SHA-256.
     */
    @Test
    void pagesEqualToBlocksOfAQcow2ChainAreTakenFromItsFiles(@TempDir Path dir) throws Exception {
        Random random = Seeds.random("pagesEqualToBlocksOfAQcow2ChainAreTakenFromItsFiles");
        List<byte[]> lower = new ArrayList<>();
        for (int i = 0; i < 96; i++) lower.add(i % 5 == 0 ? null : block(random));
        Path raw = disk(dir.resolve("lower.raw"), lower);
        Path backing = dir.resolve("backing.qcow2");
        qemuImg("convert", "-q", "-f", "raw", "-O", "qcow2", raw.toString(), backing.toString());
        Path top = dir.resolve("top.qcow2");
        qemuImg("create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", "backing.qcow2", top.toString());
        Path pattern = Files.write(dir.resolve("pattern"), concat(block(random), block(random)));
        // the guest writes 32 KiB at guest 128 KiB (in the top file, in its own cluster) over the backing file's blocks
        dev.thaw.util.ExternalCommand.check(List.of("qemu-io", "-f", "qcow2", "-c", "write -s " + pattern + " 128k 32k", top.toString()),
                java.time.Duration.ofSeconds(60));
        Path view = dir.resolve("view.raw");
        qemuImg("convert", "-q", "-f", "qcow2", "-O", "raw", top.toString(), view.toString());
        byte[] guestDisk = Files.readAllBytes(view);

        SyntheticGuest guest = SyntheticGuest.random(random, 1, 200, 200, 0.2, 0);
        java.util.Set<PageDigest> distinct = new java.util.HashSet<>();
        long onDisk = 0;
        int p = 0;
        for (int blockNumber = 0; blockNumber < guestDisk.length / B && p < guest.pages[0].length; blockNumber += 2, p++) {
            byte[] b = java.util.Arrays.copyOfRange(guestDisk, blockNumber * B, (blockNumber + 1) * B);
            if (java.util.Arrays.equals(b, new byte[B])) continue;
            guest.pages[0][p] = b;
            distinct.add(PageDigest.of(b, 0, B));
            onDisk++;
        }
        assertThat(dev.thaw.save.DiskLayers.dataExtents(top)).as("the top file's own cluster").hasSize(1);

        List<DiskPages.Base> bases = new ArrayList<>();
        for (dev.thaw.save.DiskLayers.Layer layer : dev.thaw.save.DiskLayers.of(top, w -> {})) {
            DiskIdentity identity = DiskIdentity.of(layer.file());
            bases.add(new DiskPages.Base(0, layer.layer(), layer.file(), identity,
                    DiskBlockIndex.forBase(layer.file(), identity, dir.resolve("cache"), dev.thaw.save.DiskLayers::dataExtents).index()));
        }
        assertThat(bases).extracting(DiskPages.Base::layer).containsExactly(0, 1);
        Manifest manifest;
        try (ImageWriter writer = ImageWriter.create(dir.resolve("img"), ImageWriter.Options.defaults())) {
            writer.diskBases(bases);
            SaveStreamParser.parse(new ByteArrayInputStream(guest.toStream(50)), ImageRoundTripTest.sink(writer));
            writer.disks(List.of(new Manifest.Disk("disk0", "04.0", "qcow2", top.toString(), false, guestDisk.length, DiskIdentity.of(top))));
            manifest = writer.commit(new Manifest.Source("7.2.22", null, List.of(), null), "test");
        }
        assertThat(onDisk).isGreaterThan(30);
        assertThat(manifest.formatVersion()).as("references into a backing file").isEqualTo(Manifest.VERSION_WITH_BACKING_REFS);
        assertThat(manifest.stats().diskReferencePageCount()).as("every non-zero page the guest's disk holds").isEqualTo(onDisk);
        try (CheckpointImage image = CheckpointImage.open(dir.resolve("img"))) {
            assertThat(image.diskReferences().blockCount()).isEqualTo(distinct.size());
            assertThat(image.verify().diskPageCount()).isEqualTo(distinct.size());
            assertThat(SyntheticGuest.sameMemory(guest, ImageRoundTripTest.restoreStream(image))).as("RAM after stream -> image -> stream").isTrue();
        }

        // The backing file's data written since, its time put back: the read names the layer, the file and the offset.
        long cluster = dev.thaw.save.DiskLayers.dataExtents(backing).getFirst().fileOffset();
        FileTime time = Files.getLastModifiedTime(backing);
        try (FileChannel c = FileChannel.open(backing, StandardOpenOption.WRITE, StandardOpenOption.READ)) {
            ByteBuffer all = ByteBuffer.allocate((int) (c.size() - cluster));
            c.read(all, cluster);
            for (int i = 0; i < all.capacity(); i += B) all.put(i + 7, (byte) (all.get(i + 7) ^ 1));
            c.write(all.flip(), cluster);
        }
        Files.setLastModifiedTime(backing, time);
        try (CheckpointImage image = CheckpointImage.open(dir.resolve("img"))) {
            assertThatThrownBy(image::verify).isInstanceOf(ImageException.Corrupt.class).hasMessageContaining(backing.toString())
                    .hasMessageContaining("disk disk0 backing layer 1 block at offset").hasMessageContaining("expected SHA-256")
                    .hasMessageContaining("the backing file changed since the save");
        }
    }

    /**
     * A file with just the qcow2 header fields the chain's walk reads (magic, version 3, backing file offset and size) and
     * the backing name {@code name} at {@code nameOffset}, {@code byteSize} bytes long.
     */
    static Path qcow2Naming(Path file, String name, long nameOffset, long byteSize) throws Exception {
        byte[] n = name.getBytes(java.nio.charset.StandardCharsets.UTF_8);
        try (FileChannel c = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
            c.write(ByteBuffer.allocate(20).putInt(Qcow2Chain.MAGIC).putInt(3).putLong(nameOffset).putInt(n.length).flip(), 0);
            c.write(ByteBuffer.wrap(n), nameOffset);
            if (c.size() < byteSize) c.write(ByteBuffer.wrap(new byte[1]), byteSize - 1);
        }
        return file;
    }

    private static Path fifo(Path file) {
        dev.thaw.util.ExternalCommand.check(List.of("mkfifo", file.toString()), java.time.Duration.ofSeconds(10));
        return file;
    }

    /** A backing file that is a FIFO (or a directory) is refused by its kind, never opened: the open would wait for a writer. */
    @Test
    @org.junit.jupiter.api.Timeout(value = 30, threadMode = org.junit.jupiter.api.Timeout.ThreadMode.SEPARATE_THREAD)
    void aChainFileThatIsNeitherARegularFileNorABlockDeviceIsRefusedNotOpened(@TempDir Path dir) throws Exception {
        Path pipe = fifo(dir.resolve("backing.fifo"));
        Path top = qcow2Naming(dir.resolve("top.qcow2"), "backing.fifo", 512, 4096);
        assertThatThrownBy(() -> Qcow2Chain.of(top)).isInstanceOf(java.io.IOException.class)
                .hasMessage(pipe + ": expected a regular file or a block device, actual a FIFO");
        Files.createDirectory(dir.resolve("sub"));
        Path onDirectory = qcow2Naming(dir.resolve("dir.qcow2"), "sub", 512, 4096);
        assertThatThrownBy(() -> Qcow2Chain.of(onDirectory)).hasMessage(dir.resolve("sub") + ": expected a regular file or a block device, actual a directory");
        Path plain = Files.write(dir.resolve("plain.raw"), new byte[B]);
        assertThat(Qcow2Chain.of(qcow2Naming(dir.resolve("ok.qcow2"), "plain.raw", 512, 4096))).containsExactly(dir.resolve("ok.qcow2"), plain);
    }

    /**
     * A reference into layer 1 reads back though the file below it is gone: the restore walks the chain down to the layer a
     * reference names, not below it (the whole walk fails on the missing file).
     */
    @Test
    void aReferenceIsReadThoughAFileBelowItsLayerIsGone(@TempDir Path dir) throws Exception {
        Random random = Seeds.random("aReferenceIsReadThoughAFileBelowItsLayerIsGone");
        Path top = qcow2Naming(dir.resolve("top.qcow2"), "mid.qcow2", 512, 2 * B);
        Path mid = qcow2Naming(dir.resolve("mid.qcow2"), "gone.qcow2", 512, B);
        List<byte[]> blocks = List.of(block(random), block(random), block(random));
        Files.write(mid, concat(blocks.get(0), concat(blocks.get(1), blocks.get(2))), StandardOpenOption.APPEND);
        SyntheticGuest guest = SyntheticGuest.random(random, 1, 10, 50, 0.2, 0);
        guest.pages[0][3] = blocks.get(1).clone();
        guest.pages[0][9] = blocks.get(2).clone();
        DiskIdentity midIdentity = DiskIdentity.of(mid);
        try (ImageWriter writer = ImageWriter.create(dir.resolve("img"), ImageWriter.Options.defaults())) {
            writer.diskBases(List.of(new DiskPages.Base(0, 1, mid, midIdentity, DiskBlockIndex.forBase(mid, midIdentity, dir.resolve("cache")).index())));
            SaveStreamParser.parse(new ByteArrayInputStream(guest.toStream(50)), ImageRoundTripTest.sink(writer));
            writer.disks(List.of(new Manifest.Disk("disk0", "04.0", "qcow2", top.toString(), false, 1L << 20, DiskIdentity.of(top))));
            assertThat(writer.commit(new Manifest.Source("7.2.22", null, List.of(), null), "test").formatVersion())
                    .isEqualTo(Manifest.VERSION_WITH_BACKING_REFS);
        }
        assertThatThrownBy(() -> Qcow2Chain.of(top)).as("the whole chain cannot be walked").hasMessageContaining("gone.qcow2");
        assertThat(Qcow2Chain.upTo(top, 1)).containsExactly(top, mid);
        try (CheckpointImage image = CheckpointImage.open(dir.resolve("img"))) {
            assertThat(image.verify().diskPageCount()).isEqualTo(2);
            assertThat(SyntheticGuest.sameMemory(guest, ImageRoundTripTest.restoreStream(image))).isTrue();
            assertThat(image.backingFileChanges()).as("the backing file as the save recorded it").isEmpty();
        }

        // The backing file checked before any page is read (what a restore does before QEMU starts): written since, or
        // another file at its layer, or none.
        FileTime time = Files.getLastModifiedTime(mid);
        Files.write(mid, new byte[1], StandardOpenOption.APPEND);
        try (CheckpointImage image = CheckpointImage.open(dir.resolve("img"))) {
            assertThat(image.backingFileChanges()).singleElement().asString().startsWith("disk disk0 backing layer 1 (" + mid + ") changed since the save")
                    .contains("size: expected " + midIdentity.byteSize() + " bytes, actual " + (midIdentity.byteSize() + 1));
        }
        try (FileChannel c = FileChannel.open(mid, StandardOpenOption.WRITE)) {
            c.truncate(midIdentity.byteSize());
        }
        Files.setLastModifiedTime(mid, time);
        Files.copy(mid, dir.resolve("mid2.qcow2"));
        qcow2Naming(top, "mid2.qcow2", 512, 2 * B);
        try (CheckpointImage image = CheckpointImage.open(dir.resolve("img"))) {
            assertThat(image.backingFileChanges()).singleElement().asString().contains("backing layer 1 (" + dir.resolve("mid2.qcow2") + ") changed")
                    .contains("modification time");
        }
        qcow2Naming(top, "", 0, 2 * B);
        try (CheckpointImage image = CheckpointImage.open(dir.resolve("img"))) {
            assertThat(image.backingFileChanges()).singleElement().asString()
                    .startsWith("disk disk0 backing layer 1: expected a backing chain of at least 2 files, actual [" + top + "]");
        }
    }

    /** A backing name not whole inside the first MiB (what the file's identity hashes) ends the chain: no layer below it. */
    @Test
    void aBackingNameOutsideTheHashedFirstMiBEndsTheChain(@TempDir Path dir) throws Exception {
        Path mid = qcow2Naming(dir.resolve("mid.qcow2"), "", 0, B);
        int length = "mid.qcow2".length();
        Path inside = qcow2Naming(dir.resolve("inside.qcow2"), "mid.qcow2", DiskIdentity.SAMPLE_BYTES - length, DiskIdentity.SAMPLE_BYTES + B);
        assertThat(Qcow2Chain.of(inside)).containsExactly(inside, mid);
        Path across = qcow2Naming(dir.resolve("across.qcow2"), "mid.qcow2", DiskIdentity.SAMPLE_BYTES - length + 1, DiskIdentity.SAMPLE_BYTES + B);
        assertThat(Qcow2Chain.of(across)).containsExactly(across);
        Path beyond = qcow2Naming(dir.resolve("beyond.qcow2"), "mid.qcow2", DiskIdentity.SAMPLE_BYTES + 512, DiskIdentity.SAMPLE_BYTES + B);
        assertThat(Qcow2Chain.of(beyond)).containsExactly(beyond);
    }

    private static byte[] concat(byte[] a, byte[] b) {
        byte[] out = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    @Test
    void aBaseChangedDuringTheSaveFailsTheCommit(@TempDir Path dir) throws Exception {
        Random random = Seeds.random("aBaseChangedDuringTheSaveFailsTheCommit");
        SyntheticGuest guest = SyntheticGuest.random(random, 1, 50, 0.2, 0);
        Path base = disk(dir.resolve("disk.raw"), List.of(block(random), block(random)));
        DiskIdentity identity = DiskIdentity.of(base);
        try (ImageWriter writer = ImageWriter.create(dir.resolve("img"), ImageWriter.Options.defaults())) {
            writer.diskBases(List.of(new DiskPages.Base(0, base, identity, DiskBlockIndex.forBase(base, identity, dir.resolve("cache")).index())));
            SaveStreamParser.parse(new ByteArrayInputStream(guest.toStream(50)), ImageRoundTripTest.sink(writer));
            Files.write(base, block(random), StandardOpenOption.APPEND);
            DiskIdentity now = DiskIdentity.of(base);
            assertThatThrownBy(() -> writer.disks(List.of(new Manifest.Disk("disk0", "04.0", "raw", base.toString(), false, 2L * B, now))))
                    .isInstanceOf(ImageException.CannotWrite.class).hasMessageContaining("the disk base changed during the save")
                    .hasMessageContaining("size: expected " + 2L * B + " bytes, actual " + 3L * B);
        }
        assertThat(dir.resolve("img")).doesNotExist();
    }
}
