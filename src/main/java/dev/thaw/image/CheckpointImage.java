package dev.thaw.image;

import dev.thaw.migration.RamBlock;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;

/**
 * A checkpoint image opened for reading. Opening checks the frame and checksum of every metadata
 * file, the frame and index of every pack, and that the manifest's recorded sizes and checksums
 * match the files; page data is checked extent by extent as it is read ({@link #verify} reads it
 * all). Nothing here ever writes to the image. Thread-safe: pages may be read from several threads.
 */
public final class CheckpointImage implements AutoCloseable {
    private static final int PAGE_BYTES = 4096;

    private final Path directory;
    private final Manifest manifest;
    private final UUID imageId;
    private final List<RamBlock> blocks;
    private final long[][] pageMap;
    private final ExtentInfo[] extents;
    private final Map<UUID, Pack.Reader> packs = new LinkedHashMap<>();
    private final byte[] headerAndConfiguration;
    private final byte[] deviceState;
    private final byte[] vmDescription;
    private final ExtentCache cache = new ExtentCache(64);
    private final java.util.Optional<WorkingSetSection> workingSetSection;
    private final List<DiskReferences.Ref> diskRefs;
    private final List<DiskReferences.LayerIdentity> diskLayers; // format 4: the identity of each backing file a reference names
    private final java.nio.channels.FileChannel[][] diskBases; // [disk][layer], opened on the first page read from each
    private final java.util.Map<Integer, List<Path>> diskChains = new java.util.HashMap<>(); // [disk]: its base's backing chain, walked once a reference names a backing file
    private final long diskReferencePageCount;
    private final java.util.Optional<DiskBases> carriedBases; // an image fetched from object storage: where its bases' copies lie

    private final PackBytes packBytes;

