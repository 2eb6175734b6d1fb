package dev.thaw.host;

import java.io.IOException;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The kernel's persistent pool of 2 MiB hugetlb pages, kept backed by the hypervisor for restores into 2 MiB guest RAM.
 *
 * <p>Why: on a VM host with free-page reporting (this project's machines: a Firecracker guest, {@code page_reporting} in its
 * kernel command line) memory the kernel frees goes back to the hypervisor within seconds, and the next first touch of it costs
 * about 6 ms per 2 MiB (12 us per 4 KiB) while the hypervisor backs it again. Surplus hugetlb pages, which a restore takes and
 * frees at its QEMU's exit, pay it on every restore: 100 pages took 0.57-0.69 s to touch 5-10 s after the previous release,
 * 0.015-0.09 s right after it. Pages of the persistent pool ({@code nr_hugepages}) never return to the kernel's free lists, so
 * they are never reported: touched once, 100 of them took 0.014-0.016 s every time (docs/benchmarks.md, eighteenth session).
 * Reserving the pool costs that memory to everything else on the host, which is the operator's choice ({@code thaw hugepages}).
 */
public final class HugePagePool {
    public static final long PAGE_BYTES = 2L << 20;
    private static final Path DIR = Path.of("/sys/kernel/mm/hugepages/hugepages-2048kB");
    private static final int PROT_READ_WRITE = 0x1 | 0x2;
    /** MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_POPULATE | MAP_HUGE_2MB. */
    private static final int MAP_HUGE_POPULATE = 0x02 | 0x20 | 0x40000 | 0x8000 | (21 << 26);

    private HugePagePool() {}

    /**
     * The 2 MiB pages as the kernel counts them.
     *
     * @param hugePageCount    every 2 MiB hugetlb page, persistent and surplus ({@code nr_hugepages} reads both; writing it
     *                         sets the persistent count)
     * @param freePageCount    pages no mapping has faulted in ({@code free_hugepages})
     * @param reservedPageCount free pages promised to mappings already made ({@code resv_hugepages}: a QEMU reserves all of its
     *                          guest RAM when it maps it)
     * @param surplusPageCount pages taken beyond the pool ({@code surplus_hugepages}), freed to the kernel when released
     * @param overcommitPageCount how many surplus pages the kernel may take ({@code nr_overcommit_hugepages})
     */
    public record State(long hugePageCount, long freePageCount, long reservedPageCount, long surplusPageCount, long overcommitPageCount) {
        /** The persistent pool: pages never given back to the kernel. */
        public long persistentPageCount() {
            return Math.max(0, hugePageCount - surplusPageCount);
        }

        /** Pool pages a new mapping can have: free and not promised (free surplus pages exist only while promised). */
        public long availablePageCount() {
            return Math.max(0, Math.min(persistentPageCount(), freePageCount - reservedPageCount));
        }

        public String describe() {
            return String.format("%d persistent 2 MiB pages (%d MiB), %d of them free for a new restore; %d surplus, up to %d allowed",
                    persistentPageCount(), persistentPageCount() * (PAGE_BYTES >> 20), availablePageCount(), surplusPageCount,
                    overcommitPageCount);
        }
    }

    /** The pool's state; empty where the kernel has no 2 MiB hugetlb pages. */
    public static java.util.Optional<State> state() {
        if (!Files.isDirectory(DIR)) return java.util.Optional.empty();
        return java.util.Optional.of(new State(read("nr_hugepages"), read("free_hugepages"), read("resv_hugepages"), read("surplus_hugepages"),
                read("nr_overcommit_hugepages")));
    }

    /**
     * What {@link #reserve} did.
     *
     * @param pageCountBefore the pool before
     * @param pageCount       the pool after: less than asked when the kernel found no more free 2 MiB blocks
     * @param touchedPageCount free pages touched once (all of them, old and new: touching a backed page costs its zeroing only)
     * @param touchNanos      how long the touch took
     */
    public record Reserved(long pageCountBefore, long pageCountAsked, long pageCount, long touchedPageCount, long touchNanos) {
        public boolean isShort() {
            return pageCount < pageCountAsked;
        }
    }

