package dev.thaw.save;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.thaw.image.DiskIdentity;
import dev.thaw.image.Manifest;
import dev.thaw.qemu.QmpClient;
import dev.thaw.qemu.VmConfig;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * A save's disks: at the save's stop each disk's file becomes the image's frozen base. QEMU flushed it when it stopped the
 * guest ({@code stop} drains and flushes every disk). A guest that goes on ({@code --keep-running}) continues on a new qcow2
 * overlay beside its base ({@code blockdev-snapshot-sync}, taken while it is stopped, so its base is exactly the saved
 * state); a guest left stopped keeps writing its base if someone resumes it, which the next restore then refuses by the
 * base's identity. The identity is taken after the migration completed, when QEMU has let go of the files (it inactivates
 * them at the end of a migration) and nothing of the save writes them any more.
 */
public final class DiskFreeze {
    private static final org.slf4j.Logger log = org.slf4j.LoggerFactory.getLogger(DiskFreeze.class);
    private static final ObjectMapper JSON = new ObjectMapper();

    /** The disks as they were at the stop, and the overlays the source went on on. */
    record Frozen(List<Pending> disks, List<Path> sourceOverlays) {
        static final Frozen NONE = new Frozen(List.of(), List.of());

        /** The manifest's entries, each with its base's identity as it is now. */
        List<Manifest.Disk> entries() {
            List<Manifest.Disk> out = new ArrayList<>();
            for (Pending p : disks) {
                VmConfig.Disk d = p.disk();
                try {
                    out.add(new Manifest.Disk(d.node(), d.pciAddress(), d.format(), d.file().toString(), d.readOnly(), p.virtualByteSize(),
                            DiskIdentity.of(d.file()), d.bootIndex()));
                } catch (IOException e) {
                    throw new SaveException("disk " + d.node() + " (" + d.file() + "): cannot take its identity: " + e.getMessage(), e);
                }
            }
            return List.copyOf(out);
        }
    }

    record Pending(VmConfig.Disk disk, long virtualByteSize) {}

    private DiskFreeze() {}

    /**
     * Called with the guest stopped, before the migration: records each disk's virtual size and, when the guest will run on,
     * moves each writable one onto a new overlay named after the image ({@code BASE.after-IMAGE.qcow2}).
     */
    static Frozen atStop(QmpClient qmp, List<VmConfig.Disk> disks, boolean guestRunsOn, Path imageDir) {
        if (disks.isEmpty()) return Frozen.NONE;
        JsonNode blocks = qmp.execute("query-block");
        List<Pending> pending = new ArrayList<>();
        List<Path> overlays = new ArrayList<>();
        for (VmConfig.Disk d : disks) {
            JsonNode inserted = blockOf(blocks, d).path("inserted");
            pending.add(new Pending(d, inserted.path("image").path("virtual-size").asLong()));
            if (d.readOnly() || !guestRunsOn) continue;
            Path overlay = overlayFor(d.file(), imageDir);
            if (Files.exists(overlay)) {
                throw new SaveException("disk " + d.node() + ": the overlay the guest would go on on, " + overlay
                        + ", exists already: expected a new file (remove it, or save into another --out)", null);
            }
            ObjectNode args = JSON.createObjectNode().put("snapshot-file", overlay.toString()).put("format", "qcow2");
            JsonNode block = blockOf(blocks, d);
            if (!block.path("device").asText().isEmpty()) args.put("device", block.path("device").asText());
            else {
                // A -blockdev disk has no drive name: QEMU then needs the new overlay's node name too, unique in that QEMU and at most
                // 31 characters (BlockDriverState.node_name).
                String node = inserted.path("node-name").asText();
                args.put("node-name", node).put("snapshot-node-name", node.substring(0, Math.min(node.length(), 15)) + "-after-"
                        + java.util.HexFormat.of().toHexDigits(java.util.concurrent.ThreadLocalRandom.current().nextInt()));
            }
            qmp.execute("blockdev-snapshot-sync", args);
            overlays.add(overlay);
        }
        return new Frozen(List.copyOf(pending), List.copyOf(overlays));
    }

