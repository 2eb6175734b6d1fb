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
 */
public record Manifest(int formatVersion, String imageId, String createdAt, String thawVersion,
                       Source source, List<Block> ramBlocks, int ramSectionId, int ramSectionVersion,
                       Storage storage, List<FileEntry> files, Stats stats, String pageOrder) {
    private static final ObjectMapper JSON = new ObjectMapper().findAndRegisterModules();

    /** Reads and checks {@code manifest.thaw} (frame, checksum, JSON). */
    static Manifest read(Path manifestFile) {
        return parse(manifestFile, readBody(manifestFile));
    }

    /** The checked body of {@code manifest.thaw}: what {@link ImageMac} covers. */
    static byte[] readBody(Path manifestFile) {
        return Framing.readWholeBody(manifestFile, FileKind.MANIFEST, null);
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
            FileKind.DEVICE_STATE, FileKind.WORKING_SET).map(k -> k.name().toLowerCase(java.util.Locale.ROOT)).toList();

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

    public record Block(String name, long usedByteSize, long pageByteSize, int pageCount) {}

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
     */
    public record Stats(long pageCount, long zeroPageCount, long storedPageCount, long duplicatePageCount, long sharedPageCount,
                        long writtenPayloadBytes, long referencedPayloadBytes, long imageFileBytes) {
        /** Raw bytes of the non-zero pages over the payload bytes referenced. */
        public double compressionRatio() {
            return referencedPayloadBytes == 0 ? 1 : (double) storedPageCount * 4096 / referencedPayloadBytes;
        }

        /** Non-zero pages over distinct stored contents. */
        public double dedupRatio() {
            return storedPageCount == 0 ? 1 : (double) (pageCount - zeroPageCount) / storedPageCount;
        }
    }
}
