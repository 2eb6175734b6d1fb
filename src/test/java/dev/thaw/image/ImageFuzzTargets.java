package dev.thaw.image;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.thaw.estimate.Estimator;
import dev.thaw.estimate.PageRef;
import dev.thaw.estimate.WorkingSet;
import dev.thaw.fuzz.FuzzTarget;
import dev.thaw.fuzz.JsonMutator;
import dev.thaw.fuzz.Mutator;
import dev.thaw.restore.IncomingQemu;
import dev.thaw.restore.RestoreException;
import dev.thaw.testing.SyntheticGuest;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;

/**
 * Every file of an image, damaged or written by someone else: {@link CheckpointImage#open}, {@link CheckpointImage#verify},
 * every {@link CheckpointImage#readPage} and the working set, on a small valid image (two blocks, a working-set
 * section, extents of 4 pages) with one file replaced per case. Raw damage stops at the frames' checksums, so the
 * other targets rewrite the damaged file's frame and the manifest's record of it as a writer would: whoever can edit
 * an image can recompute its checksums, and what lies behind them must hold up too.
 */
public final class ImageFuzzTargets {
    private static final ObjectMapper JSON = new ObjectMapper();

    /** A valid image to damage: its directory, and every file's valid bytes to put back after each case. */
    private record Image(Path dir, Map<Path, byte[]> files) {
        static Image make(Path dir, Codec codec) throws IOException {
            SyntheticGuest guest = SyntheticGuest.random(new Random(codec.ordinal() + 11), 2, 6, 40, 0.25, 0.15);
            ImageRoundTripTest.saveInto(dir, guest, new ImageWriter.Options(codec, 1, 4, null));
            List<PageRef> queue = List.of(new PageRef(1, 5), new PageRef(0, 0), new PageRef(0, 3), new PageRef(1, 0), new PageRef(0, 1));
            WorkingSetWriter.attach(dir, WorkingSet.of(Estimator.TRACE, queue, 4, "fuzz seed"));
            Map<Path, byte[]> files = new LinkedHashMap<>();
            try (Stream<Path> walk = Files.walk(dir)) {
                for (Path p : walk.filter(Files::isRegularFile).sorted().toList()) files.put(p, Files.readAllBytes(p));
            }
            return new Image(dir, files);
        }

        /** An image (format 3) some of whose pages are blocks of a raw base beside it, outside the image (never damaged). */
        static Image makeWithDisk(Path dir) throws IOException {
            return makeWithDisk(dir, false);
        }

        /**
         * The same; with {@code chain} (format 4) the base is an empty qcow2 overlay (qemu-img) on that raw file, so the pages
         * are references into its backing file (layer 1).
         */
        static Image makeWithDisk(Path dir, boolean chain) throws IOException {
            SyntheticGuest guest = SyntheticGuest.random(new Random(21), 2, 6, 40, 0.25, 0.15);
            java.io.ByteArrayOutputStream disk = new java.io.ByteArrayOutputStream();
            disk.write(new byte[4096]); // a zero block, not indexed
            for (byte[][] pages : guest.pages) {
                for (int p = 0; p < pages.length; p += 2) if (pages[p] != null) disk.write(pages[p]);
            }
            Path raw = Files.write(dir.resolveSibling(dir.getFileName() + ".raw"), disk.toByteArray());
            Path base = raw;
            if (chain) {
                base = dir.resolveSibling(dir.getFileName() + ".qcow2");
                dev.thaw.util.ExternalCommand.check(List.of("qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", raw.toString(),
                        base.toString()), java.time.Duration.ofSeconds(60));
            }
            DiskIdentity identity = DiskIdentity.of(base);
            DiskIdentity rawIdentity = DiskIdentity.of(raw);
            try (ImageWriter writer = ImageWriter.create(dir, new ImageWriter.Options(Codec.LZ4, 1, 4, null))) {
                writer.diskBases(List.of(new DiskPages.Base(0, chain ? 1 : 0, raw, rawIdentity,
                        DiskBlockIndex.forBase(raw, rawIdentity, dir.resolveSibling(dir.getFileName() + ".cache")).index())));
                dev.thaw.migration.SaveStreamParser.parse(new java.io.ByteArrayInputStream(guest.toStream(16)), ImageRoundTripTest.sink(writer));
                writer.disks(List.of(new Manifest.Disk("disk0", "05.0", chain ? "qcow2" : "raw", base.toString(), true, rawIdentity.byteSize(), identity)));
                writer.commit(new Manifest.Source("7.2.22", null, List.of(), null), "fuzz");
            }
            Map<Path, byte[]> files = new LinkedHashMap<>();
            try (Stream<Path> walk = Files.walk(dir)) {
                for (Path p : walk.filter(Files::isRegularFile).sorted().toList()) files.put(p, Files.readAllBytes(p));
            }
            return new Image(dir, files);
        }

