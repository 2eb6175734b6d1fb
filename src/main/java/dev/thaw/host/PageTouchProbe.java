package dev.thaw.host;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * What the first touch of a page that is already populated costs on this host, in 4 KiB mappings and in 2 MiB (transparent
 * huge page) ones. On a bare-metal or EPT host both are a few nanoseconds; on a host whose hypervisor shadows the guest's page
 * tables (this project's machines: "Hypervisor detected: PVM") each 4 KiB page's first access traps to it, about 9 us, while a
 * 2 MiB mapping costs one trap for 512 pages. Every restore that leaves guest RAM in 4 KiB pages (postcopy, a mapped file)
 * pays that once per page the guest touches, on top of placing it; QEMU's eager restore fills transparent huge pages.
 */
public final class PageTouchProbe {
    private static final int PROT_READ_WRITE = 0x1 | 0x2;
    private static final int MAP_PRIVATE_ANONYMOUS = 0x02 | 0x20;
    private static final int MADV_HUGEPAGE = 14;
    private static final int MADV_NOHUGEPAGE = 15;
    private static final int MADV_POPULATE_WRITE = 23;
    private static final long PAGE = 4096;
    private static final long HUGE_PAGE = 2L << 20;
    /** Above this a 4 KiB first touch is costly: a page fault on bare metal is 0.1-1 us, and a touch of a present page far less. */
    public static final double COSTLY_MICROS = 2.0;

    private PageTouchProbe() {}

    /**
     * @param pageCount           4 KiB pages touched in each mapping
     * @param fourKiBMicrosPerPage the first write to each populated page of a 4 KiB mapping (MADV_NOHUGEPAGE), microseconds
     * @param hugeMicrosPerPage    the same per 4 KiB of a mapping advised MADV_HUGEPAGE (2 MiB where the kernel gave them)
     */
    public record Result(long pageCount, double fourKiBMicrosPerPage, double hugeMicrosPerPage) {
        /** Whether a 4 KiB first touch costs more than {@link #COSTLY_MICROS} and at least 10 times a huge page's share. */
        public boolean fourKiBCostly() {
            return fourKiBMicrosPerPage > COSTLY_MICROS && fourKiBMicrosPerPage >= 10 * hugeMicrosPerPage;
        }

        public String describe() {
            return String.format("first touch of a populated 4 KiB page %.2f us, of 4 KiB in a 2 MiB page %.2f us (%d pages each)%s",
                    fourKiBMicrosPerPage, hugeMicrosPerPage, pageCount, fourKiBCostly()
                            ? ": 4 KiB host pages are costly here (shadow page tables?): hugetlb guest RAM (--hugetlb) avoids them" : "");
        }
    }

    /** What a restore measures when this boot has no result yet: 4 MiB of each kind, three times (the least kept), about 60 ms where 4 KiB pages are costly. */
    public static final long RESTORE_PROBE_BYTES = 4L << 20;

    /**
     * This boot's result: read from the cache ({@code CACHE/host/page-touch-BOOT_ID}, written by the doctor or the first restore
     * that asked), else measured over {@code byteSize} and cached. A host's page-table cost does not change while it runs, and
     * a restore should not pay the probe twice; an unreadable cache entry is measured again and replaced.
     */
    public static Result forThisBoot(long byteSize) {
        Path cached = cacheFile();
        try {
            String[] fields = Files.readString(cached).strip().split(" ");
            if (fields.length == 3) {
                Result r = new Result(Long.parseLong(fields[0]), Double.parseDouble(fields[1]), Double.parseDouble(fields[2]));
                if (r.pageCount() > 0 && Double.isFinite(r.fourKiBMicrosPerPage()) && r.fourKiBMicrosPerPage() >= 0
                        && Double.isFinite(r.hugeMicrosPerPage()) && r.hugeMicrosPerPage() >= 0) {
                    return r;
                }
            }
        } catch (IOException | NumberFormatException e) {
            // absent or damaged: measured below
        }
        // The least of three: a probe preempted on a busy host would otherwise make 4 KiB pages look costly for the whole boot.
        Result best = measure(byteSize);
        for (int i = 1; i < 3; i++) {
            Result r = measure(byteSize);
            if (r.fourKiBMicrosPerPage() < best.fourKiBMicrosPerPage()) best = r;
        }
        remember(best);
        return best;
    }

    /** Records {@code r} as this boot's result (best effort: a cache that cannot be written costs the next restore a probe). */
    public static void remember(Result r) {
        Path cached = cacheFile();
        try {
            Files.createDirectories(cached.getParent());
            Path tmp = Files.createTempFile(cached.getParent(), "page-touch", ".tmp");
            try {
                Files.writeString(tmp, r.pageCount() + " " + r.fourKiBMicrosPerPage() + " " + r.hugeMicrosPerPage() + "\n");
                Files.move(tmp, cached, java.nio.file.StandardCopyOption.ATOMIC_MOVE, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            } finally {
                Files.deleteIfExists(tmp);
            }
        } catch (IOException e) {
            org.slf4j.LoggerFactory.getLogger(PageTouchProbe.class).warn("cannot cache the page-touch probe in {}: {}", cached, e.getMessage());
        }
    }

    private static Path cacheFile() {
        String boot;
        try {
            boot = Files.readString(Path.of("/proc/sys/kernel/random/boot_id")).strip();
        } catch (IOException e) {
            boot = "unknown-boot";
        }
        return dev.thaw.util.ThawPaths.cacheDir().resolve("host").resolve("page-touch-" + boot);
    }

    /** Measures {@code byteSize} (a multiple of 2 MiB) of each kind; takes about a second where 4 KiB pages are costly. */
    public static Result measure(long byteSize) {
        if (byteSize <= 0 || byteSize % HUGE_PAGE != 0) {
            throw new IllegalArgumentException("probe size: expected a positive multiple of 2 MiB, actual " + byteSize);
        }
        Linker linker = Linker.nativeLinker();
        MethodHandle mmap = linker.downcallHandle(linker.defaultLookup().find("mmap").orElseThrow(), FunctionDescriptor.of(
                ValueLayout.ADDRESS, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT,
                ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG));
        MethodHandle madvise = linker.downcallHandle(linker.defaultLookup().find("madvise").orElseThrow(), FunctionDescriptor.of(
                ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT));
        MethodHandle munmap = linker.downcallHandle(linker.defaultLookup().find("munmap").orElseThrow(), FunctionDescriptor.of(
                ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG));
        double fourKiB = touchMicros(mmap, madvise, munmap, byteSize, MADV_NOHUGEPAGE);
        double huge = touchMicros(mmap, madvise, munmap, byteSize, MADV_HUGEPAGE);
        return new Result(byteSize / PAGE, fourKiB, huge);
    }

    private static double touchMicros(MethodHandle mmap, MethodHandle madvise, MethodHandle munmap, long byteSize, int advice) {
        long mapped = byteSize + HUGE_PAGE; // room to align the region to 2 MiB
        try {
            MemorySegment base = (MemorySegment) mmap.invokeExact(MemorySegment.NULL, mapped, PROT_READ_WRITE, MAP_PRIVATE_ANONYMOUS,
                    -1, 0L);
            if (base.address() == -1L) throw new IllegalStateException("probe: mmap of " + mapped + " bytes failed");
            try {
                long aligned = (base.address() + HUGE_PAGE - 1) & -HUGE_PAGE;
                MemorySegment region = MemorySegment.ofAddress(aligned).reinterpret(byteSize, Arena.global(), null);
                if ((int) madvise.invokeExact(region, byteSize, advice) != 0) throw new IllegalStateException("probe: madvise " + advice + " failed");
                // Populated by the kernel first, so that the touches below time the access, not the allocation.
                if ((int) madvise.invokeExact(region, byteSize, MADV_POPULATE_WRITE) != 0) {
                    throw new IllegalStateException("probe: madvise(MADV_POPULATE_WRITE) failed (a kernel before 5.14?)");
                }
                long start = System.nanoTime();
                for (long offset = 0; offset < byteSize; offset += PAGE) region.set(ValueLayout.JAVA_BYTE, offset, (byte) 1);
                return (System.nanoTime() - start) / 1e3 / (byteSize / PAGE);
            } finally {
                int ignored = (int) munmap.invokeExact(base, mapped);
            }
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("probe: " + t, t);
        }
    }
}
