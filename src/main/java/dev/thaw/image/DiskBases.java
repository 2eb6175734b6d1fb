package dev.thaw.image;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;

/**
 * The files of an image's disk bases, whole: for each of the manifest's disks, its base and every file of its backing chain
 * QEMU opens below it ({@link Qcow2Chain#whole}), each with its identity and the SHA-256 of all its bytes. Object storage
 * holds one such list per image ({@code files/IMAGE-ID/disk-bases.json}, the bases themselves content-addressed by that
 * SHA-256); an image fetched from there carries one too ({@value #FILE} in its directory), each layer's {@code file} then
 * naming where the fetched copy lies ({@code bases/}{@link #copyName}, in the image directory; a cached image's
 * {@code bases} links to the cache's), so that a restore reads its bases from those copies and gives QEMU the chain
 * explicitly instead of the names in the qcow2 headers, which name the saving host's files.
 *
 * <p>The list is bound to the manifest: a push records its {@link #sha256()} (every field of every layer but {@code file})
 * in the manifest it uploads ({@code diskBasesSha256}), which the image's MAC covers, and {@link #parse} refuses a list
 * that does not match it, or any list when the manifest records none.
 *
 * <p>A layer's copy keeps the bytes, and is given the modification time, the save recorded: the identity checks a restore
 * makes of a local base ({@link DiskIdentity}) hold for it unchanged.
 *
 * @param disks one per manifest disk, in its order
 */
public record DiskBases(List<Disk> disks) {
    /** The list's name in an image directory that carries its bases. */
    public static final String FILE = "disk-bases.json";
    /** The directory, in the image directory, where the copies of a carried list lie. */
    public static final String DIRECTORY = "bases";
    /** Names the fetch gives a layer's copy: its SHA-256 and a suffix of word characters, no path. */
    private static final Pattern SHA256 = Pattern.compile("[0-9a-f]{64}");
    private static final ObjectMapper JSON = new ObjectMapper().configure(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES, true)
            .enable(com.fasterxml.jackson.databind.SerializationFeature.INDENT_OUTPUT);

    /**
     * @param node   the manifest disk's node
     * @param layers [base, its backing file, ...]
     */
    public record Disk(String node, List<Layer> layers) {}

    /**
     * One file of a chain.
     *
     * @param format   raw or qcow2 (a backing file's: qcow2 if it starts with qcow2's magic, else raw, as QEMU probes it)
     * @param identity its identity at the push (the base's is the manifest's)
     * @param sha256   SHA-256 of all its bytes, hex: its object's name in the bucket
     * @param file     where its copy lies, relative to the image directory: {@code bases/}{@link #copyName} (absent in the bucket's list)
     */
    public record Layer(String format, DiskIdentity identity, String sha256,
                        @com.fasterxml.jackson.annotation.JsonInclude(com.fasterxml.jackson.annotation.JsonInclude.Include.NON_NULL)
                        String file) {
        public Layer withFile(String at) {
            return new Layer(format, identity, sha256, at);
        }
    }

