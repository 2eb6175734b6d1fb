/**
 * Checkpoint image format, versions 1 to 4: the specification (this text is normative; the code in this
 * package implements it, and {@code docs/image-format.md} explains the design decisions).
 *
 * <h2>Directory</h2>
 * <pre>
 * IMAGE/
 *   manifest.thaw    description of the image (JSON body); written last: the image exists iff it does
 *   pagemap.thaw     one entry per target page of every RAM block
 *   extents.thaw     the extents (groups of stored pages) this image's pages live in
 *   device.thaw      QEMU's stream header and configuration, the device state, the VM description
 *   diskrefs.thaw    versions 3 and 4 only: the blocks of the disk bases (4: and their backing files) the image takes pages from
 *   store/           the content store (unless the manifest names a shared store directory)
 *     pack-UUID.thaw immutable pack files of compressed page groups
 *   guest/           version 2 only, when the manifest lists guest files: {@code kernel}, {@code initrd} (raw copies)
 * </pre>
 * An image is written under a temporary sibling directory and renamed into place after every file
 * and directory was fsynced. Readers never write to an image. Every file of an image or a store is
 * created with mode 0600 and every directory with 0700, whatever the umask: they hold guest memory.
 *
 * <h2>Frame (every file)</h2>
 * All integers little-endian.
 * <pre>
 * header (48 bytes)  0 "THAWFILE" | 8 u32 kind | 12 u32 format version | 16 16-byte owner id |
 *                    32 u64 0 | 40 u64 XXH3-64(header[0..40))
 * body
 * footer (32 bytes)  0 "THAWEND!" | 8 u64 body size | 16 u64 XXH3-64(file[0..footer)) | 24 u64 XXH3-64(footer[0..24))
 * </pre>
 * Kinds: 1 manifest, 2 page map, 3 extent table, 4 device state, 5 pack, 6 working set, 9 disk references (10: a disk
 * base's cached block index, outside images, {@link dev.thaw.image.DiskBlockIndex}); 0 is invalid. The owner id
 * is the image id (a random UUID) for image files and the pack id for packs, so a file of another
 * image is recognised as such. Every frame carries version 1; readers accept frame versions 1..1 and
 * reject others with the version found. The manifest's body carries the image's format version (below).
 *
 * <h2>manifest.thaw</h2>
 * Body: UTF-8 JSON of {@link dev.thaw.image.Manifest}: format version, image id, creation time,
 * source (QEMU version, machine type, validated capabilities, the launch configuration), RAM
 * blocks (name, used length, page size, page count) in stream order, the RAM section id and
 * version, storage (codec, level, group size, store directory, and each pack with its size and
 * whole-file checksum), every other file with its size and checksum, statistics, and the page
 * order of the store ({@code address} or {@code arrival}).
 * <p>Format version 2 (an image of a QEMU Thaw did not start) adds {@code disks}: each disk's block node name, the PCI
 * address of its virtio-blk device, format ({@code raw} or {@code qcow2}), the absolute path of its base (a file outside the
 * image, frozen at the save), whether it is read-only, its virtual size, and the base's identity ({@link
 * dev.thaw.image.DiskIdentity}: size, modification time, SHA-256 over its first and last MiB); and {@code guestFiles}: the
 * kernel and initrd copied into {@code guest/} under their role's name, each with its size and SHA-256. A writer writes
 * version 1 when both lists are empty, 2 otherwise (3 when it takes pages from its disks, 4 when from a base's backing
 * file, below); readers accept 1..4, and a version-1 manifest must not list either. The
 * launch configuration of a version-2 image records no disks: the manifest's disks are the only record of them.
 * <p>Optional in either version: {@code pageCacheDrop}, written only by a save that dropped the guest's clean page cache
 * first ({@code thaw save --drop-caches}): the value written to {@code /proc/sys/vm/drop_caches} (1-3; 0 is invalid), the
 * guest's page cache ({@code Buffers + Cached}) and free memory before and after in bytes, whether its balloon reported
 * the freed pages, and the drop's nanoseconds. It changes nothing a restore does, so the version stays (docs/image-format.md).
 * <p>Optional with disks: {@code diskBasesSha256}, written only into the manifest a push uploads: the SHA-256 (hex) of the
 * list of the disks' bases it uploads ({@link dev.thaw.image.DiskBases#sha256()}); an image directory's
 * {@code disk-bases.json} must match it (docs/object-storage.md). A manifest may not list files named
 * {@code disk-bases.json} or {@code bases}.
 *
 * <h2>pagemap.thaw</h2>
 * Body: for each RAM block in manifest order: u32 page count, then that many u64 entries.
 * Entry 0: the page is all zero bytes (nothing stored). Bit 63 set (versions 3 and 4): bits 0..62 are the index (below 2^31)
 * of a record of {@code diskrefs.thaw}, the page being that block of a disk base. Otherwise bits 8..62 are the
 * extent-table index + 1 and bits 0..7 the page's slot within that extent.
 *
 * <h2>diskrefs.thaw (versions 3 and 4)</h2>
 * Body: u32 count, then count records of 48 bytes: {@code u16 disk number + 1 (index into the manifest's disks; 0 is
 * invalid) | u16 layer | u32 0 | u64 byte offset in that file (4 KiB-aligned) | SHA-256 of the page}. The offset is a
 * file offset: in a raw base the guest's own; in a qcow2 file the offset of the guest block's bytes inside one of its
 * uncompressed, unencrypted data clusters (as {@code qemu-img map} reports them), never metadata. Layer 0 is the base
 * (the block whole inside it); in version 3 every layer is 0. Layer n (1..{@value dev.thaw.image.Qcow2Chain#MAX_LAYERS},
 * version 4 only) is the n-th backing file of the base's chain as the qcow2 headers name it ({@link
 * dev.thaw.image.Qcow2Chain}: each header's backing file name, relative to its file's directory; the chain ends at a file
 * that is not qcow2, names none, or names it with bytes not whole inside the file's first MiB): the image records no
 * path for it, the base's header does (inside the first MiB its identity hashes, so that a changed name changes the base's
 * identity). The walk starts from the base's absolute, normalized path and opens a file only if it is a regular file or a
 * block device (anything else is an error naming the file and its kind). A reader walks the chain down to the layer it
 * reads, not below, reads the block from that file and checks its SHA-256 before handing the page on; a chain shorter
 * than the layer, or a block past its file's end, is an error naming the disk, layer and offset. Version 4 only: after
 * the records, {@code u32 count}, then count records of 64 bytes, ascending by disk then layer, exactly one for each
 * (disk, layer >= 1) the records name: {@code u16 disk number + 1 | u16 layer | u32 0 | u64 byte size | i64 modification
 * time (seconds since the epoch) | u32 its nanoseconds (below 10^9) | u32 0 | SHA-256 over the file's first and last MiB
 * (32)}: that backing file's {@link dev.thaw.image.DiskIdentity} at the save (no path). A restore walks each chain down to
 * the layer and compares the file's identity before QEMU starts, so that a backing file replaced since is refused then,
 * not at the first page read from it. Version 3 tables end after the records. The manifest
 * lists the file (kind {@code disk_refs}); a writer writes version 3 or 4 exactly when it does, 4 only when some record
 * has a layer above 0, and only for an image with disks.
 *
 * <h2>extents.thaw</h2>
 * Body: u32 count, then count records of 32 bytes:
 * {@code u32 pack number (index into the manifest's pack list) | u32 0 | u64 offset of the extent
 * header in the pack | u32 stored bytes | u8 codec | u8 0 | u16 page count | u64 XXH3-64 of the payload}.
 * A page is therefore fetched with one positional read of 32 + stored bytes.
 *
 * <h2>device.thaw</h2>
 * Body: three length-prefixed byte strings (u32 length, bytes): QEMU's stream header and
 * configuration section verbatim; the device state (every FULL section after RAM END, up to but
 * excluding the EOF byte); the VM description JSON (length 0xFFFFFFFF when absent).
 *
 * <h2>Pack files</h2>
 * <pre>
 * extent   header (32): "XTNT" | u8 codec | u8 0 | u16 page count (1..256) | u32 stored bytes | u32 0 |
 *                       u64 XXH3-64(payload) | u64 XXH3-64(header[0..24))
 *          payload: page count x 4096 bytes, compressed whole by the codec
 * index    per extent (32): u64 offset | u32 stored bytes | u8 codec | u8 0 | u16 pages | u64 checksum | u64 0
 *          per page (40):   SHA-256 of the 4096 bytes (32) | u32 extent number | u16 slot | u16 0
 * trailer  (24): u64 index offset | u32 extent count | u32 page count | u64 XXH3-64(index)
 * </pre>
 * Codecs: 1 none, 2 LZ4 (block format), 3 zstd (frame format); 0 is invalid. An extent whose
 * compressed form would not be smaller is stored with codec 1. Packs are immutable once sealed;
 * several images may reference the same pack (dedup across images sharing a store).
 *
 * <h2>workingset-ID.thaw (optional)</h2>
 * At most one; listed in the manifest's files with kind {@code working_set}. Body: the working-set
 * section of {@link dev.thaw.image.WorkingSetSection} (section version 1: estimator code, estimated
 * size, description, the queue as (block, page, first-access time, location) entries, and the
 * extents of its own pack, which is listed last among the manifest's packs and holds a copy of
 * the queue's non-zero pages in queue order). A reader serves those pages from the copy, so a
 * restore's prefetch is a sequential read. Attached or replaced after the image exists by writing
 * the new section and pack, then replacing {@code manifest.thaw} by an atomic rename (the old
 * section is deleted afterwards, and so is the old pack if the image has its own store; in a shared
 * store it stays for gc, see below); the page map, extent table, device state and base packs are
 * never rewritten.
 *
 * <h2>Shared stores</h2>
 * <pre>
 * STORE/
 *   store.lock          empty; the store's lock (POSIX record lock on the whole file)
 *   images/ID.pending   UTF-8 absolute path of an image whose save is writing into the store
 *   images/ID.image     the same once that image was committed
 *   pack-UUID.thaw      packs of any of the listed images; new saves dedup against every readable one
 * </pre>
 * A store is shared when the manifest's store directory is absolute. Ownership is mark and sweep:
 * <ol>
 * <li>Only {@code gc} deletes a pack of a shared store. It holds the lock exclusively, marks every
 *     pack named by the manifest of every listed image whose directory holds that image (same
 *     image id), and deletes every other pack and every temporary file ({@code *.tmp-*}; no writer
 *     runs meanwhile). A pending entry whose image is absent is a save that died: dropped. A
 *     committed entry whose image is absent (removed or moved by hand) makes gc fail, deleting
 *     nothing, unless told to forget it. A listed image whose manifest cannot be read fails gc.</li>
 * <li>Writers hold the lock shared: a save from before it lists itself ({@code ID.pending}) and
 *     reads the store's pack indexes until its image is published and listed as committed (or,
 *     failing, unlisted); a working-set attach from before its pack until the new manifest names
 *     it. A pack stays in the store once sealed, even if its save then fails: another save may
 *     have deduplicated against it, and gc frees it otherwise.</li>
 * <li>Working-set re-attach never deletes a pack of a shared store: the old working-set pack may
 *     hold content a later image found there.</li>
 * <li>{@code rm} holds the lock exclusively, removes the image's entry, then renames the image
 *     directory away and deletes it; its packs are freed by the next gc.</li>
 * <li>A pack whose frame or index does not read is skipped by a save's dedup (its content is
 *     stored anew), never fatal to the save.</li>
 * <li>A directory with packs but no {@code images/} (a store of an older Thaw) is refused as a
 *     store: a gc would take its images' packs for garbage.</li>
 * </ol>
 * Readers (restores, inspect) take no lock: a listed image's packs are never deleted.
 * {@code thaw inspect STORE --verify} holds the lock shared, opens every listed image and reads
 * every pack whole (file checksum, extents, page digests), and reports packs no image names.
 *
 * <h2>Integrity</h2>
 * Opening an image checks that every name in the manifest stays inside it (files: plain names;
 * packs: {@code pack-ID.thaw} of their own id; a relative store directory only {@code store}),
 * the frames and whole-file checksums of manifest, page map, extent table, device state and
 * working-set section, each against the size and checksum the manifest records, each pack's
 * frame, its recorded size and checksum, and its index checksum. Each extent is checked (header checksum, payload checksum, decompressed length) when
 * it is read. {@code thaw inspect --verify} additionally recomputes every pack's whole-file
 * checksum and every stored page's SHA-256.
 */
package dev.thaw.image;
