package dev.thaw.restore;

import dev.thaw.image.CheckpointImage;
import dev.thaw.image.DiskBases;
import dev.thaw.image.DiskIdentity;
import dev.thaw.image.Manifest;
import dev.thaw.qemu.VmConfig;
import dev.thaw.util.ExternalCommand;
import dev.thaw.util.FileTrees;
import dev.thaw.util.OwnerOnly;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.security.DigestInputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;

/**
 * What a restore of an image with disks or guest files adds to its QEMU: the kernel and initrd the image carries (checked by
 * size and SHA-256, since QEMU hands them to the guest), and for each disk a fresh qcow2 overlay on its base, so that every
 * restore of one image starts from the disk state its save froze and none writes the base. The overlays of one restore lie in
 * a directory of their own beside the image ({@code IMAGE.disks/NAME-RANDOM/}, owner-only; or under the restore's
 * {@code --disk-dir}, {@code DIR/NAME-RANDOM/}): they are the restored guest's disks, kept after it ends and removed with the
 * image ({@code thaw rm}; those under a {@code --disk-dir} are the user's). A base that changed since the save is refused,
 * naming the disk and what changed, before QEMU starts. Read-only disks are used as they are.
 */
public final class RestoreDisks {
    private static final Duration QEMU_IMG_TIMEOUT = Duration.ofSeconds(60);

    private RestoreDisks() {}

    /** Where the restores of an image keep their overlays: {@code IMAGE.disks/}. */
    public static Path directoryFor(Path image) {
        return dev.thaw.util.FileTrees.beside(image, "disks");
    }

    /** Deletes the overlays of every restore of the image (when the image itself is removed); false if there were none. */
    public static boolean deleteFor(Path image) {
        return dev.thaw.util.FileTrees.deleteDirectory(directoryFor(image));
    }

    /** The configuration booting the kernel, initrd and firmware the image carries, each checked; unchanged when it carries none. */
    static VmConfig withGuestFiles(CheckpointImage image, VmConfig saved) {
        VmConfig config = saved;
        for (Manifest.GuestFile g : image.manifest().guestFiles()) {
            Path copy = g.in(image.directory());
            if (!g.role().equals("kernel") && !g.role().equals("initrd") && g.byteSize() > VmConfig.MAX_FIRMWARE_BYTES) {
                throw new RestoreException("image " + image.directory() + ": guest " + g.role() + ": expected at most " + VmConfig.MAX_FIRMWARE_BYTES
                        + " bytes, actual " + g.byteSize(), null);
            }
            check(image, g, copy);
            config = config.withGuestFile(g.role(), copy);
        }
        return config;
    }

    /**
     * The configuration on fresh overlays of the image's disks (created now, in a new directory under {@code diskDirectory},
     * {@code IMAGE.disks/} when empty) and on its read-only disks as they are.
     */
    static VmConfig withDisks(CheckpointImage image, VmConfig saved, String vmName, java.util.Optional<Path> diskDirectory) {
        List<Manifest.Disk> disks = image.manifest().disks();
        boolean writableFlash = saved.flash().stream().anyMatch(f -> !f.readOnly());
        if (disks.isEmpty() && !writableFlash) return saved;
        List<VmConfig.Disk> bases = new ArrayList<>();
        List<String> backings = new ArrayList<>();
        for (int i = 0; i < disks.size(); i++) {
            Manifest.Disk d = disks.get(i);
            VmConfig.Disk base;
            try {
                base = new VmConfig.Disk(d.node(), d.format(), image.diskBase(i), d.readOnly(), d.pciAddress(), d.bootIndex());
            } catch (IllegalArgumentException e) {
                throw new RestoreException("image " + image.directory() + ": the recorded disk is invalid: " + e.getMessage(), e);
            }
            DiskIdentity now;
            try {
                now = DiskIdentity.of(base.file());
            } catch (IOException e) {
                throw new RestoreException("image " + image.directory() + ": disk " + d.node() + " (base " + base.file() + "): " + e.getMessage(), e);
            }
            List<String> changed = d.identity().differencesTo(now);
            if (!changed.isEmpty()) {
                throw new RestoreException("image " + image.directory() + ": disk " + d.node() + " (base " + base.file()
                        + ") changed since the save: " + String.join("; ", changed) + ". Every restore must start from the disk"
                        + " state the save froze: put the base back as it was, or save the guest again", null);
            }
            bases.add(base);
            backings.add(carriedChain(image, i).orElse(null));
        }
        // The backing files references are read from (format 4) are checked now, before QEMU starts, not at the first page
        // read from one, when the guest has run already.
        List<String> backing = image.backingFileChanges();
        if (!backing.isEmpty()) {
            throw new RestoreException("image " + image.directory() + ": " + String.join("; ", backing) + ". Every restore must start from"
                    + " the disk state the save froze: put the backing files back as they were, or save the guest again", null);
        }
        Path dir = overlayDirectory(image, vmName, diskDirectory);
        String where = "image " + image.directory() + ": ";
        try {
            VmConfig onOverlays = withOwnFlash(saved, dir, where).withDisks(onOverlays(bases, backings, disks, dir, where));
            if (diskDirectory.isPresent()) linkBeside(image, dir);
            return onOverlays;
        } catch (RuntimeException e) {
            // An empty IMAGE.disks/ would pin a cached image and its bases' copies (ImageCache) with no overlay to keep.
            if (diskDirectory.isEmpty()) removeIfEmpty(dir.getParent());
            throw e;
        }
    }