    /**
     * The overlay a running guest goes on on after a save into {@code imageDir}: {@code BASE.after-IMAGE.qcow2} beside its disk
     * file, named from the disk's first file: a guest saved again (now on {@code data.qcow2.after-web.qcow2}) goes on on
     * {@code data.qcow2.after-web2.qcow2}, so that the names do not grow with every save (they did, past the file system's
     * 255 bytes at the bench's sixth save).
     */
    static Path overlayFor(Path diskFile, Path imageDir) {
        String name = diskFile.getFileName().toString();
        int after = name.indexOf(".after-");
        return diskFile.resolveSibling((after > 0 ? name.substring(0, after) : name) + ".after-" + imageDir.getFileName() + ".qcow2");
    }

    /** The guest's configuration once a save that let it run on moved its writable disks onto {@code sourceOverlays} (in order). */
    public static VmConfig following(VmConfig config, List<Path> sourceOverlays) {
        List<VmConfig.Disk> disks = new ArrayList<>();
        int next = 0;
        for (VmConfig.Disk d : config.disks()) {
            if (d.readOnly()) {
                disks.add(d);
                continue;
            }
            if (next == sourceOverlays.size()) {
                throw new IllegalStateException("disk " + d.node() + ": expected an overlay the guest went on on, actual only "
                        + sourceOverlays.size() + " for its writable disks");
            }
            disks.add(d.on(sourceOverlays.get(next++), "qcow2", false));
        }
        return config.withDisks(disks);
    }

    /**
     * With the guest stopped after another save than Thaw's ({@code savedFile}: QEMU's own, in the bench), freezes its disks as
     * that save's and moves it onto new overlays named after that file; returns its configuration on them.
     */
    public static VmConfig freezeForOtherSave(QmpClient qmp, VmConfig config, Path savedFile) {
        return following(config, atStop(qmp, config.disks(), true, savedFile).sourceOverlays());
    }

    /**
     * A block index taken before the stop: {@code disk} is the disk's place in the guest's disks (the manifest's order),
     * {@code layer} the file's in its chain (0: the disk's file, its base at the stop).
     */
    record Indexed(int disk, int layer, VmConfig.Disk of, Path file, dev.thaw.image.DiskBlockIndex index) {}

    /**
     * Before the stop, while the guest runs: the block index of each raw disk, and of each file of a qcow2 disk's chain
     * ({@link DiskLayers}: its own uncompressed data clusters, at their file offsets), each read from the cache under
     * {@code cacheDirectory} or built (reading the file's data once per identity), so that building it costs the guest no
     * downtime. A disk the guest writes meanwhile leaves the index a little stale (clusters allocated since are not in it),
     * which costs references, never correctness: the save compares every proposed block's bytes, read with the guest stopped.
     */
    static List<Indexed> indexDisks(List<VmConfig.Disk> disks, Path cacheDirectory) {
        List<Indexed> indexed = new ArrayList<>();
        for (int i = 0; i < disks.size(); i++) {
            VmConfig.Disk d = disks.get(i);
            List<DiskLayers.Layer> layers;
            try {
                if (d.format().equals("raw")) layers = List.of(new DiskLayers.Layer(0, d.file(), "raw"));
                else if (d.format().equals("qcow2")) {
                    layers = DiskLayers.of(d.file(), why -> log.warn("disk {} ({}): {}", d.node(), d.file(), why));
                } else continue;
            } catch (IOException | java.io.UncheckedIOException | dev.thaw.image.ImageException e) {
                log.warn("disk {} ({}): its backing chain cannot be read, its pages are stored as data: {}", d.node(), d.file(), e.getMessage());
                continue;
            }
            for (DiskLayers.Layer layer : layers) {
                try {
                    // The index reads the whole file and holds a few dozen bytes per block: a large one would cost the save
                    // seconds per GiB and its heap, for a guest whose page cache holds a few hundred MiB of it at most.
                    long byteSize = Files.size(layer.file());
                    if (byteSize > MAX_INDEXED_BASE_BYTES) {
                        log.info("disk {} ({}): {} MiB, larger than {} MiB: its pages are not searched for disk references", d.node(),
                                layer.file(), byteSize >> 20, MAX_INDEXED_BASE_BYTES >> 20);
                        continue;
                    }
                    dev.thaw.image.DiskBlockIndex.DataExtents extents = layer.format().equals("qcow2") ? DiskLayers::dataExtents : null;
                    indexed.add(new Indexed(i, layer.layer(), d, layer.file(),
                            dev.thaw.image.DiskBlockIndex.forBase(layer.file(), DiskIdentity.of(layer.file()), cacheDirectory, extents).index()));
                } catch (IOException | java.io.UncheckedIOException | dev.thaw.image.ImageException e) {
                    // References only make the image smaller: a file that cannot be indexed (or cached) is saved as data.
                    log.warn("disk {} ({}): its blocks cannot be indexed, its pages are stored as data: {}", d.node(), layer.file(), e.getMessage());
                }
            }
        }
        return List.copyOf(indexed);
    }

