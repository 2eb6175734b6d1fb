package dev.thaw.restore;

import dev.thaw.image.CheckpointImage;
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
        for (Manifest.Disk d : disks) {
            VmConfig.Disk base;
            try {
                base = new VmConfig.Disk(d.node(), d.format(), Path.of(d.base()), d.readOnly(), d.pciAddress(), d.bootIndex());
            } catch (IllegalArgumentException e) {
                throw new RestoreException("image " + image.directory() + ": the recorded disk is invalid: " + e.getMessage(), e);
            }
            DiskIdentity now;
            try {
                now = DiskIdentity.of(base.file());
            } catch (IOException e) {
                throw new RestoreException("image " + image.directory() + ": disk " + d.node() + " (base " + d.base() + "): " + e.getMessage(), e);
            }
            List<String> changed = d.identity().differencesTo(now);
            if (!changed.isEmpty()) {
                throw new RestoreException("image " + image.directory() + ": disk " + d.node() + " (base " + d.base()
                        + ") changed since the save: " + String.join("; ", changed) + ". Every restore must start from the disk"
                        + " state the save froze: put the base back as it was, or save the guest again", null);
            }
            bases.add(base);
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
        return withOwnFlash(saved, dir, where).withDisks(onOverlays(bases, dir, where));
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
        return config.withDisks(onOverlays(config.disks(), directory, ""));
    }

    private static List<VmConfig.Disk> onOverlays(List<VmConfig.Disk> bases, Path dir, String where) {
        List<VmConfig.Disk> launch = new ArrayList<>();
        try {
            for (VmConfig.Disk base : bases) {
                if (base.readOnly()) {
                    launch.add(base);
                    continue;
                }
                Path overlay = dir.resolve(base.node() + ".qcow2");
                ExternalCommand.Result made = ExternalCommand.run(List.of("qemu-img", "create", "-q", "-f", "qcow2", "-F", base.format(),
                        "-b", base.file().toString(), overlay.toString()), QEMU_IMG_TIMEOUT);
                if (!made.succeeded()) {
                    throw new RestoreException(where + "disk " + base.node() + ": cannot create its overlay " + overlay + " on "
                            + base.file() + ": " + made.describe(), null);
                }
                launch.add(base.on(overlay, "qcow2", false));
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