    /**
     * Overlays made under a {@code --disk-dir} name the image's bases (for an image fetched from object storage, its copies in
     * the cache) as their backing, like those beside the image: a link to them in {@code IMAGE.disks/} makes the cache keep the
     * image and its copies while they exist (ImageCache pins an image whose {@code IMAGE.disks/} holds an overlay, through such a
     * link too, until its target is gone). Best-effort: an image directory that cannot take it (read-only) costs the pin, not
     * the restore.
     */
    private static void linkBeside(CheckpointImage image, Path overlays) {
        Path beside = directoryFor(image.directory());
        try {
            OwnerOnly.createDirectories(beside);
            Files.createSymbolicLink(beside.resolve(overlays.getFileName()), overlays.toAbsolutePath().normalize());
        } catch (IOException | UnsupportedOperationException e) {
            org.slf4j.LoggerFactory.getLogger(RestoreDisks.class).warn("image {}: no link in {} to the overlays in {} ({}): a cache holding"
                    + " the image may evict the files they name", image.directory(), beside, overlays, e.toString());
        }
    }

    /** Deletes {@code directory} if it is empty (a concurrent restore's overlays keep it). */
    static void removeIfEmpty(Path directory) {
        try {
            Files.deleteIfExists(directory);
        } catch (IOException e) {
            // not empty (DirectoryNotEmptyException), or already gone: nothing to do
        }
    }

    /**
     * For an image carrying its bases' copies (fetched from object storage) whose disk {@code disk} has a qcow2 base: every
     * copy below the base checked against the identity the push recorded, and the whole chain as QEMU is to open it, a
     * {@code json:} backing name for the disk's overlay, ended explicitly. The copies' own qcow2 headers name the saving
     * host's files, which QEMU must not follow (they may not exist here, or be other files). Empty for a raw base.
     */
    private static java.util.Optional<String> carriedChain(CheckpointImage image, int disk) {
        if (image.carriedBases().isEmpty()) return java.util.Optional.empty();
        List<DiskBases.Layer> layers = image.carriedBases().get().disks().get(disk).layers();
        if (layers.getFirst().format().equals("raw")) return java.util.Optional.empty();
        Manifest.Disk d = image.manifest().disks().get(disk);
        List<Path> files = new ArrayList<>(image.carriedBases().get().chainOf(image.directory(), disk));
        for (int l = 0; l < layers.size(); l++) {
            List<String> changed;
            try {
                files.set(l, files.get(l).toRealPath()); // the cache's copies, not through its images' links: a shorter name
                changed = l == 0 ? List.of() : layers.get(l).identity().differencesTo(DiskIdentity.of(files.get(l)));
            } catch (IOException e) {
                throw new RestoreException("image " + image.directory() + ": disk " + d.node() + " backing layer " + l + " (" + files.get(l) + "): "
                        + e.getMessage(), e);
            }
            if (!changed.isEmpty()) {
                throw new RestoreException("image " + image.directory() + ": disk " + d.node() + " backing layer " + l + " (" + files.get(l)
                        + ") changed since it was fetched: " + String.join("; ", changed) + ". Remove it from the cache to fetch it anew", null);
            }
        }
        String spec = "json:" + chainSpec(layers, files);
        if (spec.getBytes(java.nio.charset.StandardCharsets.UTF_8).length > MAX_BACKING_NAME_BYTES) {
            throw new RestoreException("image " + image.directory() + ": disk " + d.node() + ": its chain of " + layers.size() + " files as a"
                    + " backing name: expected at most " + MAX_BACKING_NAME_BYTES + " bytes (qcow2's limit), actual " + spec.length()
                    + ": move the object storage cache to a shorter path", null);
        }
        return java.util.Optional.of(spec);
    }

    /** QEMU's longest backing file name (block/qcow2.c), which a {@code json:} chain must fit in. */
    private static final int MAX_BACKING_NAME_BYTES = 1023;

    /**
     * The block options of the chain as JSON: each file's format driver on it, the next as its backing, and none below the
     * last ({@code "backing": null} on a qcow2 one), so that no header's backing name is followed.
     */
    static String chainSpec(List<DiskBases.Layer> layers, List<Path> files) {
        var node = new com.fasterxml.jackson.databind.ObjectMapper().createObjectNode();
        var at = node;
        for (int l = 0; l < layers.size(); l++) {
            at.put("driver", layers.get(l).format());
            at.putObject("file").put("driver", "file").put("filename", files.get(l).toString());
            if (l + 1 < layers.size()) at = at.putObject("backing");
            else if (layers.get(l).format().equals("qcow2")) at.putNull("backing");
        }
        return node.toString();
    }