        Path file(String prefix) {
            return files.keySet().stream().filter(p -> p.getFileName().toString().startsWith(prefix)).findFirst().orElseThrow();
        }

        List<Path> packs() {
            return files.keySet().stream().filter(p -> p.getFileName().toString().startsWith("pack-")).toList();
        }

        void restore() throws IOException {
            for (var e : files.entrySet()) Files.write(e.getKey(), e.getValue());
        }

        /** Writes {@code body} into {@code file}'s frame, and the new size and checksum into the manifest's record of it. */
        void reseal(Path file, byte[] body) throws IOException {
            byte[] framed = frame(files.get(file), body);
            Files.write(file, framed);
            Path manifest = file(ImageWriter.MANIFEST);
            ObjectNode m = (ObjectNode) JSON.readTree(body(files.get(manifest)));
            String name = file.getFileName().toString();
            String checksum = Long.toHexString(ByteBuffer.wrap(framed, framed.length - 16, 8).order(ByteOrder.LITTLE_ENDIAN).getLong());
            Stream.concat(Stream.of(m.withArray("files")), Stream.of(m.with("storage").withArray("packs"))).forEach(list -> list.forEach(n -> {
                if (name.equals(n.path("name").asText()) || name.equals(n.path("file").asText())) {
                    ((ObjectNode) n).put("byteSize", framed.length).put("checksum", checksum);
                }
            }));
            Files.write(manifest, frame(files.get(manifest), JSON.writeValueAsBytes(m)));
        }
    }

    private ImageFuzzTargets() {}

    /** The original header, the new body, and a footer with the body's size and the file's checksum. */
    static byte[] frame(byte[] original, byte[] body) {
        byte[] out = Arrays.copyOf(original, Framing.HEADER_BYTES + body.length + Framing.FOOTER_BYTES);
        System.arraycopy(body, 0, out, Framing.HEADER_BYTES, body.length);
        byte[] footer = Framing.footer(body.length, Framing.xxh3(out, 0, Framing.HEADER_BYTES + body.length));
        System.arraycopy(footer, 0, out, Framing.HEADER_BYTES + body.length, footer.length);
        return out;
    }

    static byte[] body(byte[] file) {
        return Arrays.copyOfRange(file, Framing.HEADER_BYTES, file.length - Framing.FOOTER_BYTES);
    }

    /** Opens the image and reads everything a restore, {@code inspect --verify} and {@code ws} would. */
    static void readAll(Path dir) {
        try (CheckpointImage image = CheckpointImage.open(dir)) {
            byte[] page = new byte[4096];
            for (int b = 0; b < image.ramBlocks().size(); b++) {
                for (int p = 0; p < image.ramBlocks().get(b).pageCount(); p++) {
                    if (image.isZero(b, p) == image.readPage(b, p, page, 0)) throw new AssertionError("isZero and readPage disagree");
                }
            }
            image.workingSet();
            image.workingSetLayout();
            image.manifest().stats().compressionRatio(); // what inspect prints
            image.storeDirectory();
            image.backingFileChanges(); // what a restore checks before QEMU starts (format 4: the identity table)
            try {
                IncomingQemu.savedConfig(image); // what a restore launches
            } catch (RestoreException e) {
                // the seeds record no launch configuration: a typed refusal is the contract
            }
            image.verify();
        }
    }

    /** How a case damages the image: a selector byte (which file, and how) and the bytes after it. */
    @FunctionalInterface
    private interface Damage {
        void apply(int selector, byte[] bytes) throws IOException;
    }

    /** Each case damages the image, reads all of it, and puts the valid files back. */
    private static FuzzTarget.Body damaging(Image image, Damage damage) {
        return input -> {
            if (input.length == 0) return;
            try {
                damage.apply(input[0] & 0xFF, Arrays.copyOfRange(input, 1, input.length));
                readAll(image.dir());
            } finally {
                image.restore();
            }
        };
    }