    private CheckpointImage(Path directory, PackBytes packBytes) {
        this.packBytes = packBytes;
        this.directory = directory.toAbsolutePath().normalize();
        Path manifestPath = this.directory.resolve(ImageWriter.MANIFEST);
        if (!Files.isDirectory(this.directory)) {
            throw new ImageException.Missing(this.directory, "is not a directory: expected a Thaw image directory", null);
        }
        byte[] manifestBody = Manifest.readBody(manifestPath);
        this.manifest = Manifest.parse(manifestPath, manifestBody);
        this.imageId = UUID.fromString(manifest.imageId());
        if (manifest.formatVersion() < Manifest.MIN_VERSION || manifest.formatVersion() > Manifest.MAX_VERSION) {
            throw new ImageException.UnsupportedVersion(manifestPath, manifest.formatVersion(), Manifest.MIN_VERSION,
                    Manifest.MAX_VERSION);
        }
        List<RamBlock> list = new ArrayList<>();
        for (Manifest.Block b : manifest.ramBlocks()) {
            try {
                list.add(new RamBlock(b.name(), b.usedByteSize(), b.pageByteSize()));
            } catch (IllegalArgumentException e) {
                throw new ImageException.Corrupt(manifestPath, 0, e.getMessage(), e);
            }
        }
        this.blocks = List.copyOf(list);
        checkNames();
        // Before anything listed is parsed; the names were checked to stay inside the image.
        ImageMac.configured().ifPresent(key -> ImageMac.verify(key, manifestBody, manifest, this.directory));
        checkListedFiles();
        this.carriedBases = DiskBases.readIn(this.directory, manifest);
        this.pageMap = readPageMap();
        try {
            openPacks();
            ExtentInfo[] table = readExtentTable();
            this.workingSetSection = readWorkingSetSection();
            // The working set's pages are read from its own copy, laid out in queue order: its extents follow the table's.
            this.extents = workingSetSection.map(w -> concat(table, w.extents())).orElse(table);
            byte[][] device = readDeviceState();
            this.headerAndConfiguration = device[0];
            this.deviceState = device[1];
            this.vmDescription = device[2];
            DiskReferences.Table refTable = readDiskRefs();
            this.diskRefs = refTable.refs();
            this.diskLayers = refTable.layers();
            this.diskBases = new java.nio.channels.FileChannel[manifest.disks().size()][];
            this.diskReferencePageCount = checkPageMapReferences();
            workingSetSection.ifPresent(w -> remap(w, table.length));
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    private static ExtentInfo[] concat(ExtentInfo[] a, List<ExtentInfo> b) {
        ExtentInfo[] out = java.util.Arrays.copyOf(a, a.length + b.size());
        for (int i = 0; i < b.size(); i++) out[a.length + i] = b.get(i);
        return out;
    }

    private java.util.Optional<WorkingSetSection> readWorkingSetSection() {
        List<Manifest.FileEntry> sections = manifest.files().stream().filter(f -> f.kind().equals("working_set")).toList();
        if (sections.isEmpty()) return java.util.Optional.empty();
        if (sections.size() > 1) {
            throw new ImageException.Corrupt(file(ImageWriter.MANIFEST), 0, "expected at most one working-set section, actual "
                    + sections.stream().map(Manifest.FileEntry::name).toList());
        }
        Path path = file(sections.getFirst().name());
        int[] counts = blocks.stream().mapToInt(RamBlock::pageCount).toArray();
        WorkingSetSection section = WorkingSetSection.decode(path, listedBody(sections.getFirst().name(), FileKind.WORKING_SET), counts);
        if (!section.extents().isEmpty() && !packs.containsKey(section.packId())) {
            throw new ImageException.Corrupt(path, 0, "working-set pack " + section.packId() + ": expected one of the manifest's packs "
                    + packs.keySet());
        }
        return java.util.Optional.of(section);
    }

    /** Points the working set's non-zero pages at their queue-order copies; a page zero in the image must stay zero. */
    private void remap(WorkingSetSection section, int firstExtent) {
        Path path = file(ImageWriter.MANIFEST);
        List<dev.thaw.estimate.WorkingSet.Entry> entries = section.workingSet().entries();
        for (int i = 0; i < entries.size(); i++) {
            dev.thaw.estimate.PageRef p = entries.get(i).page();
            long loc = section.locations()[i];
            boolean zero = pageMap[p.block()][p.page()] == PageMap.ZERO;
            if (zero != (loc == PageMap.ZERO)) {
                throw new ImageException.Corrupt(path, 0, "working set entry " + i + " (block " + p.block() + " page " + p.page()
                        + "): expected a copy exactly when the page is not zero, actual " + (zero ? "a copy of a zero page" : "no copy"));
            }
            if (!zero) pageMap[p.block()][p.page()] = PageMap.stored(firstExtent + PageMap.extentOf(loc), PageMap.slotOf(loc));
        }
    }

    /** The image's working-set estimate, if a save or {@code thaw ws --learn} attached one. */
    public java.util.Optional<dev.thaw.estimate.WorkingSet> workingSet() {
        return workingSetSection.map(WorkingSetSection::workingSet);
    }

    /** How the working set's pages are laid out: copies in queue order, in extents of their own pack. */
    public record WorkingSetLayout(long copiedPageCount, int extentCount, long storedBytes) {}

    public java.util.Optional<WorkingSetLayout> workingSetLayout() {
        return workingSetSection.map(w -> new WorkingSetLayout(java.util.Arrays.stream(w.locations()).filter(l -> l != PageMap.ZERO).count(),
                w.extents().size(), w.extents().stream().mapToLong(e -> ExtentInfo.EXTENT_HEADER_BYTES + e.storedBytes()).sum()));
    }

    /** When the manifest was last written: the save, or the latest working-set attach. */
    public java.time.Instant manifestModified() {
        try {
            return Files.getLastModifiedTime(file(ImageWriter.MANIFEST)).toInstant();
        } catch (IOException e) {
            throw new ImageException.Missing(file(ImageWriter.MANIFEST), "cannot be read: " + e, e);
        }
    }

    /** The pack holding the working set's queue-order copies, if the image has a non-empty working-set section. */
    java.util.Optional<UUID> workingSetPackId() {
        return workingSetSection.map(WorkingSetSection::packId);
    }

    /** Opens an image; throws {@link ImageException} naming the file and offset of the first problem. */
    public static CheckpointImage open(Path directory) {
        return new CheckpointImage(directory, PackBytes.LOCAL);
    }

    /**
     * Opens an image whose packs may not all be local yet: each extent's bytes are asked of {@code packBytes} before they
     * are read (the frames and indexes of the packs must be local). The checks are those of {@link #open(Path)}.
     */
    public static CheckpointImage open(Path directory, PackBytes packBytes) {
        return new CheckpointImage(directory, packBytes);
    }

    public Path directory() {
        return directory;
    }

    public Manifest manifest() {
        return manifest;
    }

    public List<RamBlock> ramBlocks() {
        return blocks;
    }

    public byte[] headerAndConfiguration() {
        return headerAndConfiguration.clone();
    }

    public byte[] deviceState() {
        return deviceState.clone();
    }

    /** The VMDESCRIPTION JSON QEMU sent after the device state, or null. */
    public byte[] vmDescription() {
        return vmDescription == null ? null : vmDescription.clone();
    }

    public Path storeDirectory() {
        return Store.directoryOf(manifest, directory);
    }

    private void checkListedFiles() {
        for (Manifest.FileEntry f : manifest.files()) {
            Path p = directory.resolve(f.name());
            try {
                long size = Files.size(p);
                if (size != f.byteSize()) {
                    throw new ImageException.Corrupt(p, Math.min(size, f.byteSize()), "expected " + f.byteSize()
                            + " bytes (manifest), actual " + size);
                }
            } catch (IOException e) {
                throw new ImageException.Missing(p, "is missing: the manifest lists it", e);
            }
        }
    }

    /** A listed file's body, checked against the manifest's record of it (checksum) as well as its own frame. */
    private byte[] listedBody(String name, FileKind kind) {
        Manifest.FileEntry entry = manifest.files().stream().filter(f -> f.name().equals(name)).findFirst().orElseThrow(
                () -> new ImageException.Corrupt(file(ImageWriter.MANIFEST), 0, "expected " + name + " among the manifest's files, actual "
                        + manifest.files().stream().map(Manifest.FileEntry::name).toList()));
        return Framing.readWholeBody(file(name), kind, imageId, entry.checksum());
    }

    /**
     * Names in the manifest must stay inside the image (and packs inside the store), since opening follows them and a
     * working-set attach deletes the ones it replaces: plain file names, packs named after their id, and a relative
     * store directory only as {@code store}.
     */
    private void checkNames() {
        checkNames(file(ImageWriter.MANIFEST), manifest);
    }

    /** Names an image directory holds besides its manifest's files: no listed file may take one. */
    private static final java.util.Set<String> RESERVED_NAMES = java.util.Set.of(ImageWriter.MANIFEST, DiskBases.FILE, DiskBases.DIRECTORY);

    /** {@link #checkNames()} for a manifest read elsewhere (a fetched one, before anything is written by its names). */
    static void checkNames(Path path, Manifest manifest) {
        for (Manifest.FileEntry f : manifest.files()) {
            // The carried list of disk bases and its copies' directory are written by a fetch before the listed files.
            if (!f.name().matches("[A-Za-z0-9][A-Za-z0-9._-]*") || RESERVED_NAMES.contains(f.name())) {
                throw new ImageException.Corrupt(path, 0, "file name: expected a plain file name inside the image other than "
                        + RESERVED_NAMES + ", actual '" + f.name() + "'");
            }
        }
        for (Manifest.PackEntry p : manifest.storage().packs()) {
            String expected;
            try {
                expected = Pack.fileName(UUID.fromString(p.packId()));
            } catch (IllegalArgumentException e) {
                throw new ImageException.Corrupt(path, 0, "pack id: expected a UUID, actual '" + p.packId() + "'", e);
            }
            if (!p.file().equals(expected)) {
                throw new ImageException.Corrupt(path, 0, "pack file name: expected '" + expected + "', actual '" + p.file() + "'");
            }
        }
        String store = manifest.storage().storeDirectory();
        if (store == null || !(Path.of(store).isAbsolute() || store.equals(ImageWriter.DEFAULT_STORE))) {
            throw new ImageException.Corrupt(path, 0, "store directory: expected an absolute path or '" + ImageWriter.DEFAULT_STORE
                    + "', actual '" + store + "'");
        }
    }

    private Path file(String name) {
        return directory.resolve(name);
    }

    private long[][] readPageMap() {
        Path path = file(ImageWriter.PAGE_MAP);
        ByteBuffer body = ByteBuffer.wrap(listedBody(ImageWriter.PAGE_MAP, FileKind.PAGE_MAP)).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        long[][] map = new long[blocks.size()][];
        for (int b = 0; b < blocks.size(); b++) {
            long at = Framing.HEADER_BYTES + body.position();
            if (body.remaining() < 4) {
                throw new ImageException.Corrupt(path, at, "truncated: expected the page count of block '" + blocks.get(b).name() + "'");
            }
            int count = body.getInt();
            if (count != blocks.get(b).pageCount() || body.remaining() < count * 8L) {
                throw new ImageException.Corrupt(path, at, "block '" + blocks.get(b).name() + "': expected " + blocks.get(b).pageCount()
                        + " pages (manifest), actual " + count + " with " + body.remaining() / 8 + " entries left");
            }
            map[b] = new long[count];
            for (int i = 0; i < count; i++) map[b][i] = body.getLong();
        }
        if (body.hasRemaining()) {
            throw new ImageException.Corrupt(path, Framing.HEADER_BYTES + body.position(), "expected the end of the page map, actual "
                    + body.remaining() + " more bytes");
        }
        return map;
    }

    private void openPacks() {
        Path store = storeDirectory();
        for (Manifest.PackEntry entry : manifest.storage().packs()) {
            UUID id = UUID.fromString(entry.packId());
            Path path = store.resolve(entry.file());
            if (!Files.isRegularFile(path)) {
                throw new ImageException.Missing(path, "is missing: the manifest lists pack " + id, null);
            }
            Pack.Reader reader = new Pack.Reader(path, id, packBytes);
            packs.put(id, reader);
            if (reader.frame().fileBytes() != entry.byteSize() || !Long.toHexString(reader.frame().fileChecksum()).equals(entry.checksum())) {
                throw new ImageException.Corrupt(path, 0, "expected " + entry.byteSize() + " bytes with checksum " + entry.checksum()
                        + " (manifest), actual " + reader.frame().fileBytes() + " bytes with checksum "
                        + Long.toHexString(reader.frame().fileChecksum()));
            }
            // The pack's index (a SHA-256 per page, for saves that share the store) is not read here: a restore never uses it,
            // and at 4 GiB reading and checking it took 0.2 s warm, 0.7 s of a fresh JVM's open. Store and Pack.verify check
            // its checksum before they use it.
        }
    }

    private ExtentInfo[] readExtentTable() {
        Path path = file(ImageWriter.EXTENT_TABLE);
        ByteBuffer body = ByteBuffer.wrap(listedBody(ImageWriter.EXTENT_TABLE, FileKind.EXTENT_TABLE)).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        if (body.remaining() < 4) {
            throw new ImageException.Corrupt(path, Framing.HEADER_BYTES, "truncated: expected the extent count, actual a body of "
                    + body.remaining() + " bytes");
        }
        int count = body.getInt();
        if (count < 0 || body.remaining() != (long) count * PageMap.EXTENT_RECORD_BYTES) {
            throw new ImageException.Corrupt(path, Framing.HEADER_BYTES, "expected " + count + " extent records, actual "
                    + body.remaining() + " bytes of records");
        }
        List<UUID> packIds = new ArrayList<>(packs.keySet());
        ExtentInfo[] table = new ExtentInfo[count];
        for (int i = 0; i < count; i++) {
            long at = Framing.HEADER_BYTES + body.position();
            int pack = body.getInt();
            body.getInt();
            ExtentInfo e = ExtentInfo.read(body, pack >= 0 && pack < packIds.size() ? packIds.get(pack) : null);
            if (e.packId() == null || !e.plausible()) {
                throw new ImageException.Corrupt(path, at, "extent " + i + ": expected a pack number < " + packIds.size()
                        + ", a valid codec and 1-256 pages, actual pack " + pack + ", codec " + e.codec() + ", " + e.pageCount() + " pages");
            }
            table[i] = e;
        }
        return table;
    }

    private byte[][] readDeviceState() {
        Path path = file(ImageWriter.DEVICE_STATE);
        ByteBuffer body = ByteBuffer.wrap(listedBody(ImageWriter.DEVICE_STATE, FileKind.DEVICE_STATE)).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        byte[][] parts = new byte[3][];
        String[] names = {"header and configuration", "device state", "VM description"};
        for (int i = 0; i < 3; i++) {
            long at = Framing.HEADER_BYTES + body.position();
            int length = body.remaining() >= 4 ? body.getInt() : -2;
            if (length == -1 && i == 2) continue;
            if (length < 0 || length > body.remaining()) {
                throw new ImageException.Corrupt(path, at, names[i] + ": expected a length of 0.." + body.remaining() + ", actual " + length);
            }
            parts[i] = new byte[length];
            body.get(parts[i]);
        }
        if (body.hasRemaining()) {
            throw new ImageException.Corrupt(path, Framing.HEADER_BYTES + body.position(), "expected the end of the device state file, actual "
                    + body.remaining() + " more bytes");
        }
        return parts;
    }

    /** The disk-reference table (format version 3 or 4), empty when the image lists none. */
    private DiskReferences.Table readDiskRefs() {
        if (manifest.files().stream().noneMatch(f -> f.name().equals(ImageWriter.DISK_REFS))) return new DiskReferences.Table(List.of(), List.of());
        List<Long> sizes = manifest.disks().stream().map(d -> d.identity().byteSize()).toList();
        int maxLayer = manifest.formatVersion() >= Manifest.VERSION_WITH_BACKING_REFS ? Qcow2Chain.MAX_LAYERS : 0;
        return DiskReferences.decode(file(ImageWriter.DISK_REFS), listedBody(ImageWriter.DISK_REFS, FileKind.DISK_REFS), sizes, maxLayer);
    }

    /** Checks every entry names an extent slot or a disk reference there is; returns how many are disk references. */
    private long checkPageMapReferences() {
        Path path = file(ImageWriter.PAGE_MAP);
        long onDisk = 0;
        for (int b = 0; b < pageMap.length; b++) {
            for (int i = 0; i < pageMap[b].length; i++) {
                long e = pageMap[b][i];
                if (e == PageMap.ZERO) continue;
                if (PageMap.isDiskReference(e)) {
                    if (PageMap.diskReferenceOf(e) >= diskRefs.size()) {
                        throw new ImageException.Corrupt(path, -1, "block '" + blocks.get(b).name() + "' page " + i + ": expected a disk reference below "
                                + diskRefs.size() + ", actual " + PageMap.diskReferenceOf(e));
                    }
                    onDisk++;
                    continue;
                }
                int extent = PageMap.extentOf(e);
                if (e < 0 || extent < 0 || extent >= extents.length || PageMap.slotOf(e) >= extents[extent].pageCount()) {
                    throw new ImageException.Corrupt(path, -1, "block '" + blocks.get(b).name() + "' page " + i + String.format(
                            ": expected a zero page or a reference into %d extents, actual entry 0x%016x", extents.length, e));
                }
            }
        }
        return onDisk;
    }

    /** Pages this image takes from its disk bases (format version 3), and the distinct blocks they name. */
    public record DiskReferenceCounts(long pageCount, int blockCount) {
        public long byteSize() {
            return pageCount * PAGE_BYTES;
        }
    }

    public DiskReferenceCounts diskReferences() {
        return new DiskReferenceCounts(diskReferencePageCount, diskRefs.size());
    }

    public boolean isZero(int block, int page) {
        return pageMap[block][page] == PageMap.ZERO;
    }

    /** Copies the page into {@code out[offset..]}; returns false (and copies nothing) for a zero page. */
    public boolean readPage(int block, int page, byte[] out, int offset) {
        long e = pageMap[block][page];
        if (e == PageMap.ZERO) return false;
        if (PageMap.isDiskReference(e)) {
            readDiskPage(PageMap.diskReferenceOf(e), out, offset);
            return true;
        }
        int number = PageMap.extentOf(e);
        int at = PageMap.slotOf(e) * PAGE_BYTES;
        if (cache.copy(number, at, out, offset)) return true;
        ExtentInfo info = extents[number];
        byte[] raw = cache.spare(info.pageCount() * PAGE_BYTES);
        packs.get(info.packId()).readExtent(info, raw);
        System.arraycopy(raw, at, out, offset, PAGE_BYTES); // before put: once cached, an eviction may hand raw to another read
        cache.put(number, raw);
        return true;
    }

    /**
     * Reads a referenced page from its disk base and checks it against the SHA-256 recorded at the save: a base written
     * since (whatever its identity says) is an error naming the disk and offset.
     */
    private void readDiskPage(int number, byte[] out, int offset) {
        DiskReferences.Ref ref = diskRefs.get(number);
        Manifest.Disk disk = manifest.disks().get(ref.disk());
        Path base = diskBase(ref.disk());
        String block = "disk " + disk.node() + (ref.layer() == 0 ? "" : " backing layer " + ref.layer()) + " block at offset " + ref.byteOffset();
        ByteBuffer into = ByteBuffer.wrap(out, offset, PAGE_BYTES);
        Path file = base;
        try {
            DiskFile opened = diskFile(ref.disk(), ref.layer(), base);
            file = opened.path();
            while (into.hasRemaining()) {
                if (opened.channel().read(into, ref.byteOffset() + into.position() - offset) < 0) {
                    throw new ImageException.Missing(file, block + ": expected 4096 bytes, actual " + (into.position() - offset) + " (end of file)", null);
                }
            }
        } catch (IOException e) {
            throw new ImageException.Missing(file, block + " cannot be read: " + e, e);
        }
        PageDigest actual = PageDigest.of(out, offset, PAGE_BYTES);
        if (!actual.equals(ref.digest())) {
            throw new ImageException.Corrupt(file, ref.byteOffset(), block + " (a page of image " + directory + "): expected SHA-256 "
                    + ref.digest() + ", actual " + actual + " (the " + (ref.layer() == 0 ? "base" : "backing file") + " changed since the save)");
        }
    }

    private record DiskFile(Path path, java.nio.channels.FileChannel channel) {}

    /**
     * Layer 0 is the base; a deeper layer is found by following the base's qcow2 headers ({@link Qcow2Chain}) down to it,
     * as the save did.
     */
    private DiskFile diskFile(int disk, int layer, Path base) throws IOException {
        synchronized (diskBases) {
            if (diskBases[disk] == null) diskBases[disk] = new java.nio.channels.FileChannel[Qcow2Chain.MAX_LAYERS + 1];
            Path file = base;
            if (layer > 0) {
                // Walked down to the layer needed only (again when a later reference names a deeper one): a file below it
                // that cannot be read must not fail the pages above it.
                List<Path> chain = diskChains.get(disk);
                if (chain == null || layer >= chain.size()) diskChains.put(disk, chain = chainOf(disk, base, layer));
                if (layer >= chain.size()) {
                    throw new ImageException.Missing(base, "disk " + manifest.disks().get(disk).node() + ": expected a backing chain of at least "
                            + (layer + 1) + " files (a reference names layer " + layer + "), actual " + chain, null);
                }
                file = chain.get(layer);
            }
            // Checked to be a regular file or a block device first: a FIFO's open would block, and every read with it (the lock).
            if (diskBases[disk][layer] == null) diskBases[disk][layer] = Qcow2Chain.open(file);
            return new DiskFile(file, diskBases[disk][layer]);
        }
    }

    /** Disk {@code disk}'s chain down to layer {@code layer}: the carried copies, or the base's headers walked. */
    private List<Path> chainOf(int disk, Path base, int layer) throws IOException {
        if (carriedBases.isPresent()) {
            List<Path> all = carriedBases.get().chainOf(directory, disk);
            return all.subList(0, Math.min(all.size(), layer + 1));
        }
        return Qcow2Chain.upTo(base, layer);
    }

    /**
     * Where disk {@code disk}'s base is read from: the manifest's path, or for an image that carries its bases (fetched
     * from object storage, {@link DiskBases}) its copy's.
     */
    public Path diskBase(int disk) {
        return carriedBases.map(b -> b.fileOf(directory, disk, 0)).orElseGet(() -> Path.of(manifest.disks().get(disk).base()));
    }

    /** The copies of the image's bases and their chains, for an image that carries them (fetched from object storage). */
    public java.util.Optional<DiskBases> carriedBases() {
        return carriedBases;
    }

    /**
     * Before a restore starts QEMU (format version 4): each backing file a reference names, found by walking its base's chain
     * down to the reference's layer as {@link #readPage} does, compared with the identity the save recorded for it; what
     * differs (or cannot be read), in words, one entry per file; empty when all match.
     */
    public List<String> backingFileChanges() {
        List<String> changes = new java.util.ArrayList<>();
        for (DiskReferences.LayerIdentity l : diskLayers) {
            Manifest.Disk disk = manifest.disks().get(l.disk());
            String what = "disk " + disk.node() + " backing layer " + l.layer();
            try {
                List<Path> chain = chainOf(l.disk(), diskBase(l.disk()), l.layer());
                if (l.layer() >= chain.size()) {
                    changes.add(what + ": expected a backing chain of at least " + (l.layer() + 1) + " files, actual " + chain);
                    continue;
                }
                List<String> changed = l.identity().differencesTo(DiskIdentity.of(chain.get(l.layer())));
                if (!changed.isEmpty()) changes.add(what + " (" + chain.get(l.layer()) + ") changed since the save: " + String.join("; ", changed));
            } catch (IOException | java.nio.file.InvalidPathException e) {
                changes.add(what + " cannot be read: " + e.getMessage());
            }
        }
        return List.copyOf(changes);
    }

    /** Result of {@link #verify}; {@code diskPageCount}: referenced disk blocks read from their bases and checked. */
    public record VerifyReport(long fileCount, long byteCount, long extentCount, long pageCount, long diskPageCount) {}

    /**
     * Reads every byte of every file of the image and checks every checksum: frames, whole-file
     * checksums, every extent, every stored page's SHA-256 against its pack's index, and every block the image takes from
     * a disk base against the SHA-256 recorded for it.
     * Throws {@link ImageException} at the first mismatch.
     */
    public VerifyReport verify() {
        long bytes = 0;
        long files = 0;
        for (Manifest.FileEntry f : manifest.files()) {
            listedBody(f.name(), FileKind.valueOf(f.kind().toUpperCase(java.util.Locale.ROOT)));
            bytes += f.byteSize();
            files++;
        }
        Framing.readWholeBody(file(ImageWriter.MANIFEST), FileKind.MANIFEST, imageId);
        files++;
        long pagesChecked = 0;
        for (Pack.Reader reader : packs.values()) {
            reader.verifyFileChecksum();
            bytes += reader.frame().fileBytes();
            files++;
            pagesChecked += reader.verifyExtents(java.util.Arrays.asList(extents));
        }
        return new VerifyReport(files, bytes, extents.length, pagesChecked, verifyDiskReferences());
    }

    /** Reads every block the image takes from a disk base and checks it against its recorded SHA-256; returns how many. */
    public long verifyDiskReferences() {
        byte[] page = new byte[PAGE_BYTES];
        for (int i = 0; i < diskRefs.size(); i++) readDiskPage(i, page, 0);
        return diskRefs.size();
    }

    @Override
    public void close() {
        for (Pack.Reader r : packs.values()) r.close();
        if (diskBases != null) {
            for (java.nio.channels.FileChannel[] layers : diskBases) for (java.nio.channels.FileChannel c : layers == null ? new java.nio.channels.FileChannel[0] : layers) {
                try {
                    if (c != null) c.close();
                } catch (IOException e) {
                    // opened read-only
                }
            }
        }
    }

    /**
     * Recently decompressed extents, so that reading pages in store order decompresses each extent once.
     * Pages are copied out under the lock: an evicted array is reused for the next extent read, which
     * spares a 64 KiB allocation per miss on the demand-fault path.
     */
    private static final class ExtentCache {
        private final LinkedHashMap<Integer, byte[]> entries;
        private byte[] spare;

        ExtentCache(int capacity) {
            this.entries = new LinkedHashMap<>(capacity * 2, 0.75f, true) {
                @Override
                protected boolean removeEldestEntry(Map.Entry<Integer, byte[]> eldest) {
                    if (size() <= capacity) return false;
                    spare = eldest.getValue();
                    return true;
                }
            };
        }

        synchronized boolean copy(int extent, int at, byte[] out, int offset) {
            byte[] raw = entries.get(extent);
            if (raw == null) return false;
            System.arraycopy(raw, at, out, offset, PAGE_BYTES);
            return true;
        }

        /** An array of exactly this length for the next extent read: the last evicted one if it fits. */
        synchronized byte[] spare(int length) {
            byte[] a = spare;
            if (a != null && a.length == length) {
                spare = null;
                return a;
            }
            return new byte[length];
        }

        synchronized void put(int extent, byte[] raw) {
            entries.put(extent, raw);
        }
    }
}
