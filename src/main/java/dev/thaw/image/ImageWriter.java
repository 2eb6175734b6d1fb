package dev.thaw.image;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.thaw.migration.RamBlock;
import dev.thaw.migration.SaveStreamHandler;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Instant;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;

/**
 * Writes a checkpoint image from pages as they arrive. Pure file I/O: no threads, no QEMU.
 *
 * <p>Zero pages are only marked in the page map. Every other page is identified by its SHA-256
 * ({@link PageDigest}); content the store already has (from this image or from any image sharing
 * the store directory) is referenced, not written again. New content is gathered into groups of
 * {@code groupPageCount} pages, compressed together and appended to a new pack as one extent.
 * Pages land in the pack in arrival order, which for a stopped guest is QEMU's order: block by
 * block, ascending addresses; the manifest records which order the store has.
 *
 * <p>Atomicity: everything is written under a temporary directory beside the target, the manifest
 * last, each file fsynced; then the directory is renamed into place. Until {@link #commit} returns
 * no image is visible; {@link #close} without commit removes the temporary directory and an
 * unsealed pack. In a shared store the writer holds the store's lock shared and is listed in the
 * store's images from construction to commit or close; a pack it sealed before failing stays for
 * {@code gc} (another save may have found content in it), like every pack of a shared store.
 * Files are created 0600 and directories 0700: they hold guest memory.
 */
public final class ImageWriter implements SaveStreamHandler, AutoCloseable {
    public static final String MANIFEST = "manifest.thaw";
    public static final String PAGE_MAP = "pagemap.thaw";
    public static final String EXTENT_TABLE = "extents.thaw";
    public static final String DEVICE_STATE = "device.thaw";
    public static final String DISK_REFS = "diskrefs.thaw";
    public static final String DEFAULT_STORE = "store";
    private static final int PAGE_BYTES = 4096;

    /**
     * @param storeDirectory where pack files go; null for {@code store/} inside the image (absolute to share one store)
     */
    public record Options(Codec codec, int zstdLevel, int groupPageCount, Path storeDirectory) {
        public Options {
            if (codec == null || codec == Codec.INVALID) throw new IllegalArgumentException("codec: expected zstd, lz4 or none");
            if (groupPageCount < 1 || groupPageCount > ExtentInfo.MAX_PAGES) {
                throw new IllegalArgumentException("group size: expected 1-" + ExtentInfo.MAX_PAGES + " pages, actual " + groupPageCount);
            }
            if (zstdLevel < 1 || zstdLevel > 19) {
                throw new IllegalArgumentException("zstd level: expected 1-19, actual " + zstdLevel);
            }
        }

        public static Options defaults() {
            // LZ4: decompresses about 3x faster than zstd-1 for 5% more bytes on the demo guest; with zstd an eager restore was
            // 1.4x slower than QEMU's own, with LZ4 as soon (docs/benchmarks.md, twelfth session).
            return new Options(Codec.LZ4, 1, 16, null);
        }
    }

    private record StoredPage(ExtentInfo extent, int slot) {}

    private final Path target;
    private final Path temp;
    private final java.util.Optional<ImageMac.Key> macKey;
    private final Path storeDir;
    private final boolean sharedStore;
    private final Store store; // the shared store, else null
    private final StoreLock.Held storeLock; // held shared from construction to commit or close, else null
    private final Options options;
    private final UUID imageId = UUID.randomUUID();
    private final List<Manifest.GuestFile> guestFiles = new ArrayList<>();
    private List<Manifest.Disk> disks = List.of();
    private final Map<PageDigest, StoredPage> stored = new HashMap<>();
    private final Map<PageDigest, Integer> pendingSlots = new HashMap<>();
    private final Map<ExtentInfo, Integer> extentIndex = new LinkedHashMap<>();
    private final List<int[]> pendingRefs = new ArrayList<>(); // {block, page, slot}
    private final byte[] group;
    private final PageDigest[] groupDigests;
    private int groupPages;
    private Pack.Writer pack;
    private byte[] headerAndConfiguration;
    private String machineType;
    private List<String> validatedCapabilities = List.of();
    private List<RamBlock> blocks;
    private int ramSectionId;
    private int ramSectionVersion;
    private long[][] pageMap;
    private BitSet[] seen;
    private byte[] deviceState;
    private byte[] vmDescription;
    private boolean addressOrder = true;
    private int lastBlock;
    private int lastPage = -1;
    private int incompressibleStreak;
    private int groupsSinceProbe;
    private boolean committed;
    private Manifest.PageCacheDrop pageCacheDrop; // null: the save did not drop the guest's page cache
    private DiskPages diskPages; // null: pages are not looked for in disk bases

