package dev.thaw.image;

import dev.thaw.estimate.PageRef;
import dev.thaw.estimate.WorkingSet;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;

/**
 * Attaches a working set to an existing image, or replaces the one it has: copies the queue's
 * non-zero pages, in queue order, into a new pack (groups and codec as the image's), writes the
 * section, then switches atomically by replacing the manifest (temporary file, fsync, rename).
 * Until the rename the image is exactly the old one; after it, the old section is deleted, and so
 * is its pack if the image has its own store (a restore that has them open keeps reading them). In
 * a shared store the old pack stays for {@code gc}: a later save may have found its content there.
 * The whole attach holds the shared store's lock shared, so no gc deletes the new pack before the
 * manifest names it. The page map, the base packs and the device state are never touched, and
 * restores never call this: it runs on a save's request or an operator's ({@code thaw ws --learn}).
 */
public final class WorkingSetWriter {
    private WorkingSetWriter() {}

    public static Manifest attach(Path imageDir, WorkingSet ws) {
        Path dir = imageDir.toAbsolutePath().normalize();
        Manifest current = Manifest.read(dir.resolve(ImageWriter.MANIFEST));
        if (!Store.isShared(current)) return attachLocked(dir, ws, true);
        try (StoreLock.Held held = Store.createOrOpen(Store.directoryOf(current, dir)).lockShared()) {
            return attachLocked(dir, ws, false);
        }
    }

    private static Manifest attachLocked(Path imageDir, WorkingSet ws, boolean deleteOldPack) {
        Manifest old;
        UUID imageId;
        Path store = null;
        String oldPackId;
        WorkingSetSection section;
        Pack.Writer pack = null;
        FramedWriter.Written sealed = null;
        try (CheckpointImage image = CheckpointImage.open(imageDir)) {
            old = image.manifest();
            imageId = UUID.fromString(old.imageId());
            store = image.storeDirectory();
            oldPackId = image.workingSetPackId().map(UUID::toString).orElse(null);
            for (PageRef p : ws.pages()) {
                if (p.block() >= image.ramBlocks().size() || p.page() >= image.ramBlocks().get(p.block()).pageCount()) {
                    throw new IllegalArgumentException("working set: page " + p + " is outside the image's RAM blocks");
                }
            }
            int groupPages = old.storage().groupPageCount();
            Codec codec = Codec.valueOf(old.storage().codec().toUpperCase(java.util.Locale.ROOT));
            byte[] group = new byte[groupPages * 4096];
            PageDigest[] digests = new PageDigest[groupPages];
            long[] locations = new long[ws.size()];
            List<ExtentInfo> extents = new ArrayList<>();
            int inGroup = 0;
            List<WorkingSet.Entry> entries = ws.entries();
            for (int i = 0; i < entries.size(); i++) {
                PageRef p = entries.get(i).page();
                if (!image.readPage(p.block(), p.page(), group, inGroup * 4096)) continue; // zero: nothing to copy
                if (pack == null) pack = new Pack.Writer(store);
                digests[inGroup] = PageDigest.of(group, inGroup * 4096, 4096);
                locations[i] = PageMap.stored(extents.size(), inGroup);
                if (++inGroup == groupPages) {
                    extents.add(pack.append(group, inGroup, digests, codec, old.storage().zstdLevel()));
                    inGroup = 0;
                }
            }
            if (inGroup > 0) extents.add(pack.append(group, inGroup, digests, codec, old.storage().zstdLevel()));
            if (pack != null) {
                sealed = pack.seal();
                FramedWriter.syncDirectory(store);
            }
            section = new WorkingSetSection(ws, locations, pack == null ? null : pack.id(), List.copyOf(extents));
        } catch (RuntimeException e) {
            if (pack != null) {
                pack.close();
                deleteQuietly(store.resolve(Pack.fileName(pack.id())));
            }
            throw e;
        }
        Path dir = imageDir.toAbsolutePath().normalize();
        String name = WorkingSetSection.FILE_PREFIX + UUID.randomUUID().toString().substring(0, 8) + ".thaw";
        FramedWriter.Written written;
        try (FramedWriter out = new FramedWriter(dir.resolve(name), FileKind.WORKING_SET, imageId)) {
            out.write(section.encode());
            written = out.finish();
        }
        List<Manifest.FileEntry> files = new ArrayList<>();
        List<String> oldSections = new ArrayList<>();
        for (Manifest.FileEntry f : old.files()) {
            if (f.kind().equals("working_set")) oldSections.add(f.name());
            else files.add(f);
        }
        files.add(new Manifest.FileEntry(name, "working_set", written.byteSize(), Long.toHexString(written.checksum())));
        // The old section's pack is the last pack listed (this class appends it) and only that section uses it.
        List<Manifest.PackEntry> packs = new ArrayList<>(old.storage().packs());
        String oldPack = null;
        if (oldPackId != null && packs.getLast().packId().equals(oldPackId)) {
            oldPack = packs.removeLast().file();
        }
        if (sealed != null) {
            packs.add(new Manifest.PackEntry(section.packId().toString(), Pack.fileName(section.packId()), sealed.byteSize(),
                    Long.toHexString(sealed.checksum())));
        }
        Manifest updated = old.withFiles(files, new Manifest.Storage(old.storage().codec(), old.storage().zstdLevel(),
                old.storage().groupPageCount(), old.storage().storeDirectory(), packs));
        byte[] body;
        try {
            body = ImageWriter.JSON.writeValueAsBytes(updated);
        } catch (IOException e) {
            throw new ImageException.CannotWrite(dir.resolve(ImageWriter.MANIFEST), e.toString(), e);
        }
        // The image was verified when opened above; both MACs are accepted until the switch is over.
        String mac = ImageMac.configured().map(key -> ImageMac.compute(key, body, updated, dir)).orElse(null);
        if (mac != null) {
            List<String> accepted = new ArrayList<>(ImageMac.read(dir));
            accepted.add(mac);
            ImageMac.write(dir, accepted);
        }
        try (FramedWriter out = new FramedWriter(dir.resolve(ImageWriter.MANIFEST), FileKind.MANIFEST, imageId)) {
            out.write(body);
            out.finish(); // the switch: an atomic rename over the old manifest
        }
        FramedWriter.syncDirectory(dir);
        if (mac != null) ImageMac.write(dir, List.of(mac));
        for (String s : oldSections) deleteQuietly(dir.resolve(s));
        if (oldPack != null && deleteOldPack) deleteQuietly(store.resolve(oldPack));
        return updated;
    }

    private static void deleteQuietly(Path p) {
        try {
            Files.deleteIfExists(p);
        } catch (IOException e) {
            // garbage that nothing references
        }
    }
}