    /** A selector byte (which file), then that file's bytes, frame included: damage a writer did not reseal. */
    public static FuzzTarget rawFiles(Path work) throws IOException {
        Image image = Image.make(work.resolve("raw"), Codec.ZSTD);
        List<Path> files = List.copyOf(image.files().keySet());
        List<byte[]> seeds = new ArrayList<>();
        for (int i = 0; i < files.size(); i++) seeds.add(selected(i, image.files().get(files.get(i))));
        return new FuzzTarget("image-raw-files", seeds, Mutator::mutate,
                damaging(image, (selector, bytes) -> Files.write(files.get(selector % files.size()), bytes)), List.of(ImageException.class));
    }

    /** The manifest's JSON, mutated by its tree and framed anew. */
    public static FuzzTarget manifest(Path work) throws IOException {
        Image image = Image.make(work.resolve("manifest"), Codec.LZ4);
        Path manifest = image.file(ImageWriter.MANIFEST);
        byte[] original = image.files().get(manifest);
        // A second seed in format 2: disks and guest files for the mutator to damage.
        ObjectNode v2 = (ObjectNode) JSON.readTree(body(original));
        v2.put("formatVersion", Manifest.VERSION_WITH_DISKS);
        v2.putArray("disks").addObject().put("node", "disk0").put("pciAddress", "02.0").put("format", "qcow2")
                .put("base", "/nonexistent/base.qcow2").put("readOnly", false).put("virtualByteSize", 1L << 26)
                .putObject("identity").put("byteSize", 1L << 20).put("modifiedAt", "2026-01-01T00:00:00Z").put("headTailSha256", "00");
        v2.putArray("guestFiles").addObject().put("role", "kernel").put("byteSize", 1).put("sha256", "00");
        return new FuzzTarget("image-manifest", List.of(body(original), JSON.writeValueAsBytes(v2)), JsonMutator::mutate, input -> {
            try {
                Files.write(manifest, frame(original, input));
                readAll(image.dir());
            } finally {
                image.restore();
            }
        }, List.of(ImageException.class));
    }

    /**
     * {@code image.mac} of an image saved with a key, read by every open while the key is configured (the key is set for
     * each case only: other targets open unkeyed images). A working-set attach's two-line file is a seed too.
     */
    public static FuzzTarget mac(Path work) throws IOException {
        Path key = work.resolve("mac.key");
        byte[] keyBytes = new byte[32];
        new Random(32).nextBytes(keyBytes);
        Files.write(key, keyBytes);
        Files.setPosixFilePermissions(key, java.nio.file.attribute.PosixFilePermissions.fromString("rw-------"));
        Path dir = work.resolve("keyed");
        System.setProperty(ImageMac.KEY_PROPERTY, key.toString());
        Image image;
        try {
            image = Image.make(dir, Codec.LZ4);
        } finally {
            System.clearProperty(ImageMac.KEY_PROPERTY);
        }
        Path file = dir.resolve(ImageMac.FILE);
        byte[] valid = image.files().get(file);
        byte[] attaching = ("0".repeat(64) + "\n" + new String(valid, java.nio.charset.StandardCharsets.US_ASCII)).getBytes(
                java.nio.charset.StandardCharsets.US_ASCII);
        return new FuzzTarget("image-mac", List.of(valid, attaching), Mutator::mutate, input -> {
            System.setProperty(ImageMac.KEY_PROPERTY, key.toString());
            try {
                Files.write(file, input);
                CheckpointImage.open(dir).close();
            } finally {
                System.clearProperty(ImageMac.KEY_PROPERTY);
                image.restore();
            }
        }, List.of(ImageException.class));
    }

    /** A selector byte, then the body of the page map, extent table, device state or working-set section, resealed. */
    public static FuzzTarget metadata(Path work) throws IOException {
        Image image = Image.make(work.resolve("metadata"), Codec.ZSTD);
        List<Path> files = List.of(image.file(ImageWriter.PAGE_MAP), image.file(ImageWriter.EXTENT_TABLE), image.file(ImageWriter.DEVICE_STATE),
                image.file(WorkingSetSection.FILE_PREFIX));
        List<byte[]> seeds = new ArrayList<>();
        for (int i = 0; i < files.size(); i++) seeds.add(selected(i, body(image.files().get(files.get(i)))));
        return new FuzzTarget("image-metadata", seeds, Mutator::mutate,
                damaging(image, (selector, body) -> image.reseal(files.get(selector % files.size()), body)), List.of(ImageException.class));
    }