    /**
     * Grows the persistent pool to at least {@code pageCount} pages (never shrinks it) and touches every free page once, so
     * that the hypervisor backs them before a restore needs them. Root only.
     */
    public static Reserved reserve(long pageCount) {
        if (pageCount < 0) throw new IllegalArgumentException("huge page pool: expected a page count >= 0, actual " + pageCount);
        State before = state().orElseThrow(() -> new IllegalStateException("huge page pool: this kernel has no 2 MiB hugetlb pages ("
                + DIR + " is missing)"));
        long persistentBefore = before.persistentPageCount();
        if (pageCount > persistentBefore) write("nr_hugepages", pageCount); // sets the persistent count
        try {
            State after = state().orElseThrow();
            long free = after.availablePageCount();
            long start = System.nanoTime();
            if (free > 0) touch(free);
            return new Reserved(persistentBefore, pageCount, after.persistentPageCount(), free, System.nanoTime() - start);
        } catch (RuntimeException | Error e) {
            if (pageCount > persistentBefore) {
                try {
                    resize(persistentBefore); // nothing reserved is kept by a reservation that failed
                } catch (RuntimeException r) {
                    e.addSuppressed(r);
                }
            }
            throw e;
        }
    }

    /**
     * Sets the persistent pool to {@code pageCount} pages. Pages a running QEMU holds stay its own until it exits (the kernel
     * turns them into surplus pages and frees them then).
     */
    public static void resize(long pageCount) {
        if (pageCount < 0) throw new IllegalArgumentException("huge page pool: expected a page count >= 0, actual " + pageCount);
        write("nr_hugepages", pageCount);
    }

    /** A pool held for a while (a bench, a demo): {@link #close} puts the pool back to its size before. */
    public record Lease(Reserved reserved) implements AutoCloseable {
        @Override
        public void close() {
            if (reserved.pageCount() != reserved.pageCountBefore()) resize(reserved.pageCountBefore());
        }
    }

    /** Reserves at least {@code pageCount} pages ({@link #reserve}) until the lease is closed. */
    public static Lease hold(long pageCount) {
        return new Lease(reserve(pageCount));
    }

    /** Whether this process may size the pool (root). */
    public static boolean permitted() {
        return Files.isWritable(DIR.resolve("nr_hugepages"));
    }

    /** 2 MiB pages that hold {@code byteSize}, rounded up. */
    public static long pagesFor(long byteSize) {
        return (byteSize + PAGE_BYTES - 1) / PAGE_BYTES;
    }

    /** Maps {@code pageCount} pages of the pool, populated (each page zeroed by the kernel: its first touch), and unmaps them. */
    private static void touch(long pageCount) {
        long byteSize = pageCount * PAGE_BYTES;
        Linker linker = Linker.nativeLinker();
        MethodHandle mmap = linker.downcallHandle(linker.defaultLookup().find("mmap").orElseThrow(), FunctionDescriptor.of(
                ValueLayout.ADDRESS, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT,
                ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG));
        MethodHandle munmap = linker.downcallHandle(linker.defaultLookup().find("munmap").orElseThrow(), FunctionDescriptor.of(
                ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG));
        try {
            MemorySegment base = (MemorySegment) mmap.invokeExact(MemorySegment.NULL, byteSize, PROT_READ_WRITE, MAP_HUGE_POPULATE, -1, 0L);
            if (base.address() == -1L) {
                throw new IllegalStateException("huge page pool: mmap of " + pageCount + " free 2 MiB pages failed (another process took"
                        + " them meanwhile?)");
            }
            int ignored = (int) munmap.invokeExact(base, byteSize);
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("huge page pool: " + t, t);
        }
    }

    private static long read(String knob) {
        Path file = DIR.resolve(knob);
        String text;
        try {
            text = Files.readString(file).strip();
        } catch (IOException e) {
            throw new IllegalStateException("huge page pool: cannot read " + file + ": " + e.getMessage(), e);
        }
        try {
            return Long.parseLong(text);
        } catch (NumberFormatException e) {
            throw new IllegalStateException("huge page pool: " + file + ": expected a page count, actual '" + text + "'", e);
        }
    }

    private static void write(String knob, long value) {
        Path file = DIR.resolve(knob);
        try {
            Files.writeString(file, Long.toString(value));
        } catch (IOException e) {
            throw new IllegalStateException("huge page pool: cannot write " + value + " to " + file + " (root needed): " + e.getMessage(), e);
        }
    }
}