    private ImageWriter(Path target, Options options) {
        this.macKey = ImageMac.configured(); // a bad key file fails the save before it starts
        this.target = target.toAbsolutePath().normalize();
        this.options = options;
        this.group = new byte[options.groupPageCount() * PAGE_BYTES];
        this.groupDigests = new PageDigest[options.groupPageCount()];
        if (Files.exists(this.target)) {
            throw new ImageException.CannotWrite(this.target, "it already exists (an image is never overwritten)", null);
        }
        try {
            dev.thaw.util.OwnerOnly.createDirectories(this.target.getParent());
            PartialImages.removeAbandoned(this.target.getParent());
            this.temp = Files.createTempDirectory(this.target.getParent(), PartialImages.prefix(this.target)); // 0700
        } catch (IOException e) {
            throw new ImageException.CannotWrite(this.target, e.toString(), e);
        }
        this.sharedStore = options.storeDirectory() != null;
        this.storeDir = sharedStore ? options.storeDirectory().toAbsolutePath().normalize() : temp.resolve(DEFAULT_STORE);
        Store shared = null;
        StoreLock.Held lock = null;
        try {
            if (sharedStore) {
                shared = Store.createOrOpen(storeDir);
                lock = shared.lockShared();
                shared.registerPending(imageId, this.target);
                shared.forEachIndexedPage(page -> stored.putIfAbsent(page.digest(), new StoredPage(page.extent(), page.slot())));
            } else {
                dev.thaw.util.OwnerOnly.createDirectories(storeDir);
            }
        } catch (IOException | RuntimeException e) {
            dev.thaw.util.FileTrees.deleteQuietly(temp);
            if (lock != null) {
                try {
                    shared.unregister(imageId);
                } finally {
                    lock.close();
                }
            }
            if (e instanceof ImageException ie) throw ie;
            throw new ImageException.CannotWrite(storeDir, e.toString(), e);
        }
        this.store = shared;
        this.storeLock = lock;
    }

    /** Starts an image that will appear at {@code target} on commit; {@code target} must not exist. */
    public static ImageWriter create(Path target, Options options) {
        return new ImageWriter(target, options);
    }

    /** The hidden directory the image is written under until {@link #commit} renames it into place. */
    public Path temporaryDirectory() {
        return temp;
    }

    public UUID imageId() {
        return imageId;
    }

