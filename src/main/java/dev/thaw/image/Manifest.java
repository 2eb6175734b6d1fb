package dev.thaw.image;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;

/**
 * The image's description, the body of {@code manifest.thaw}: written last, so an image is
 * complete exactly when its manifest exists. JSON, for people and tools; the frame around it
 * carries the checksum.
 *
 * <p>Format version 1 is an image of a guest Thaw booted; version {@value #VERSION_WITH_DISKS} adds {@code disks} and
 * {@code guestFiles} (a QEMU Thaw did not start), written only when the image has them, so that a reader that knows
 * nothing of disks refuses such an image instead of restoring the guest without its disks (the readers before version 2
 * already fail on the JSON fields they do not know; later ones name the version).
 *
 * @param disks      the guest's disks, each a frozen base outside the image (empty for version 1)
 * <p>{@code pageCacheDrop} is written only by a save that dropped the guest's clean page cache first, and changes nothing a
 * restore does: it says why the guest's cache is cold after a restore. The format version stays (1 or 2), so every
 * reader of this one reads an image without it as before; the readers before it refuse an image with it, naming the
 * unknown field, as they do any field they do not know.
 *
 * <p>{@code diskBasesSha256} is written by a push of an image with disks into the manifest it uploads: the SHA-256 of the
 * list of the disks' bases it uploads ({@link DiskBases#sha256()}), which binds that list (which files QEMU opens, which
 * SHA-256s their copies are checked against) to the manifest and so to its MAC. Readers before it refuse it, naming it.
 *
 * <p>A disk's {@code bootIndex} is written only for a disk that has one, so an image of a guest without one reads as before;
 * readers before it refuse one with it, naming the field. An image of a QEMU Thaw did not start may also record, in its
 * saved configuration's {@code extraArgs}, arguments older readers do not allow ({@code -device e1000} or {@code e1000e},
 * {@code -boot}, {@code -nic none}, a virtio NIC's {@code vectors=}): they refuse such an image by that argument.
 *
 * @param guestFiles    the guest's kernel and initrd (or its -bios firmware), copied into the image (empty for version 1)
 * @param pageCacheDrop the save dropped the guest's clean page cache before it stopped the guest; null (absent): it did not
 */