    /** The SHA-256 of the list without its copies' places (every layer's format, identity and SHA-256), hex: what a manifest records. */
    public String sha256() {
        List<Disk> bare = disks.stream().map(d -> new Disk(d.node(), d.layers().stream().map(l -> l.withFile(null)).toList())).toList();
        try {
            return java.util.HexFormat.of().formatHex(java.security.MessageDigest.getInstance("SHA-256").digest(new DiskBases(bare).toJson()));
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The name of a layer's copy: its SHA-256 and its recorded modification time, which the copy is given. */
    public static String copyName(Layer layer) {
        java.time.Instant t = java.time.Instant.parse(layer.identity().modifiedAt());
        return layer.sha256() + "-" + t.getEpochSecond() + "." + String.format("%09d", t.getNano());
    }

    public byte[] toJson() {
        try {
            return JSON.writeValueAsBytes(this);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    /**
     * Parses and checks a list against the image's manifest: its {@link #sha256()} the manifest's {@code diskBasesSha256};
     * one disk per manifest disk, same node, format and base identity; layers 1-{@link Qcow2Chain#MAX_LAYERS} deep; every
     * field present; with {@code withFiles}, each copy at {@code bases/}{@link #copyName}, nowhere else. {@code where}
     * names its source in errors.
     */
    public static DiskBases parse(byte[] json, Manifest manifest, Path where, boolean withFiles) {
        DiskBases b;
        try {
            b = JSON.readValue(json, DiskBases.class);
        } catch (IOException e) {
            throw new ImageException.Corrupt(where, 0, "disk bases: expected JSON of disks and their layers, actual: " + e.getMessage(), e);
        }
        List<Manifest.Disk> disks = manifest.disks();
        if (b.disks() == null || b.disks().size() != disks.size()) {
            throw new ImageException.Corrupt(where, 0, "disk bases: expected " + disks.size() + " disks (the manifest's), actual "
                    + (b.disks() == null ? "none" : b.disks().size()));
        }
        for (int i = 0; i < disks.size(); i++) {
            Manifest.Disk d = disks.get(i);
            Disk listed = b.disks().get(i);
            String what = "disk bases: disk " + i + " (" + d.node() + ")";
            if (listed == null || !d.node().equals(listed.node()) || listed.layers() == null || listed.layers().isEmpty()
                    || listed.layers().size() > Qcow2Chain.MAX_LAYERS + 1) {
                throw new ImageException.Corrupt(where, 0, what + ": expected node " + d.node() + " and 1-" + (Qcow2Chain.MAX_LAYERS + 1)
                        + " layers, actual " + (listed == null ? "none" : "node " + listed.node() + " and "
                        + (listed.layers() == null ? "no" : listed.layers().size()) + " layers"));
            }
            for (int l = 0; l < listed.layers().size(); l++) {
                Layer layer = listed.layers().get(l);
                String at = what + " layer " + l;
                if (layer == null || layer.identity() == null || layer.identity().modifiedAt() == null || layer.identity().headTailSha256() == null
                        || layer.sha256() == null || !SHA256.matcher(layer.sha256()).matches()
                        || !"raw".equals(layer.format()) && !"qcow2".equals(layer.format()) || withFiles != (layer.file() != null)) {
                    throw new ImageException.Corrupt(where, 0, at + ": expected a format (raw or qcow2), an identity, a SHA-256 (64 hex digits)"
                            + (withFiles ? " and a file" : " and no file") + ", actual " + layer);
                }
                String name;
                try {
                    name = copyName(layer);
                } catch (java.time.DateTimeException e) {
                    throw new ImageException.Corrupt(where, 0, at + ": identity.modifiedAt: expected an ISO-8601 instant, actual '"
                            + layer.identity().modifiedAt() + "'", e);
                }
                // The place is the one a fetch gives the copy: never an absolute path or one out of the image's bases.
                if (withFiles && !layer.file().equals(DIRECTORY + "/" + name)) {
                    throw new ImageException.Corrupt(where, 0, at + ": file: expected '" + DIRECTORY + "/" + name + "' (the copy of its"
                            + " SHA-256 and time in the image's " + DIRECTORY + " directory), actual '" + layer.file() + "'");
                }
            }
            Layer base = listed.layers().getFirst();
            if (!base.format().equals(d.format()) || !base.identity().equals(d.identity())) {
                throw new ImageException.Corrupt(where, 0, what + " layer 0: expected format " + d.format() + " and identity " + d.identity()
                        + " (the manifest's), actual " + base.format() + " and " + base.identity());
            }
            if (d.format().equals("raw") && listed.layers().size() > 1) {
                throw new ImageException.Corrupt(where, 0, what + ": expected a raw base alone, actual " + listed.layers().size() + " layers");
            }
        }
        String recorded = manifest.diskBasesSha256();
        if (recorded == null || !recorded.equals(b.sha256())) {
            throw new ImageException.Corrupt(where, 0, "disk bases: expected the list whose SHA-256 the manifest records (diskBasesSha256 "
                    + (recorded == null ? "absent: the image was not pushed by a Thaw that binds its list; push it again" : recorded)
                    + "), actual a list with SHA-256 " + b.sha256());
        }
        return b;
    }

    /** The list {@value #FILE} in {@code imageDirectory}, checked against its manifest; empty when it has none. */
    public static java.util.Optional<DiskBases> readIn(Path imageDirectory, Manifest manifest) {
        Path file = imageDirectory.resolve(FILE);
        if (!Files.exists(file, java.nio.file.LinkOption.NOFOLLOW_LINKS)) return java.util.Optional.empty();
        try {
            return java.util.Optional.of(parse(Files.readAllBytes(file), manifest, file, true));
        } catch (IOException e) {
            throw new ImageException.Missing(file, "cannot be read: " + e, e);
        }
    }

    /** The file names of the copies a carried list (an image directory's {@value #FILE}) names, unchecked: what a cache keeps. */
    public static java.util.Set<String> copyNames(Path listFile) throws IOException {
        java.util.Set<String> names = new java.util.HashSet<>();
        DiskBases b = JSON.readValue(Files.readAllBytes(listFile), DiskBases.class);
        if (b.disks() == null) return names;
        for (Disk d : b.disks()) {
            if (d == null || d.layers() == null) continue;
            for (Layer l : d.layers()) if (l != null && l.file() != null) names.add(Path.of(l.file()).getFileName().toString());
        }
        return names;
    }

    /** Layer {@code layer} of disk {@code disk}'s copy, resolved against the image directory. */
    public Path fileOf(Path imageDirectory, int disk, int layer) {
        return imageDirectory.resolve(disks.get(disk).layers().get(layer).file()).normalize();
    }

    /** Every layer's copy of disk {@code disk}, resolved against the image directory. */
    public List<Path> chainOf(Path imageDirectory, int disk) {
        List<Path> out = new ArrayList<>();
        for (int l = 0; l < disks.get(disk).layers().size(); l++) out.add(fileOf(imageDirectory, disk, l));
        return List.copyOf(out);
    }
}