    /**
     * Copies a file QEMU boots the guest with into the image (owner-only), so that the image restores wherever it is: the
     * kernel and initrd of a QEMU Thaw did not start, which may lie anywhere and change after the save.
     */
    public void guestFile(String role, Path source) {
        Path dir = temp.resolve(Manifest.GUEST_FILES_DIRECTORY);
        Path copy = dir.resolve(role);
        try {
            dev.thaw.util.OwnerOnly.createDirectories(dir);
            java.security.MessageDigest sha = java.security.MessageDigest.getInstance("SHA-256");
            long bytes;
            try (java.io.InputStream in = Files.newInputStream(source);
                 java.io.OutputStream out = new java.security.DigestOutputStream(Files.newOutputStream(Files.createFile(copy,
                         dev.thaw.util.OwnerOnly.FILE)), sha)) {
                bytes = in.transferTo(out);
            }
            try (java.nio.channels.FileChannel c = java.nio.channels.FileChannel.open(copy, java.nio.file.StandardOpenOption.WRITE)) {
                c.force(true); // the image's own files are fsynced before the rename that publishes it; so is this copy
            }
            FramedWriter.syncDirectory(dir);
            guestFiles.add(new Manifest.GuestFile(role, bytes, java.util.HexFormat.of().formatHex(sha.digest())));
        } catch (IOException e) {
            throw new ImageException.CannotWrite(copy, "copying the guest's " + role + " " + source + " failed: " + e, e);
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Recorded in the manifest: the save dropped the guest's clean page cache before it stopped the guest. */
    public void pageCacheDrop(Manifest.PageCacheDrop drop) {
        this.pageCacheDrop = drop;
    }

    /** The guest's disks, frozen bases outside the image, recorded in the manifest (each base taken from must be as indexed). */
    public void disks(List<Manifest.Disk> frozen) {
        if (diskPages != null) diskPages.checkUnchanged(frozen);
        this.disks = List.copyOf(frozen);
    }

    /**
     * Before the pages arrive: the disk files whose blocks stand for the pages equal to them (disk references, format version
     * 3; 4 when one is a base's backing file). A base's identity must be the one {@link #disks} records at the end, a backing
     * file's unchanged at the commit.
     */
    public void diskBases(List<DiskPages.Base> bases) {
        if (diskPages != null) diskPages.close();
        diskPages = bases.isEmpty() ? null : new DiskPages(bases);
    }

    @Override
    public void configuration(byte[] headerAndConfiguration, String machineType, List<String> validatedCapabilities) {
        this.headerAndConfiguration = headerAndConfiguration.clone();
        this.machineType = machineType;
        this.validatedCapabilities = List.copyOf(validatedCapabilities);
    }

    @Override
    public void ramBlocks(int sectionId, int sectionVersion, List<RamBlock> blockList) {
        this.blocks = List.copyOf(blockList);
        this.ramSectionId = sectionId;
        this.ramSectionVersion = sectionVersion;
        this.pageMap = new long[blocks.size()][];
        this.seen = new BitSet[blocks.size()];
        for (int i = 0; i < blocks.size(); i++) {
            pageMap[i] = new long[blocks.get(i).pageCount()];
            seen[i] = new BitSet(blocks.get(i).pageCount());
        }
    }

    private void arrived(int block, int page) {
        if (block < lastBlock || (block == lastBlock && page <= lastPage)) addressOrder = false;
        lastBlock = block;
        lastPage = page;
        seen[block].set(page);
    }

    @Override
    public void zeroPage(int block, int page) {
        arrived(block, page);
        pageMap[block][page] = PageMap.ZERO;
    }

    @Override
    public void page(int block, int page, byte[] data, int offset) {
        page(block, page, data, offset, PageDigest.of(data, offset, PAGE_BYTES));
    }

    /** A page whose SHA-256 the caller computed ({@link PageDigest#of} of the same bytes: it must be theirs). */
    public void page(int block, int page, byte[] data, int offset, PageDigest digest) {
        arrived(block, page);
        StoredPage known = stored.get(digest);
        if (diskPages != null && known == null && !pendingSlots.containsKey(digest)) {
            Integer ref = diskPages.known(digest);
            if (ref == null) ref = diskPages.find(data, offset, digest);
            if (ref != null) {
                pageMap[block][page] = PageMap.diskReference(ref);
                return;
            }
        }
        if (known != null) {
            pageMap[block][page] = PageMap.stored(extentNumber(known.extent()), known.slot());
            return;
        }
        Integer slot = pendingSlots.get(digest);
        if (slot == null) {
            slot = groupPages++;
            System.arraycopy(data, offset, group, slot * PAGE_BYTES, PAGE_BYTES);
            groupDigests[slot] = digest;
            pendingSlots.put(digest, slot);
        }
        pageMap[block][page] = PageMap.pending(slot);
        pendingRefs.add(new int[] {block, page, slot});
        if (groupPages == options.groupPageCount()) {
            flushGroup();
        }
    }

    private int extentNumber(ExtentInfo extent) {
        return extentIndex.computeIfAbsent(extent, e -> extentIndex.size());
    }

    private void flushGroup() {
        if (groupPages == 0) return;
        if (pack == null) pack = new Pack.Writer(storeDir);
        // After 4 groups in a row that did not shrink, try compressing only every 8th group: random
        // data (encrypted or already compressed pages) costs compression time and saves nothing.
        boolean probe = incompressibleStreak < 4 || ++groupsSinceProbe >= 8;
        Codec codec = probe ? options.codec() : Codec.NONE;
        ExtentInfo extent = pack.append(group, groupPages, groupDigests, codec, options.zstdLevel());
        if (probe) {
            groupsSinceProbe = 0;
            incompressibleStreak = extent.codec() == Codec.NONE ? incompressibleStreak + 1 : 0;
        }
        int number = extentNumber(extent);
        for (Map.Entry<PageDigest, Integer> e : pendingSlots.entrySet()) {
            stored.put(e.getKey(), new StoredPage(extent, e.getValue()));
        }
        for (int[] ref : pendingRefs) {
            // A page written again since (last occurrence wins) no longer holds this marker.
            if (pageMap[ref[0]][ref[1]] == PageMap.pending(ref[2])) {
                pageMap[ref[0]][ref[1]] = PageMap.stored(number, ref[2]);
            }
        }
        pendingSlots.clear();
        pendingRefs.clear();
        groupPages = 0;
    }

    @Override
    public void deviceState(byte[] fullSections, byte[] vmDescriptionJson) {
        this.deviceState = fullSections.clone();
        this.vmDescription = vmDescriptionJson == null ? null : vmDescriptionJson.clone();
    }

    /** Seals the pack, writes page map, extent table, device state and (last) the manifest, then publishes the image. */
    public Manifest commit(Manifest.Source source, String thawVersion) {
        if (headerAndConfiguration == null || blocks == null || deviceState == null) {
            throw new IllegalStateException("incomplete save: expected configuration, RAM blocks and device state, actual "
                    + (headerAndConfiguration == null ? "no configuration" : blocks == null ? "no RAM block list" : "no device state"));
        }
        for (int b = 0; b < blocks.size(); b++) {
            int missing = seen[b].nextClearBit(0);
            if (missing < blocks.get(b).pageCount()) {
                throw new IllegalStateException("incomplete save: page " + missing + " (offset 0x" + Long.toHexString(missing * 4096L)
                        + ") of RAM block '" + blocks.get(b).name() + "' never arrived");
            }
        }
        flushGroup();
        List<Manifest.PackEntry> packs = new ArrayList<>();
        long written = 0;
        FramedWriter.Written sealed = null;
        if (pack != null) {
            written = pack.payloadBytes();
            sealed = pack.seal();
            if (sharedStore) FramedWriter.syncDirectory(storeDir);
        }
        Map<UUID, Manifest.PackEntry> packEntries = new LinkedHashMap<>();
        for (ExtentInfo e : extentIndex.keySet()) {
            packEntries.computeIfAbsent(e.packId(), id -> packEntry(id));
        }
        packs.addAll(packEntries.values());
        List<UUID> packOrder = packEntries.keySet().stream().toList();
        assert sealed == null || packEntries.containsKey(pack.id());

        List<Manifest.FileEntry> files = new ArrayList<>();
        files.add(fileEntry(writePageMap(), FileKind.PAGE_MAP));
        files.add(fileEntry(writeExtentTable(packOrder), FileKind.EXTENT_TABLE));
        files.add(fileEntry(writeDeviceState(), FileKind.DEVICE_STATE));
        if (diskPages != null) diskPages.checkUnchanged(disks); // also when disks() was never called: refs need their disks
        List<DiskReferences.Ref> diskRefs = diskPages == null ? List.of() : diskPages.refs();
        if (!diskRefs.isEmpty()) files.add(fileEntry(writeDiskRefs(diskRefs), FileKind.DISK_REFS));

        Manifest.Stats stats = stats(written, files, packs);
        List<Manifest.Block> blockEntries = blocks.stream()
                .map(b -> new Manifest.Block(b.name(), b.usedByteSize(), b.pageByteSize(), b.pageCount())).toList();
        String storePath = sharedStore ? storeDir.toString() : DEFAULT_STORE;
        Manifest manifest = new Manifest(Manifest.versionFor(disks, guestFiles, !diskRefs.isEmpty(),
                diskRefs.stream().anyMatch(r -> r.layer() > 0)), imageId.toString(), Instant.now().toString(), thawVersion,
                new Manifest.Source(source.qemuVersion(), machineType, validatedCapabilities, source.vmConfig()),
                blockEntries, ramSectionId, ramSectionVersion,
                new Manifest.Storage(options.codec().name().toLowerCase(java.util.Locale.ROOT), options.zstdLevel(),
                        options.groupPageCount(), storePath, packs),
                files, stats, addressOrder ? "address" : "arrival", disks, List.copyOf(guestFiles), pageCacheDrop, null);
        byte[] manifestBody;
        try (FramedWriter out = new FramedWriter(temp.resolve(MANIFEST), FileKind.MANIFEST, imageId)) {
            manifestBody = JSON.writeValueAsBytes(manifest);
            out.write(manifestBody);
            out.finish();
        } catch (IOException e) {
            throw new ImageException.CannotWrite(temp.resolve(MANIFEST), e.toString(), e);
        }
        macKey.ifPresent(key -> ImageMac.write(temp, List.of(ImageMac.compute(key, manifestBody, manifest, temp))));
        if (!sharedStore) FramedWriter.syncDirectory(storeDir);
        FramedWriter.syncDirectory(temp);
        try {
            Files.move(temp, target, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new ImageException.CannotWrite(target, "publishing the image failed: " + e, e);
        }
        committed = true; // from here on the image exists, and a close must neither delete it nor unlist it
        try {
            FramedWriter.syncDirectory(target.getParent());
            if (sharedStore) store.registerCommitted(imageId);
        } finally {
            if (storeLock != null) storeLock.close();
        }
        return manifest;
    }

    static final ObjectMapper JSON = new ObjectMapper().findAndRegisterModules().enable(SerializationFeature.INDENT_OUTPUT);

    private Manifest.PackEntry packEntry(UUID id) {
        Path file = storeDir.resolve(Pack.fileName(id));
        try (Pack.Reader reader = new Pack.Reader(file, id)) {
            return new Manifest.PackEntry(id.toString(), Pack.fileName(id), reader.frame().fileBytes(),
                    Long.toHexString(reader.frame().fileChecksum()));
        }
    }

    private static Manifest.FileEntry fileEntry(FramedWriter.Written w, FileKind kind) {
        return new Manifest.FileEntry(w.path().getFileName().toString(), kind.name().toLowerCase(java.util.Locale.ROOT),
                w.byteSize(), Long.toHexString(w.checksum()));
    }

    private FramedWriter.Written writePageMap() {
        try (FramedWriter out = new FramedWriter(temp.resolve(PAGE_MAP), FileKind.PAGE_MAP, imageId)) {
            ByteBuffer buffer = Framing.le(8 * 4096);
            for (long[] entries : pageMap) {
                buffer.clear();
                buffer.putInt(entries.length);
                out.write(buffer.array(), 0, 4);
                for (int i = 0; i < entries.length; i += 4096) {
                    buffer.clear();
                    int n = Math.min(4096, entries.length - i);
                    for (int j = 0; j < n; j++) buffer.putLong(entries[i + j]);
                    out.write(buffer.array(), 0, n * 8);
                }
            }
            return out.finish();
        }
    }

    private FramedWriter.Written writeExtentTable(List<UUID> packOrder) {
        try (FramedWriter out = new FramedWriter(temp.resolve(EXTENT_TABLE), FileKind.EXTENT_TABLE, imageId)) {
            ByteBuffer record = Framing.le(PageMap.EXTENT_RECORD_BYTES);
            ByteBuffer count = Framing.le(4).putInt(extentIndex.size());
            out.write(count.array());
            for (ExtentInfo e : extentIndex.keySet()) {
                record.clear();
                record.putInt(packOrder.indexOf(e.packId())).putInt(0).putLong(e.offset()).putInt(e.storedBytes())
                        .put((byte) e.codec().code()).put((byte) 0).putShort((short) e.pageCount()).putLong(e.checksum());
                out.write(record.array());
            }
            return out.finish();
        }
    }

    private FramedWriter.Written writeDiskRefs(List<DiskReferences.Ref> refs) {
        try (FramedWriter out = new FramedWriter(temp.resolve(DISK_REFS), FileKind.DISK_REFS, imageId)) {
            // Version 4 (a reference into a backing file) records the identity of each backing file named, for restores to check.
            out.write(DiskReferences.encode(refs, refs.stream().anyMatch(r -> r.layer() > 0) ? diskPages.layerIdentities() : null));
            return out.finish();
        }
    }

    private FramedWriter.Written writeDeviceState() {
        try (FramedWriter out = new FramedWriter(temp.resolve(DEVICE_STATE), FileKind.DEVICE_STATE, imageId)) {
            for (byte[] part : new byte[][] {headerAndConfiguration, deviceState, vmDescription}) {
                ByteBuffer length = Framing.le(4).putInt(part == null ? -1 : part.length);
                out.write(length.array());
                if (part != null) out.write(part);
            }
            return out.finish();
        }
    }

    private Manifest.Stats stats(long written, List<Manifest.FileEntry> files, List<Manifest.PackEntry> packs) {
        long pages = 0;
        long zero = 0;
        long onDisk = 0;
        Set<Long> distinct = new HashSet<>();
        for (long[] entries : pageMap) {
            for (long e : entries) {
                pages++;
                if (e == PageMap.ZERO) zero++;
                else if (PageMap.isDiskReference(e)) onDisk++;
                else distinct.add(e);
            }
        }
        Set<Integer> ownExtents = new HashSet<>();
        long referenced = 0;
        int number = 0;
        for (ExtentInfo e : extentIndex.keySet()) {
            referenced += e.storedBytes();
            if (pack != null && e.packId().equals(pack.id())) ownExtents.add(number);
            number++;
        }
        long shared = distinct.stream().filter(e -> !ownExtents.contains(PageMap.extentOf(e))).count();
        long imageBytes = files.stream().mapToLong(Manifest.FileEntry::byteSize).sum()
                + (sharedStore ? 0 : packs.stream().mapToLong(Manifest.PackEntry::byteSize).sum());
        return new Manifest.Stats(pages, zero, distinct.size(), pages - zero - onDisk - distinct.size(), shared, written, referenced, imageBytes,
                onDisk);
    }

    /**
     * Without a commit: deletes the temporary directory and an unsealed pack, and leaves the store's list. A pack
     * sealed in a shared store stays: only gc deletes packs there.
     */
    @Override
    public void close() {
        if (diskPages != null) diskPages.close();
        if (committed) return;
        if (pack != null) pack.close();
        dev.thaw.util.FileTrees.deleteQuietly(temp);
        if (storeLock != null) {
            try {
                store.unregister(imageId);
            } finally {
                storeLock.close();
            }
        }
    }
}