    /**
     * The configuration on copies (in {@code dir}, this restore's) of its writable flash (the firmware's variables): QEMU writes
     * the flash's contents, which the stream carries, back to its file once the guest runs, and an image is never written.
     */
    private static VmConfig withOwnFlash(VmConfig config, Path dir, String where) {
        VmConfig own = config;
        for (VmConfig.Flash f : config.flash()) {
            if (f.readOnly()) continue;
            Path copy = dir.resolve(f.role() + ".fd");
            try {
                Files.copy(f.file(), copy);
            } catch (IOException e) {
                FileTrees.deleteQuietly(dir);
                throw new RestoreException(where + "cannot copy the firmware's flash " + f.file() + " to " + copy + ": " + e, e);
            }
            own = own.withGuestFile(f.role(), copy);
        }
        return own;
    }

    /**
     * The configuration on fresh qcow2 overlays (created now in {@code directory}, a new directory of the caller's) of its
     * writable disks, its read-only ones as they are: a restore of another save than Thaw's (QEMU's own, in the bench) whose
     * disks were frozen for it.
     */
    public static VmConfig onFreshOverlays(VmConfig config, Path directory) {
        try {
            OwnerOnly.createDirectories(directory);
        } catch (IOException e) {
            throw new RestoreException("cannot create " + directory + " for disk overlays: " + e, e);
        }
        List<String> none = java.util.Collections.nCopies(config.disks().size(), null);
        return config.withDisks(onOverlays(config.disks(), none, null, directory, ""));
    }

    /**
     * @param backings per disk, null, or a {@code json:} chain its overlay names as its backing file instead of the base's
     *                 path (then with the disk's virtual size from {@code manifestDisks}, since qemu-img does not open it);
     *                 a read-only disk with one goes on a read-only overlay, since its own headers name other files
     */
    private static List<VmConfig.Disk> onOverlays(List<VmConfig.Disk> bases, List<String> backings, List<Manifest.Disk> manifestDisks,
                                                  Path dir, String where) {
        List<VmConfig.Disk> launch = new ArrayList<>();
        try {
            for (int i = 0; i < bases.size(); i++) {
                VmConfig.Disk base = bases.get(i);
                String backing = backings.get(i);
                if (base.readOnly() && backing == null) {
                    launch.add(base);
                    continue;
                }
                Path overlay = dir.resolve(base.node() + ".qcow2");
                List<String> create = backing == null
                        ? List.of("qemu-img", "create", "-q", "-f", "qcow2", "-F", base.format(), "-b", base.file().toString(), overlay.toString())
                        : List.of("qemu-img", "create", "-q", "-f", "qcow2", "-u", "-F", base.format(), "-b", backing, overlay.toString(),
                                Long.toString(manifestDisks.get(i).virtualByteSize()));
                ExternalCommand.Result made = ExternalCommand.run(create, QEMU_IMG_TIMEOUT);
                if (!made.succeeded()) {
                    throw new RestoreException(where + "disk " + base.node() + ": cannot create its overlay " + overlay + " on "
                            + base.file() + ": " + made.describe(), null);
                }
                launch.add(base.on(overlay, "qcow2", base.readOnly()));
            }
        } catch (RuntimeException e) {
            FileTrees.deleteQuietly(dir);
            throw e;
        }
        return launch;
    }

    private static Path overlayDirectory(CheckpointImage image, String vmName, java.util.Optional<Path> diskDirectory) {
        Path parent = diskDirectory.orElseGet(() -> directoryFor(image.directory()));
        try {
            OwnerOnly.createDirectories(parent);
            // A name of its own per restore: restores of one image (even under one --name) run at once.
            return Files.createTempDirectory(parent, vmName + "-"); // 0700
        } catch (IOException e) {
            throw new RestoreException("image " + image.directory() + ": cannot create a directory for its disks' overlays under "
                    + parent + ": " + e, e);
        }
    }

    private static void check(CheckpointImage image, Manifest.GuestFile g, Path copy) {
        try (InputStream in = new DigestInputStream(Files.newInputStream(copy, LinkOption.NOFOLLOW_LINKS),
                MessageDigest.getInstance("SHA-256"))) {
            long bytes = in.transferTo(java.io.OutputStream.nullOutputStream());
            String sha = HexFormat.of().formatHex(((DigestInputStream) in).getMessageDigest().digest());
            if (!Files.isRegularFile(copy, LinkOption.NOFOLLOW_LINKS) || bytes != g.byteSize() || !sha.equals(g.sha256())) {
                throw new RestoreException("image " + image.directory() + ": guest " + g.role() + " " + copy + ": expected a regular file of "
                        + g.byteSize() + " bytes with SHA-256 " + g.sha256() + ", actual " + bytes + " bytes with " + sha, null);
            }
        } catch (IOException e) {
            throw new RestoreException("image " + image.directory() + ": guest " + g.role() + " " + copy + ": cannot be read: " + e, e);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
