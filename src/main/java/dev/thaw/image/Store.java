package dev.thaw.image;

import dev.thaw.util.FileTrees;
import dev.thaw.util.OwnerOnly;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.UUID;
import java.util.function.Consumer;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A content store shared by several images ({@code thaw save --store DIR}): its packs, the list of
 * the images that use it, and its lock. Ownership is mark and sweep: only {@link #collectGarbage}
 * deletes a pack, under the exclusive lock, after marking every pack any listed image's manifest
 * names; writers hold the lock shared from before their first pack until their manifest names it.
 * See the package documentation (Shared stores) for the rules.
 */
public final class Store {
    private static final Logger log = LoggerFactory.getLogger(Store.class);
    static final String IMAGES = "images";
    private static final String PENDING = ".pending";
    private static final String COMMITTED = ".image";
    private static final Pattern PACK_NAME = Pattern.compile("pack-([0-9a-f-]{36})\\.thaw");
    private static final Pattern REGISTRATION = Pattern.compile("([0-9a-f-]{36})(\\.pending|\\.image)");

    private final Path directory;

    private Store(Path directory) {
        this.directory = directory.toAbsolutePath().normalize();
    }

    /**
     * The store at {@code dir}, created (mode 0700) if absent. A directory with packs but no image list (a store of a
     * Thaw before stores had owners) is refused: a gc would take its images' packs for garbage.
     */
    static Store createOrOpen(Path dir) {
        Store store = new Store(dir);
        if (!isStore(store.directory) && !store.packs().isEmpty()) {
            throw new ImageException.Missing(store.directory.resolve(IMAGES), "is missing: expected a store with its list of"
                    + " images, actual " + store.packs().size() + " packs without one (written by an older Thaw); use a new store", null);
        }
        try {
            OwnerOnly.createDirectories(store.directory.resolve(IMAGES));
        } catch (IOException e) {
            throw new ImageException.CannotWrite(store.directory, "cannot create the store: " + e, e);
        }
        return store;
    }

    /** An existing store: a directory with an image list. */
    public static Store open(Path dir) {
        Store store = new Store(dir);
        if (!isStore(store.directory)) {
            throw new ImageException.Missing(store.directory.resolve(IMAGES), "is missing: expected a Thaw store (a directory"
                    + " that thaw save --store made, with its list of images)", null);
        }
        return store;
    }

    public static boolean isStore(Path dir) {
        return Files.isDirectory(dir.resolve(IMAGES));
    }

    public Path directory() {
        return directory;
    }

    /** Where an image's packs are; a relative store directory is the image's own ({@code store/}). */
    static Path directoryOf(Manifest manifest, Path imageDir) {
        Path store = Path.of(manifest.storage().storeDirectory());
        return store.isAbsolute() ? store : imageDir.resolve(store);
    }

    /** Whether the image's packs are in a store other images may use (its manifest names an absolute directory). */
    static boolean isShared(Manifest manifest) {
        return Path.of(manifest.storage().storeDirectory()).isAbsolute();
    }

    StoreLock.Held lockShared() {
        return StoreLock.of(directory).shared();
    }

    StoreLock.Held lockExclusive() {
        return StoreLock.of(directory).exclusive();
    }

    // ---- the list of images: images/ID.pending while a save writes, images/ID.image once it committed

    /** One entry of the image list; {@code committed} is false while (or if) its save had not committed. */
    record Registration(UUID imageId, Path image, boolean committed, Path file) {}

    /** Lists an image before its save writes a pack, so a gc after a crash knows whose the leftovers were. */
    void registerPending(UUID imageId, Path image) {
        Path file = directory.resolve(IMAGES).resolve(imageId + PENDING);
        try {
            Path tmp = Files.createTempFile(file.getParent(), ".registration", ".tmp", OwnerOnly.FILE);
            Files.writeString(tmp, image.toAbsolutePath().normalize() + "\n", StandardCharsets.UTF_8);
            Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new ImageException.CannotWrite(file, "cannot list the image in its store: " + e, e);
        }
        FramedWriter.syncDirectory(file.getParent());
    }

    /** Marks a listed image committed; until then a gc keeps it only if its directory holds its manifest. */
    void registerCommitted(UUID imageId) {
        Path images = directory.resolve(IMAGES);
        try {
            Files.move(images.resolve(imageId + PENDING), images.resolve(imageId + COMMITTED), StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new ImageException.CannotWrite(images.resolve(imageId + COMMITTED), "cannot mark the image committed: " + e, e);
        }
        FramedWriter.syncDirectory(images);
    }

    void unregister(UUID imageId) {
        Path images = directory.resolve(IMAGES);
        try {
            Files.deleteIfExists(images.resolve(imageId + PENDING));
            Files.deleteIfExists(images.resolve(imageId + COMMITTED));
        } catch (IOException e) {
            throw new ImageException.CannotWrite(images, "cannot remove image " + imageId + " from the store's list: " + e, e);
        }
        FramedWriter.syncDirectory(images);
    }

    List<Registration> registrations() {
        List<Registration> out = new ArrayList<>();
        for (Path file : list(directory.resolve(IMAGES))) {
            Matcher m = REGISTRATION.matcher(file.getFileName().toString());
            if (!m.matches()) continue;
            try {
                Path image = Path.of(Files.readString(file, StandardCharsets.UTF_8).strip());
                out.add(new Registration(UUID.fromString(m.group(1)), image, m.group(2).equals(COMMITTED), file));
            } catch (IOException e) {
                throw new ImageException.Missing(file, "cannot be read: " + e, e);
            }
        }
        return out;
    }

    /**
     * The manifest of a listed image if its directory holds that image; empty if the directory or its manifest is
     * gone or holds another image. A manifest that is there but damaged throws: its packs cannot be known.
     */
    private static Optional<Manifest> manifestOf(Registration r) {
        Path manifestFile = r.image().resolve(ImageWriter.MANIFEST);
        if (!Files.exists(manifestFile)) return Optional.empty();
        Manifest m = Manifest.read(manifestFile);
        return m.imageId().equals(r.imageId().toString()) ? Optional.of(m) : Optional.empty();
    }

    // ---- packs

    private record PackFile(UUID id, Path path) {}

    private List<PackFile> packs() {
        List<PackFile> out = new ArrayList<>();
        for (Path p : list(directory)) {
            Matcher m = PACK_NAME.matcher(p.getFileName().toString());
            if (m.matches()) out.add(new PackFile(UUID.fromString(m.group(1)), p));
        }
        return out;
    }

    /**
     * Every page of every readable pack's index, in pack name order. A pack that cannot be read (damaged, truncated)
     * is skipped with a warning: a save then stores that content anew instead of failing.
     */
    void forEachIndexedPage(Consumer<Pack.IndexedPage> action) {
        for (PackFile pack : packs()) {
            List<Pack.IndexedPage> index;
            try (Pack.Reader reader = new Pack.Reader(pack.path(), pack.id())) {
                index = reader.readIndex();
            } catch (ImageException e) {
                log.warn("store {}: not deduplicating against an unreadable pack: {}", directory, e.getMessage());
                continue;
            }
            index.forEach(action);
        }
    }

    // ---- gc, rm, verify

    /**
     * @param liveImages      images whose packs were kept
     * @param forgottenImages images dropped from the list (a save that died; with --forget-missing, images gone)
     * @param deletedPacks    pack files deleted (no listed image's manifest names them)
     */
    public record GcReport(Path store, List<Path> liveImages, List<Path> forgottenImages, int keptPackCount,
                           List<String> deletedPacks, long freedByteSize, int deletedTemporaryFileCount) {}

    /**
     * Mark and sweep under the exclusive lock: marks every pack the manifest of a listed image names, then deletes
     * every other pack and the temporary files of writers that died. A committed image whose directory is gone
     * (deleted or moved by hand) fails the collection unless {@code forgetMissing}, since its packs cannot be told
     * apart from garbage; nothing is deleted then.
     */
    public GcReport collectGarbage(boolean forgetMissing) {
        try (StoreLock.Held held = lockExclusive()) {
            Set<String> marked = new HashSet<>();
            List<Path> live = new ArrayList<>();
            List<Registration> forgotten = new ArrayList<>();
            List<Registration> missing = new ArrayList<>();
            for (Registration r : registrations()) {
                Optional<Manifest> manifest = manifestOf(r);
                if (manifest.isPresent()) {
                    manifest.get().storage().packs().forEach(p -> marked.add(p.file()));
                    live.add(r.image());
                } else if (!r.committed() || forgetMissing) {
                    forgotten.add(r);
                } else {
                    missing.add(r);
                }
            }
            if (!missing.isEmpty()) {
                throw new ImageException.Missing(missing.getFirst().image(), "is missing: store " + directory + " lists "
                        + missing.size() + " image(s) whose directory no longer holds them (" + missing.stream().map(r -> r.image()
                        .toString()).toList() + "); expected them in place (images are removed with thaw rm): nothing was collected;"
                        + " --forget-missing frees their packs", null);
            }
            for (Registration r : forgotten) unregister(r.imageId());
            List<String> deleted = new ArrayList<>();
            long freed = 0;
            int kept = 0;
            for (PackFile pack : packs()) {
                String name = pack.path().getFileName().toString();
                if (marked.contains(name)) {
                    kept++;
                    continue;
                }
                freed += sizeOrZero(pack.path());
                delete(pack.path());
                deleted.add(name);
            }
            int temporaries = 0;
            for (Path dir : List.of(directory, directory.resolve(IMAGES))) {
                for (Path p : list(dir)) {
                    String name = p.getFileName().toString();
                    // No writer runs under the exclusive lock: its temporary files are leftovers of one that died.
                    if (name.contains(".tmp-") || (name.startsWith(".registration") && name.endsWith(".tmp"))) {
                        delete(p);
                        temporaries++;
                    }
                }
            }
            FramedWriter.syncDirectory(directory);
            return new GcReport(directory, live, forgotten.stream().map(Registration::image).toList(), kept, deleted, freed,
                    temporaries);
        }
    }

    /** What {@link #removeImage} removed; {@code store} is null for an image with its own store. */
    public record Removed(Path image, String imageId, Path store) {}

    /**
     * Removes an image: it leaves the store's list (under the store's exclusive lock, so no gc or save sees half of
     * it), then its directory is renamed away (the image disappears at once) and deleted. Packs in a shared store are
     * freed by the next {@code gc}.
     */
    public static Removed removeImage(Path imageDir) {
        Path dir = imageDir.toAbsolutePath().normalize();
        Manifest manifest = Manifest.read(dir.resolve(ImageWriter.MANIFEST));
        if (!isShared(manifest)) {
            deleteImageDirectory(dir);
            return new Removed(dir, manifest.imageId(), null);
        }
        Store store = new Store(directoryOf(manifest, dir));
        if (!isStore(store.directory)) {
            throw new ImageException.Missing(store.directory.resolve(IMAGES), "is missing: image " + dir + " names store "
                    + store.directory + ", expected a Thaw store with its list of images", null);
        }
        try (StoreLock.Held held = store.lockExclusive()) {
            store.unregister(UUID.fromString(manifest.imageId()));
            deleteImageDirectory(dir);
        }
        return new Removed(dir, manifest.imageId(), store.directory);
    }

    private static void deleteImageDirectory(Path dir) {
        Path away = dir.resolveSibling("." + dir.getFileName() + ".removing-" + UUID.randomUUID().toString().substring(0, 8));
        try {
            Files.move(dir, away, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new ImageException.CannotWrite(dir, "cannot remove the image: " + e, e);
        }
        FramedWriter.syncDirectory(dir.getParent());
        FileTrees.deleteQuietly(away);
    }

    /**
     * @param imageCount        listed images opened (every metadata file and pack frame checked)
     * @param unreferencedPacks packs no listed image names (garbage a gc would delete)
     * @param diskPageCount     blocks the listed images take from their disk bases, read and checked against their SHA-256
     */
    public record VerifyReport(Path store, int imageCount, int packCount, long byteCount, long extentCount, long pageCount,
                               List<String> unreferencedPacks, long diskPageCount) {}

    /**
     * Checks the whole store under the shared lock (so no gc runs meanwhile): every listed image opens (its metadata
     * checksums and its packs' frames, sizes and checksums), and every pack is read whole: file checksum, every
     * extent, every page's SHA-256. Throws {@link ImageException} at the first problem, naming the file.
     */
    public VerifyReport verify() {
        try (StoreLock.Held held = lockShared()) {
            Set<String> referenced = new LinkedHashSet<>();
            int images = 0;
            long diskPages = 0;
            for (Registration r : registrations()) {
                Optional<Manifest> manifest = manifestOf(r);
                if (manifest.isEmpty()) {
                    if (r.committed()) {
                        throw new ImageException.Missing(r.image(), "is missing: store " + directory + " lists image " + r.imageId()
                                + " there", null);
                    }
                    continue; // a save that died: garbage for gc
                }
                try (CheckpointImage image = CheckpointImage.open(r.image())) {
                    image.manifest().storage().packs().forEach(p -> referenced.add(p.file()));
                    diskPages += image.verifyDiskReferences();
                }
                images++;
            }
            long bytes = 0;
            long extents = 0;
            long pages = 0;
            List<String> unreferenced = new ArrayList<>();
            List<PackFile> packs = packs();
            for (PackFile pack : packs) {
                try (Pack.Reader reader = new Pack.Reader(pack.path(), pack.id())) {
                    reader.verifyFileChecksum();
                    List<ExtentInfo> all = reader.readIndex().stream().map(Pack.IndexedPage::extent).distinct().toList();
                    pages += reader.verifyExtents(all);
                    extents += all.size();
                    bytes += reader.frame().fileBytes();
                }
                if (!referenced.contains(pack.path().getFileName().toString())) unreferenced.add(pack.path().getFileName().toString());
            }
            return new VerifyReport(directory, images, packs.size(), bytes, extents, pages, unreferenced, diskPages);
        }
    }

    private static List<Path> list(Path dir) {
        try (Stream<Path> files = Files.list(dir)) {
            return files.sorted().toList();
        } catch (NoSuchFileException e) {
            return List.of();
        } catch (IOException e) {
            throw new ImageException.Missing(dir, "cannot be listed: " + e, e);
        }
    }

    private static long sizeOrZero(Path p) {
        try {
            return Files.size(p);
        } catch (IOException e) {
            return 0;
        }
    }

    private static void delete(Path p) {
        try {
            Files.deleteIfExists(p);
        } catch (IOException e) {
            throw new ImageException.CannotWrite(p, "cannot delete: " + e, e);
        }
    }
}