    /**
     * A selector byte, then the body of the page map or of the disk-reference table of an image that takes pages from a disk,
     * resealed: its bit 0 picks the file, bit 1 the image: one whose references are in a raw base (format 3), or one whose
     * base is a qcow2 overlay and whose references are in its raw backing file (format 4, layer 1, the table ending with
     * that file's identity, which every case also checks against the file as a restore does before QEMU starts).
     */
    public static FuzzTarget diskReferences(Path work) throws IOException {
        List<Image> images = List.of(Image.makeWithDisk(work.resolve("disk-refs")), Image.makeWithDisk(work.resolve("disk-refs-chain"), true));
        List<byte[]> seeds = new ArrayList<>();
        List<List<Path>> files = new ArrayList<>();
        for (int k = 0; k < images.size(); k++) {
            Image image = images.get(k);
            files.add(List.of(image.file(ImageWriter.DISK_REFS), image.file(ImageWriter.PAGE_MAP)));
            for (int i = 0; i < 2; i++) seeds.add(selected(2 * k + i, body(image.files().get(files.get(k).get(i)))));
        }
        return new FuzzTarget("image-disk-refs", seeds, Mutator::mutate, input -> {
            if (input.length == 0) return;
            int k = ((input[0] & 0xFF) >> 1) % images.size();
            Image image = images.get(k);
            damaging(image, (selector, body) -> image.reseal(files.get(k).get(selector & 1), body)).run(input);
        }, List.of(ImageException.class));
    }

    /**
     * A selector byte, then the body of a pack (extents, index, trailer), resealed; for odd selectors the trailer's index
     * checksum is recomputed too, so that damage inside the index reaches the code that reads its records.
     */
    public static FuzzTarget packs(Path work) throws IOException {
        Image image = Image.make(work.resolve("packs"), Codec.NONE);
        List<Path> packs = image.packs();
        List<byte[]> seeds = new ArrayList<>();
        for (int i = 0; i < packs.size(); i++) seeds.add(selected(2 * i + 1, body(image.files().get(packs.get(i)))));
        return new FuzzTarget("image-packs", seeds, Mutator::mutate, damaging(image, (selector, body) -> {
            if ((selector & 1) == 1) fixIndexChecksum(body);
            image.reseal(packs.get((selector >> 1) % packs.size()), body);
        }), List.of(ImageException.class));
    }

    /** Recomputes the trailer's index checksum when the trailer places the index inside the body. */
    private static void fixIndexChecksum(byte[] body) {
        if (body.length < Pack.TRAILER_BYTES) return;
        ByteBuffer b = ByteBuffer.wrap(body).order(ByteOrder.LITTLE_ENDIAN);
        int trailer = body.length - Pack.TRAILER_BYTES;
        long from = b.getLong(trailer) - Framing.HEADER_BYTES;
        if (from >= 0 && from <= trailer) b.putLong(trailer + 16, Framing.xxh3(body, (int) from, trailer - (int) from));
    }

    /**
     * An extent's payload as a damaged pack delivers it to the decompressors (codec byte, page count byte, payload):
     * past the checksums, which a writer recomputes. {@link Codec#decompress}'s contract is an IllegalArgumentException,
     * which {@link Pack} reports as a corrupt extent.
     */
    public static FuzzTarget codecs() {
        List<byte[]> seeds = new ArrayList<>();
        Random random = new Random(5);
        for (Codec codec : List.of(Codec.ZSTD, Codec.LZ4)) {
            for (int pages : new int[] {1, 4}) {
                byte[] raw = new byte[pages * 4096];
                for (int i = 0; i < raw.length; i += 16) raw[i] = (byte) random.nextInt(8);
                byte[] payload = codec.compress(raw, raw.length, 1);
                seeds.add(selected(codec.code(), selected(pages, payload)));
            }
        }
        return new FuzzTarget("extent-codecs", seeds, Mutator::mutate, input -> {
            if (input.length < 2) return;
            Codec codec = Codec.of(input[0] & 0xFF);
            if (codec == Codec.INVALID) return; // the extent table refuses it before anything is read
            int pages = Math.max(1, input[1] & 0xFF);
            try {
                codec.decompress(input, 2, input.length - 2, new byte[pages * 4096], pages * 4096);
            } catch (IllegalArgumentException e) {
                if (!e.getStackTrace()[0].getClassName().equals(Codec.class.getName())) {
                    throw new AssertionError("an IllegalArgumentException from a library, not Codec's own", e);
                }
                throw e;
            }
        }, List.of(IllegalArgumentException.class));
    }

    private static byte[] selected(int selector, byte[] bytes) {
        byte[] out = new byte[bytes.length + 1];
        out[0] = (byte) selector;
        System.arraycopy(bytes, 0, out, 1, bytes.length);
        return out;
    }
}