    /** The largest file a save indexes for disk references (8 GiB). */
    static final long MAX_INDEXED_BASE_BYTES = 8L << 30;

    /**
     * At the stop: the indexed files as the frozen bases (and backing files) the save takes pages from, each with its identity
     * now. The layers were numbered by a walk of the chain before the stop; the chain is walked again now, and a backing file
     * that is no longer the file of its layer (the top's backing name changed meanwhile) is dropped, so that no reference
     * names a layer the restore's walk finds another file at.
     */
    static List<dev.thaw.image.DiskPages.Base> frozenBases(List<Indexed> indexed) {
        java.util.Map<Integer, List<Path>> chains = new java.util.HashMap<>();
        for (Indexed x : indexed) {
            if (x.layer() == 0) continue;
            List<Path> chain = chains.get(x.disk());
            if (chain == null) {
                int deepest = indexed.stream().filter(y -> y.disk() == x.disk()).mapToInt(Indexed::layer).max().orElseThrow();
                try {
                    chain = dev.thaw.image.Qcow2Chain.upTo(x.of().file(), deepest);
                } catch (IOException | RuntimeException e) {
                    log.warn("disk {} ({}): its backing chain cannot be read again at the stop, its backing files' pages are stored as data: {}",
                            x.of().node(), x.of().file(), e.getMessage());
                    chain = List.of();
                }
                chains.put(x.disk(), chain);
            }
        }
        List<dev.thaw.image.DiskPages.Base> bases = new ArrayList<>();
        for (Indexed x : indexed) {
            if (x.layer() > 0) {
                List<Path> chain = chains.get(x.disk());
                Path now = x.layer() < chain.size() ? chain.get(x.layer()) : null;
                if (!x.file().equals(now)) {
                    if (!chain.isEmpty()) {
                        log.warn("disk {} ({}): layer {}: expected {} as before the stop, actual {}: its pages are stored as data", x.of().node(),
                                x.of().file(), x.layer(), x.file(), now == null ? "a chain of " + chain.size() + " files" : now);
                    }
                    continue;
                }
            }
            try {
                bases.add(new dev.thaw.image.DiskPages.Base(x.disk(), x.layer(), x.file(), DiskIdentity.of(x.file()), x.index()));
            } catch (IOException e) {
                throw new SaveException("disk " + x.of().node() + " (" + x.file() + "): cannot take its identity: " + e.getMessage(), e);
            }
        }
        return List.copyOf(bases);
    }

    /** The query-block entry whose active image is the disk's file. */
    private static JsonNode blockOf(JsonNode blocks, VmConfig.Disk d) {
        for (JsonNode b : blocks) {
            if (b.path("inserted").path("image").path("filename").asText().equals(d.file().toString())) return b;
        }
        throw new SaveException("disk " + d.node() + ": expected QEMU to have " + d.file() + " as a disk's active image, actual "
                + blocks.findValuesAsText("filename"), null);
    }
}
