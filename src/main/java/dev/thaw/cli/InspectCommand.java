package dev.thaw.cli;

import dev.thaw.image.CheckpointImage;
import dev.thaw.image.Manifest;
import dev.thaw.image.Store;
import dev.thaw.qemu.FreePages;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "inspect", mixinStandardHelpOptions = true,
        description = {"Describe (and with --verify, check) a checkpoint image.",
                "Describes a checkpoint image: RAM blocks, pages (total, zero, stored, duplicate), stored bytes,",
                "compression and dedup ratios. --verify reads every byte and checks every checksum, and exits",
                "non-zero naming the file and offset of the first mismatch. Given a shared store (thaw save --store),",
                "--verify opens every image the store lists and reads every pack whole."})
final class InspectCommand implements Callable<Integer> {
    @Parameters(index = "0", description = "The image directory, or a shared store with --verify.")
    Path image;

    @Option(names = "--verify", description = "Read every byte of every file and check every checksum.")
    boolean verify;

    @Option(names = "--json", description = "Print the manifest (and the verification) as JSON.")
    boolean json;

    /** @param freePages the saved guest's balloon, from its recorded launch configuration (null: none recorded) */
    record InspectReport(Manifest manifest, double compressionRatio, double dedupRatio, CheckpointImage.VerifyReport verified,
                         FreePages freePages, CheckpointImage.DiskReferenceCounts diskReferences) {}

    @Override
    public Integer call() {
        if (Store.isStore(image)) return verifyStore();
        try (CheckpointImage img = CheckpointImage.open(image)) {
            Manifest m = img.manifest();
            CheckpointImage.VerifyReport verified = verify ? img.verify() : null;
            Manifest.Stats s = m.stats();
            if (json) {
                System.out.println(Json.write(new InspectReport(m, s.compressionRatio(), s.dedupRatio(), verified,
                        FreePages.ofRecorded(m.source().vmConfig()).orElse(null), img.diskReferences())));
                return 0;
            }
            System.out.printf("image %s (format %d, id %s, created %s by Thaw %s)%n", img.directory(), m.formatVersion(), m.imageId(),
                    m.createdAt(), m.thawVersion());
            System.out.printf("source: QEMU %s, machine %s%n", m.source().qemuVersion(), m.source().machineType());
            // Freed pages of a reporting guest read as zero; a stopped save sends every page whatever the hinting (FreePages).
            System.out.printf("free pages: %s%n", FreePages.ofRecorded(m.source().vmConfig()).map(FreePages::describe)
                    .orElse("unknown (no launch configuration recorded)"));
            System.out.printf("page cache: %s%n", pageCache(m.pageCacheDrop()));
            System.out.println("RAM blocks:");
            for (Manifest.Block b : m.ramBlocks()) {
                System.out.printf("  %-28s %10d KiB  %8d pages  page size %d%n", b.name(), b.usedByteSize() >> 10, b.pageCount(), b.pageByteSize());
            }
            System.out.printf("pages: %d total, %d zero, %d stored, %d duplicate, %d shared with other images%n", s.pageCount(),
                    s.zeroPageCount(), s.storedPageCount(), s.duplicatePageCount(), s.sharedPageCount());
            CheckpointImage.DiskReferenceCounts refs = img.diskReferences();
            System.out.printf("disk references: %d pages (%d bytes) taken from the disk bases, %d distinct blocks%n", refs.pageCount(),
                    refs.byteSize(), refs.blockCount());
            System.out.printf("bytes: %d payload referenced (%d written by this save), %d in image files%n", s.referencedPayloadBytes(),
                    s.writtenPayloadBytes(), s.imageFileBytes());
            System.out.printf("compression %.2fx (%s%s, %d pages per group), dedup %.2fx; store %s; page order: %s%n",
                    s.compressionRatio(), m.storage().codec(), m.storage().codec().equalsIgnoreCase("zstd") ? ", level " + m.storage().zstdLevel() : "",
                    m.storage().groupPageCount(), s.dedupRatio(),
                    img.storeDirectory(), m.pageOrder());
            for (Manifest.GuestFile g : m.guestFiles()) {
                System.out.printf("guest %s: %s, %d bytes, SHA-256 %s%n", g.role(), g.in(img.directory()), g.byteSize(), g.sha256());
            }
            for (int i = 0; i < m.disks().size(); i++) {
                Manifest.Disk d = m.disks().get(i);
                java.nio.file.Path base = img.diskBase(i);
                System.out.printf("disk %s: base %s (%s, %d MiB, virtio-blk at PCI %s%s): %s%n", d.node(), base, d.format(),
                        d.virtualByteSize() >> 20, d.pciAddress(), d.readOnly() ? ", read-only" : "", baseState(d, base));
            }
            if (verified != null) {
                System.out.printf("verified: %d files, %d bytes, %d extents, %d page digests, %d disk blocks: all checksums match%n",
                        verified.fileCount(), verified.byteCount(), verified.extentCount(), verified.pageCount(), verified.diskPageCount());
            }
            return 0;
        }
    }

    /** What the save did with the guest's page cache ({@code save --drop-caches}), as inspect and save print it. */
    static String pageCache(Manifest.PageCacheDrop d) {
        if (d == null) return "saved as the guest held it (not dropped)";
        return String.format("dropped before the save (sync, drop_caches=%d): %d MiB -> %d MiB (Buffers + Cached), guest free %d MiB -> %d MiB;"
                        + " %s; took %.2f s", d.dropCachesValue(), d.pageCacheBytesBefore() >> 20, d.pageCacheBytesAfter() >> 20,
                d.freeBytesBefore() >> 20, d.freeBytesAfter() >> 20, d.freePagesReported()
                        ? "freed pages reported by the balloon, zero in the image" : "no free-page reporting: freed pages kept their bytes",
                d.dropNanos() / 1e9);
    }

    /** Whether a restore would accept the disk's base now. */
    private static String baseState(Manifest.Disk d, java.nio.file.Path base) {
        try {
            java.util.List<String> changed = d.identity().differencesTo(dev.thaw.image.DiskIdentity.of(base));
            return changed.isEmpty() ? "unchanged since the save" : "CHANGED since the save (" + String.join("; ", changed)
                    + "): restores refuse it";
        } catch (java.io.IOException | java.nio.file.InvalidPathException e) {
            return "UNREADABLE (" + e.getMessage() + "): restores refuse it";
        }
    }

    private Integer verifyStore() {
        if (!verify) throw new IllegalArgumentException(image + " is a store: expected --verify (inspect describes images)");
        Store.VerifyReport r = Store.open(image).verify();
        if (json) {
            System.out.println(Json.write(r));
            return 0;
        }
        System.out.printf("store %s verified: %d images open, %d packs (%d bytes, %d extents, %d page digests), %d disk blocks:"
                + " all checksums match%n", r.store(), r.imageCount(), r.packCount(), r.byteCount(), r.extentCount(), r.pageCount(), r.diskPageCount());
        if (!r.unreferencedPacks().isEmpty()) {
            System.out.printf("%d packs no listed image uses (thaw gc deletes them): %s%n", r.unreferencedPacks().size(),
                    r.unreferencedPacks());
        }
        return 0;
    }
}
