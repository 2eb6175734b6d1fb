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
