package dev.thaw.restore;

import dev.thaw.image.CheckpointImage;
import dev.thaw.migration.RamBlock;
import dev.thaw.migration.StreamWriter;
import dev.thaw.migration.Wire;
import dev.thaw.qemu.QemuVm;
import dev.thaw.qemu.QmpClient;
import dev.thaw.qemu.QmpException;
import dev.thaw.qemu.VmConfig;
import dev.thaw.util.DirectChannelOutput;
import dev.thaw.util.StallWatchdog;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Kernel demand paging of a mapped RAM file: the analogue of Firecracker's file-backed snapshot
 * memory, and a baseline for Thaw's own restores. The guest's main RAM ({@value #RAM_BLOCK}) is
 * written once into a sparse raw file; a restore maps it privately ({@code memory-backend-file},
 * {@code share=off}: the guest's writes are copied on write and never reach the file) and sends
 * QEMU only the device state and the small blocks (firmware, option ROMs). Each first touch of a
 * page is then a kernel page fault served from the page cache or the disk, with the kernel's
 * readahead, and no user-space part at all. The image is only read.
 */
public final class MappedRestore {
    /** The RAM block the file backs; a backend with this id keeps the block's name, so the stream matches. */
    public static final String RAM_BLOCK = "pc.ram";

    /** @param nonZeroPageCount pages written (the zero ones are holes) */
    public record RamFile(Path file, long byteSize, long nonZeroPageCount, long writeNanos) {}

    public record Result(QemuVm vm, long qemuReadyNanos, long runningNanos, long streamBytes) {}

    private MappedRestore() {}

    /** Writes the image's {@value #RAM_BLOCK} as a sparse raw file, atomically (temporary file, fsync, rename). */
    public static RamFile writeRamFile(CheckpointImage image, Path file) throws IOException {
        long start = System.nanoTime();
        List<RamBlock> blocks = image.ramBlocks();
        int b = ramBlockIndex(image);
        RamBlock ram = blocks.get(b);
        // A new file of mode 0600 (guest memory is secret), unique so that two writers never share one.
        Path tmp = Files.createTempFile(file.toAbsolutePath().getParent(), "." + file.getFileName(), ".tmp", dev.thaw.util.OwnerOnly.FILE);
        long written = 0;
        byte[] page = new byte[Wire.TARGET_PAGE_BYTES];
        try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE)) {
            for (int p = 0; p < ram.pageCount(); p++) {
                if (!image.readPage(b, p, page, 0)) continue; // a hole reads as zeros
                ByteBuffer buf = ByteBuffer.wrap(page);
                long at = (long) p * Wire.TARGET_PAGE_BYTES;
                while (buf.hasRemaining()) at += ch.write(buf, at);
                written++;
            }
            ch.truncate(ram.usedByteSize());
            if (ch.size() < ram.usedByteSize()) ch.write(ByteBuffer.allocate(1), ram.usedByteSize() - 1); // extend to full size
            ch.force(true);
        } catch (IOException | RuntimeException e) {
            Files.deleteIfExists(tmp);
            throw e;
        }
        Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        return new RamFile(file, ram.usedByteSize(), written, System.nanoTime() - start);
    }

    /**
     * Starts a QEMU whose main RAM is {@code ramFile} mapped privately, sends it the rest of the image (every block but
     * {@value #RAM_BLOCK}, the device state) and starts the guest. The caller owns (and closes) the returned VM.
     */
    public static Result restore(CheckpointImage image, Path ramFile, EagerRestore.Options options) {
        return restore(image, ramFile, options, List.of());
    }

    /**
     * The same with Thaw's working set: the pages of {@value #RAM_BLOCK} in {@code workingSet} are read into the page cache in
     * queue order ({@link PageCachePrefetch}) from the moment QEMU has the device state, while it loads it and the guest
     * starts, so the guest's first touches find them there.
     */
    public static Result restore(CheckpointImage image, Path ramFile, EagerRestore.Options options, List<dev.thaw.estimate.PageRef> workingSet) {
        int ramIndex = ramBlockIndex(image);
        List<Long> pages = workingSet.stream().filter(p -> p.block() == ramIndex).map(p -> (long) p.page()).toList();
        PageCachePrefetch prefetch = pages.isEmpty() ? null : new PageCachePrefetch(ramFile, pages, "page-cache-prefetch-" + options.vmName(), true);
        try {
            return restoreMapped(image, ramFile, options, prefetch == null ? () -> {} : prefetch::release);
        } catch (RuntimeException e) {
            if (prefetch != null) prefetch.close();
            throw e;
        }
        // On success the prefetch runs on while the guest starts; it ends by itself (a daemon thread, reads only).
    }

    /**
     * @param streamSent told once QEMU has everything this reads from the image (the small blocks, the device state), before it
     *                   loads them and the guest starts: from a cold cache a prefetch started earlier made QEMU's start (its
     *                   binary, libraries and firmware, one small read after another) and the image's reads wait behind its own
     */
    private static Result restoreMapped(CheckpointImage image, Path ramFile, EagerRestore.Options options, Runnable streamSent) {
        long started = System.nanoTime();
        RamBlock ram = image.ramBlocks().get(ramBlockIndex(image));
        long fileBytes;
        try {
            fileBytes = Files.size(ramFile);
        } catch (IOException e) {
            throw new RestoreException("mapped restore: cannot read the RAM file " + ramFile + ": " + e.getMessage(), e);
        }
        if (fileBytes != ram.usedByteSize()) {
            throw new RestoreException("mapped restore: RAM file " + ramFile + ": expected " + ram.usedByteSize() + " bytes (block "
                    + RAM_BLOCK + "), actual " + fileBytes, null);
        }
        Optional<String> unmappable = whyNotMappable(image, ramFile);
        if (unmappable.isPresent()) throw new RestoreException("mapped restore: " + unmappable.get(), null);
        VmConfig config = IncomingQemu.config(image, options.vmName(), options.identity());
        QemuVm vm = QemuVm.launch(config, List.of(
                "-object", "memory-backend-file,id=" + RAM_BLOCK + ",size=" + ram.usedByteSize() + ",mem-path=" + ramFile + ",share=off",
                "-machine", "memory-backend=" + RAM_BLOCK));
        try {
            long qemuReady = System.nanoTime() - started;
            QmpClient qmp = vm.qmp();
            Path socket = vm.runDir().resolve("incoming.sock");
            qmp.migrateIncoming("unix:" + socket);
            AtomicLong bytes = new AtomicLong();
            try (SocketChannel channel = IncomingQemu.connect(socket, vm, Duration.ofSeconds(10));
                 StallWatchdog watchdog = new StallWatchdog("mapped-restore-" + vm.name(), bytes::get, options.stallTimeout(), channel)) {
                OutputStream out = new DirectChannelOutput(channel, 1 << 20, bytes);
                try {
                    EagerStreams.write(image, new StreamWriter(out, image.ramBlocks()), p -> {}, b -> !b.name().equals(RAM_BLOCK));
                } catch (IOException e) {
                    throw new RestoreException("sending the device state to " + vm.name() + " failed after " + bytes.get() + " bytes"
                            + (watchdog.stalled() ? " (QEMU read nothing for " + options.stallTimeout().toSeconds() + " s)" : "")
                            + ": " + e.getMessage() + "; " + vm.describeState(), e);
                }
            }
            streamSent.run();
            IncomingQemu.awaitCompleted(vm, options.completionTimeout());
            qmp.cont();
            return new Result(vm, qemuReady, System.nanoTime() - started, bytes.get());
        } catch (IOException | QmpException e) {
            vm.close();
            throw new RestoreException("mapped restore into " + vm.name() + " failed: " + e.getMessage() + "; " + vm.describeState(), e);
        } catch (RuntimeException e) {
            vm.close();
            throw e;
        }
    }

    /** Why the image's RAM file must not be mapped for this image's guest, or why QEMU could not map it ({@link #whyNotMappable(Path)}). */
    static Optional<String> whyNotMappable(CheckpointImage image, Path ramFile) {
        if (dev.thaw.qemu.FreePages.ofRecorded(image.manifest().source().vmConfig()).filter(dev.thaw.qemu.FreePages::reporting).isPresent()) {
            // QEMU 7.2 discards a reported range of a file-backed RAM block by punching a hole in the file
            // (softmmu/physmem.c, ram_block_discard_range: fallocate PUNCH_HOLE whenever the block has a file), share=off
            // or not: the restored guest's freed pages would become zeros in the RAM file, for every later restore and under
            // the mapped restores running at once.
            return Optional.of("the saved guest has a balloon with free-page-reporting=on, and QEMU 7.2 discards the pages it"
                    + " reports free by punching holes in a mapped RAM file (its contents for every later restore): restore with"
                    + " --mode ws, lazy or eager");
        }
        return whyNotMappable(ramFile);
    }

    /**
     * Why QEMU could not map {@code ramFile}, if it could not: QEMU 7.2 opens a {@code memory-backend-file} read-write even to
     * map it privately ({@code readonly=on} maps it read-only, and the guest could not write its RAM), so a RAM file on a
     * read-only file system, or one this user cannot write, does not map although nothing would be written to it. Checked
     * as QEMU does it: an open for reading and writing (which writes nothing).
     */
    static Optional<String> whyNotMappable(Path ramFile) {
        try (FileChannel ignored = FileChannel.open(ramFile, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            return Optional.empty();
        } catch (IOException e) {
            String reason = e instanceof java.nio.file.FileSystemException f && f.getReason() != null ? f.getReason() : e.toString();
            return Optional.of("the RAM file " + ramFile + " cannot be opened for writing (" + reason + "), and QEMU 7.2 opens it"
                    + " read-write even to map it privately (nothing is written to it): restore with --mode ws or lazy, or keep the"
                    + " RAM file where it is writable");
        }
    }

    /** The index of {@value #RAM_BLOCK} among the image's blocks; a {@link RestoreException} naming them when it has none. */
    static int ramBlockIndex(CheckpointImage image) {
        List<RamBlock> blocks = image.ramBlocks();
        for (int b = 0; b < blocks.size(); b++) {
            if (blocks.get(b).name().equals(RAM_BLOCK)) return b;
        }
        throw new RestoreException("mapped restore: image " + image.directory() + " has no RAM block " + RAM_BLOCK + ": expected one,"
                + " actual " + blocks.stream().map(RamBlock::name).toList(), null);
    }
}