public record Manifest(int formatVersion, String imageId, String createdAt, String thawVersion,
                       Source source, List<Block> ramBlocks, int ramSectionId, int ramSectionVersion,
                       Storage storage, List<FileEntry> files, Stats stats, String pageOrder, List<Disk> disks,
                       List<GuestFile> guestFiles,
                       @com.fasterxml.jackson.annotation.JsonInclude(com.fasterxml.jackson.annotation.JsonInclude.Include.NON_NULL)
                       PageCacheDrop pageCacheDrop,
                       @com.fasterxml.jackson.annotation.JsonInclude(com.fasterxml.jackson.annotation.JsonInclude.Include.NON_NULL)
                       String diskBasesSha256) {
    private static final ObjectMapper JSON = new ObjectMapper().findAndRegisterModules();
    public static final int VERSION_WITH_DISKS = 2;
    /** Pages taken from the disk bases: a disk-reference table and page-map entries naming it. */
    public static final int VERSION_WITH_DISK_REFS = 3;
    /** Disk references may also name a block of a base's backing file (a layer of its qcow2 chain). */
    public static final int VERSION_WITH_BACKING_REFS = 4;
    public static final int MIN_VERSION = 1;
    public static final int MAX_VERSION = VERSION_WITH_BACKING_REFS;
    /** Where an image keeps the guest files it carries. */
    public static final String GUEST_FILES_DIRECTORY = "guest";
    private static final java.util.regex.Pattern GUEST_FILE_ROLE = java.util.regex.Pattern.compile("kernel|initrd|firmware|flash[01]");

    public Manifest {
        disks = disks == null ? List.of() : disks;
        guestFiles = guestFiles == null ? List.of() : guestFiles;
    }

    /** The version an image with these disks and guest files is written as: the lowest that describes it. */
    static int versionFor(List<Disk> disks, List<GuestFile> guestFiles, boolean diskRefs) {
        return versionFor(disks, guestFiles, diskRefs, false);
    }

    /** Version 4 only for an image with references into backing files, 3 for references into bases alone, as before otherwise. */
    static int versionFor(List<Disk> disks, List<GuestFile> guestFiles, boolean diskRefs, boolean backingRefs) {
        if (backingRefs) return VERSION_WITH_BACKING_REFS;
        if (diskRefs) return VERSION_WITH_DISK_REFS;
        return disks.isEmpty() && guestFiles.isEmpty() ? Framing.FORMAT_VERSION : VERSION_WITH_DISKS;
    }

    /** The same manifest with another working-set section's file list (a working-set attach). */
    Manifest withFiles(List<FileEntry> newFiles, Storage newStorage) {
        return new Manifest(formatVersion, imageId, createdAt, thawVersion, source, ramBlocks, ramSectionId, ramSectionVersion,
                newStorage, newFiles, stats, pageOrder, disks, guestFiles, pageCacheDrop, diskBasesSha256);
    }

    /** The same manifest recording another list of disk bases ({@link DiskBases#sha256()}; a push). */
    Manifest withDiskBasesSha256(String sha256) {
        return new Manifest(formatVersion, imageId, createdAt, thawVersion, source, ramBlocks, ramSectionId, ramSectionVersion,
                storage, files, stats, pageOrder, disks, guestFiles, pageCacheDrop, sha256);
    }

    /** Reads and checks {@code manifest.thaw} (frame, checksum, JSON). */
    static Manifest read(Path manifestFile) {
        return parse(manifestFile, readBody(manifestFile));
    }

    /** The checked body of {@code manifest.thaw}: what {@link ImageMac} covers. */
    static byte[] readBody(Path manifestFile) {
        return Framing.readWholeBody(manifestFile, FileKind.MANIFEST, null);
    }

    /** Builds the JSON reader of a manifest ahead of the first image opened (the CLI's preload: cold code, tens of ms). */
    public static void preload() {
        JSON.readerFor(Manifest.class);
    }

    static Manifest parse(Path manifestFile, byte[] body) {
        Manifest m;
        try {
            m = JSON.readValue(body, Manifest.class);
        } catch (IOException e) {
            throw new ImageException.Corrupt(manifestFile, Framing.HEADER_BYTES, "manifest JSON does not parse: " + e.getMessage(), e);
        }
        m.check(manifestFile);
        return m;
    }

    /** Kinds a manifest may list (the manifest and packs are not listed files). */
    private static final List<String> LISTED_KINDS = java.util.stream.Stream.of(FileKind.PAGE_MAP, FileKind.EXTENT_TABLE,
            FileKind.DEVICE_STATE, FileKind.WORKING_SET, FileKind.DISK_REFS).map(k -> k.name().toLowerCase(java.util.Locale.ROOT)).toList();

    /**
     * What readers take for granted: JSON gives null for a field that is absent or null, and whoever wrote the manifest
     * chose its strings, so each field readers use is checked here, once, for every reader (open, ws, rm, gc).
     */
    private void check(Path file) {
        try {
            java.util.UUID.fromString(require(file, imageId, "imageId"));
        } catch (IllegalArgumentException e) {
            throw corrupt(file, "imageId: expected a UUID, actual '" + imageId + "'");
        }
        require(file, source, "source");
        for (Block b : require(file, ramBlocks, "ramBlocks")) require(file, require(file, b, "ramBlocks[]").name(), "ramBlocks[].name");
        require(file, stats, "stats");
        require(file, require(file, storage, "storage").storeDirectory(), "storage.storeDirectory");
        if (!List.of("zstd", "lz4", "none").contains(require(file, storage.codec(), "storage.codec"))) {
            throw corrupt(file, "storage.codec: expected zstd, lz4 or none, actual '" + storage.codec() + "'");
        }
        if (storage.groupPageCount() < 1 || storage.groupPageCount() > ExtentInfo.MAX_PAGES) {
            throw corrupt(file, "storage.groupPageCount: expected 1-" + ExtentInfo.MAX_PAGES + ", actual " + storage.groupPageCount());
        }
        for (PackEntry p : require(file, storage.packs(), "storage.packs")) {
            require(file, require(file, p, "storage.packs[]").packId(), "storage.packs[].packId");
            require(file, p.file(), "storage.packs[].file");
            require(file, p.checksum(), "storage.packs[].checksum");
        }
        if (formatVersion < VERSION_WITH_DISKS && (!disks.isEmpty() || !guestFiles.isEmpty())) {
            throw corrupt(file, "formatVersion: expected " + VERSION_WITH_DISKS + " for an image with disks or guest files, actual "
                    + formatVersion);
        }
        boolean diskRefs = files != null && files.stream().anyMatch(f -> f != null && "disk_refs".equals(f.kind()));
        if (diskRefs != (formatVersion >= VERSION_WITH_DISK_REFS) || diskRefs && disks.isEmpty()) {
            throw corrupt(file, "formatVersion: expected " + VERSION_WITH_DISK_REFS + " exactly when the image lists disk references"
                    + " (and then disks), actual " + formatVersion + (diskRefs ? " with" : " without") + " disk references and " + disks.size() + " disks");
        }
        for (Disk d : disks) {
            require(file, require(file, d, "disks[]").node(), "disks[].node");
            require(file, d.base(), "disks[].base");
            require(file, d.format(), "disks[].format");
            require(file, d.pciAddress(), "disks[].pciAddress");
            require(file, require(file, d.identity(), "disks[].identity").modifiedAt(), "disks[].identity.modifiedAt");
            require(file, d.identity().headTailSha256(), "disks[].identity.headTailSha256");
            // Repeated as bootindex= on a restore's command line, which QemuOption allows as 0-999.
            if (d.bootIndex() != null && (d.bootIndex() < 0 || d.bootIndex() > Disk.MAX_BOOT_INDEX)) {
                throw corrupt(file, "disks[].bootIndex of " + d.node() + ": expected 0-" + Disk.MAX_BOOT_INDEX + " or absent, actual "
                        + d.bootIndex());
            }
        }
        for (GuestFile g : guestFiles) {
            require(file, require(file, g, "guestFiles[]").sha256(), "guestFiles[].sha256");
            if (!GUEST_FILE_ROLE.matcher(require(file, g.role(), "guestFiles[].role")).matches()) {
                throw corrupt(file, "guestFiles[].role: expected kernel, initrd, firmware, flash0 or flash1, actual '" + g.role() + "'");
            }
        }
        if (diskBasesSha256 != null && (disks.isEmpty() || !diskBasesSha256.matches("[0-9a-f]{64}"))) {
            throw corrupt(file, "diskBasesSha256: expected the SHA-256 (64 hex digits) of the list of an image's disk bases, and disks,"
                    + " actual '" + diskBasesSha256 + "' and " + disks.size() + " disks");
        }
        if (pageCacheDrop != null) {
            if (pageCacheDrop.dropCachesValue() < 1 || pageCacheDrop.dropCachesValue() > 3) {
                throw corrupt(file, "pageCacheDrop.dropCachesValue: expected 1-3, actual " + pageCacheDrop.dropCachesValue());
            }
            if (pageCacheDrop.pageCacheBytesBefore() < 0 || pageCacheDrop.pageCacheBytesAfter() < 0 || pageCacheDrop.dropNanos() < 0) {
                throw corrupt(file, "pageCacheDrop: expected byte counts and time >= 0, actual " + pageCacheDrop);
            }
        }
        for (FileEntry f : require(file, files, "files")) {
            require(file, require(file, f, "files[]").name(), "files[].name");
            require(file, f.checksum(), "files[].checksum"); // null would skip the comparison with the file's own checksum
            if (!LISTED_KINDS.contains(require(file, f.kind(), "files[].kind"))) {
                throw corrupt(file, "files[].kind of " + f.name() + ": expected one of " + LISTED_KINDS + ", actual '" + f.kind() + "'");
            }
        }
    }

    /** A field every manifest Thaw writes has. */
    private static <T> T require(Path file, T value, String field) {
        if (value == null) throw corrupt(file, field + ": expected a value, actual none (null or absent)");
        return value;
    }

    private static ImageException.Corrupt corrupt(Path file, String detail) {
        return new ImageException.Corrupt(file, Framing.HEADER_BYTES, "manifest " + detail);
    }


    /**
     * What a restore needs to start an identical QEMU.
     *
     * @param vmConfig the launch configuration (the {@code qemu} package's VmConfig as JSON), or null
     */
    public record Source(String qemuVersion, String machineType, List<String> validatedCapabilities, JsonNode vmConfig) {}

    /**
     * A disk of the saved guest: a file outside the image, frozen at the save (the guest went on, if at all, on an overlay),
     * that every restore puts a fresh qcow2 overlay on. A read-only disk is referenced as it is.
     *
     * @param node            the block node's name a restore gives it
     * @param pciAddress      its virtio-blk-pci device's address ({@code SS.F})
     * @param format          raw or qcow2
     * @param base            its absolute path
     * @param virtualByteSize the size the guest sees
     * @param identity        what the base looked like at the save; a restore refuses a base that differs
     * @param bootIndex       its device's {@code bootindex=}, repeated by a restore; null (absent) for none
     */
    public record Disk(String node, String pciAddress, String format, String base, boolean readOnly, long virtualByteSize,
                       DiskIdentity identity,
                       @com.fasterxml.jackson.annotation.JsonInclude(com.fasterxml.jackson.annotation.JsonInclude.Include.NON_NULL)
                       Integer bootIndex) {
        /** The largest {@code bootindex=} a restore repeats (QemuOption's three digits). */
        public static final int MAX_BOOT_INDEX = 999;

        @com.fasterxml.jackson.annotation.JsonCreator
        public Disk {}

        /** A disk outside the firmware's boot order. */
        public Disk(String node, String pciAddress, String format, String base, boolean readOnly, long virtualByteSize,
                    DiskIdentity identity) {
            this(node, pciAddress, format, base, readOnly, virtualByteSize, identity, null);
        }
    }

    /**
     * A file QEMU boots the guest with (kernel, initrd, firmware given by {@code -bios}, or the firmware's flash units), copied into the image's {@value #GUEST_FILES_DIRECTORY} directory
     * under its role's name, checked by size and SHA-256 before a restore hands it to QEMU.
     */
    public record GuestFile(String role, long byteSize, String sha256) {
        /** Its place in the image directory. */
        public Path in(Path imageDirectory) {
            return imageDirectory.resolve(GUEST_FILES_DIRECTORY).resolve(role);
        }
    }

    public record Block(String name, long usedByteSize, long pageByteSize, int pageCount) {}

    /**
     * The guest's clean page cache, dropped through its agent before the save stopped it ({@code thaw save --drop-caches}):
     * {@code sync}, then {@code dropCachesValue} written to {@code /proc/sys/vm/drop_caches}. The page cache is the guest's
     * {@code Buffers + Cached} from its {@code /proc/meminfo} (an initramfs root counts in Cached and is never dropped).
     *
     * @param freePagesReported the guest's balloon reports free pages (QEMU discards them, so the freed cache is zero in the
     *                          image) and the save waited for QEMU's resident memory to settle; false: the freed pages kept
     *                          their bytes
     * @param dropNanos         how long the drop took, the agent's round trip and that wait included (the guest running)
     */
    public record PageCacheDrop(int dropCachesValue, long pageCacheBytesBefore, long pageCacheBytesAfter, long freeBytesBefore,
                                long freeBytesAfter, boolean freePagesReported, long dropNanos) {
        /** Bytes the drop took out of the page cache. */
        public long droppedBytes() {
            return Math.max(0, pageCacheBytesBefore - pageCacheBytesAfter);
        }
    }

    /**
     * @param storeDirectory the content store, relative to the image directory unless absolute
     * @param packs          every pack file this image's pages live in
     */
    public record Storage(String codec, int zstdLevel, int groupPageCount, String storeDirectory, List<PackEntry> packs) {}

    public record PackEntry(String packId, String file, long byteSize, String checksum) {}

    public record FileEntry(String name, String kind, long byteSize, String checksum) {}

    /**
     * @param pageCount          target pages in all blocks
     * @param zeroPageCount      pages that are all zero (not stored)
     * @param storedPageCount    distinct page contents this image references in the store
     * @param duplicatePageCount non-zero pages whose content another page of this image already has
     * @param sharedPageCount    distinct contents found already stored by another image (not written again)
     * @param writtenPayloadBytes payload bytes this save added to the store
     * @param referencedPayloadBytes payload bytes of every extent this image references
     * @param diskReferencePageCount pages taken from a disk base (format version 3; absent, hence 0, before)
     */
    public record Stats(long pageCount, long zeroPageCount, long storedPageCount, long duplicatePageCount, long sharedPageCount,
                        long writtenPayloadBytes, long referencedPayloadBytes, long imageFileBytes,
                        @com.fasterxml.jackson.annotation.JsonInclude(com.fasterxml.jackson.annotation.JsonInclude.Include.NON_DEFAULT)
                        long diskReferencePageCount) {
        /** Bytes of the pages taken from disk bases (not stored in the image). */
        public long diskReferenceBytes() {
            return diskReferencePageCount * 4096;
        }

        /** Raw bytes of the non-zero pages over the payload bytes referenced. */
        public double compressionRatio() {
            return referencedPayloadBytes == 0 ? 1 : (double) storedPageCount * 4096 / referencedPayloadBytes;
        }

        /** Non-zero pages over distinct stored contents. */
        public double dedupRatio() {
            return storedPageCount == 0 ? 1 : (double) (pageCount - zeroPageCount - diskReferencePageCount) / storedPageCount;
        }
    }
}
