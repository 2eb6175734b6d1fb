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
        try {
            return JSON.readValue(body, Manifest.class);
        } catch (IOException e) {
            throw new ImageException.Corrupt(manifestFile, Framing.HEADER_BYTES, "manifest JSON does not parse: " + e.getMessage(), e);
        }
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
