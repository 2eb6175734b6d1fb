package dev.thaw.restore;

import dev.thaw.util.Errno;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;

/**
 * Transparent huge pages for a restored guest's RAM. QEMU's postcopy destination marks guest RAM
 * MADV_NOHUGEPAGE while pages arrive and MADV_HUGEPAGE again at completion, and khugepaged then
 * collapses it at well under 1 MiB/s here: a lazily restored guest keeps 4 KiB host pages for a
 * long time. This collapses the RAM of a QEMU from outside, once the migration has completed:
 * {@code process_madvise(pidfd_open(qemu), {2 MiB range}, MADV_COLLAPSE)} per aligned 2 MiB range
 * (Linux 6.1+, CAP_SYS_NICE and ptrace access: root). During postcopy every call fails with EINVAL.
 *
 * <p>Cost: CPU in the kernel (about 2 s per GiB measured here) while the guest keeps running, and
 * ranges the guest never touched become resident. See docs/benchmarks.md for what it buys.
 */
public final class HugePages {
    static final long HUGE_PAGE_BYTES = dev.thaw.host.HugePagePool.PAGE_BYTES;
    private static final int SYS_PIDFD_OPEN = 434;
    private static final int SYS_PROCESS_MADVISE = 440;
    private static final int MADV_COLLAPSE = 25;

    /** What a collapse did. {@code errors} maps errno values to counts. */
    public record CollapseReport(long mappingAddress, long rangeCount, long collapsedCount, java.util.Map<Integer, Integer> errors,
                                 long anonHugeBytesBefore, long anonHugeBytesAfter, long durationNanos) {}

    /** One mapping of {@code /proc/PID/smaps}. */
    public record Mapping(long start, long end, long anonHugeBytes, List<String> flags) {
        public long size() {
            return end - start;
        }
    }

    private HugePages() {}

    /** The guest RAM mapping: exactly {@code ramBytes} long, 2 MiB aligned; empty if QEMU has none such. */
    public static Optional<Mapping> guestRamMapping(long pid, long ramBytes) {
        return mappings(pid).stream()
                .filter(m -> m.size() == ramBytes && m.start() % HUGE_PAGE_BYTES == 0)
                .findFirst();
    }

    static List<Mapping> mappings(long pid) {
        List<String> lines;
        try {
            lines = Files.readAllLines(Path.of("/proc/" + pid + "/smaps"));
        } catch (IOException e) {
            throw new IllegalStateException("cannot read /proc/" + pid + "/smaps: " + e.getMessage(), e);
        }
        java.util.ArrayList<Mapping> out = new java.util.ArrayList<>();
        long start = -1, end = -1, anonHuge = 0;
        for (String line : lines) {
            int dash = line.indexOf('-');
            if (dash > 0 && line.length() > dash + 1 && isHex(line, 0, dash) && line.indexOf(' ') > dash) {
                start = Long.parseUnsignedLong(line.substring(0, dash), 16);
                end = Long.parseUnsignedLong(line.substring(dash + 1, line.indexOf(' ')), 16);
                anonHuge = 0;
            } else if (line.startsWith("AnonHugePages:")) {
                anonHuge = Long.parseLong(line.replaceAll("[^0-9]", "")) << 10;
            } else if (line.startsWith("VmFlags:") && start >= 0) {
                out.add(new Mapping(start, end, anonHuge, List.of(line.substring(8).trim().split("\\s+"))));
                start = -1;
            }
        }
        return out;
    }

    private static boolean isHex(String s, int from, int to) {
        for (int i = from; i < to; i++) {
            if (Character.digit(s.charAt(i), 16) < 0) return false;
        }
        return to > from;
    }

    /**
     * Collapses the guest RAM of QEMU {@code pid} into huge pages, one 2 MiB range per call, and
     * counts what failed (EAGAIN ranges are retried once). Call only after the migration completed.
     */
    public static CollapseReport collapse(long pid, long ramBytes) {
        Mapping ram = guestRamMapping(pid, ramBytes).orElseThrow(() -> new IllegalStateException(
                "QEMU pid " + pid + " has no mapping of exactly " + ramBytes + " bytes, 2 MiB aligned: expected its guest RAM"));
        long start = System.nanoTime();
        java.util.Map<Integer, Integer> errors = new java.util.TreeMap<>();
        long collapsed = 0;
        long ranges = ram.size() / HUGE_PAGE_BYTES;
        Linker linker = Linker.nativeLinker();
        Linker.Option errno = Errno.CAPTURE;
        MemorySegment syscallAddress = linker.defaultLookup().find("syscall").orElseThrow();
        MethodHandle pidfdOpen = linker.downcallHandle(syscallAddress,
                FunctionDescriptor.of(ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG),
                Linker.Option.firstVariadicArg(1), errno);
        MethodHandle processMadvise = linker.downcallHandle(syscallAddress,
                FunctionDescriptor.of(ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG, ValueLayout.ADDRESS,
                        ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG),
                Linker.Option.firstVariadicArg(1), errno);
        MethodHandle close = linker.downcallHandle(linker.defaultLookup().find("close").orElseThrow(),
                FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT));
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = Errno.state(arena);
            long pidfd = (long) pidfdOpen.invokeExact(state, (long) SYS_PIDFD_OPEN, pid, 0L);
            if (pidfd < 0) {
                throw new IllegalStateException("pidfd_open(" + pid + ") failed: errno " + Errno.of(state));
            }
            try {
                MemorySegment iov = arena.allocate(16, 8);
                for (long r = 0; r < ranges; r++) {
                    iov.set(ValueLayout.JAVA_LONG, 0, ram.start() + r * HUGE_PAGE_BYTES);
                    iov.set(ValueLayout.JAVA_LONG, 8, HUGE_PAGE_BYTES);
                    int failure = 0;
                    for (int attempt = 0; attempt < 2; attempt++) {
                        long n = (long) processMadvise.invokeExact(state, (long) SYS_PROCESS_MADVISE, pidfd, iov, 1L, (long) MADV_COLLAPSE, 0L);
                        failure = n < 0 ? Errno.of(state) : 0;
                        if (failure != 11 /* EAGAIN: a page was busy */) break;
                    }
                    if (failure == 0) collapsed++;
                    else errors.merge(failure, 1, Integer::sum);
                }
            } finally {
                int ignored = (int) close.invokeExact((int) pidfd);
            }
        } catch (Throwable t) {
            if (t instanceof RuntimeException re) throw re;
            throw new IllegalStateException("process_madvise failed: " + t, t);
        }
        long after = guestRamMapping(pid, ramBytes).map(Mapping::anonHugeBytes).orElse(0L);
        return new CollapseReport(ram.start(), ranges, collapsed, java.util.Map.copyOf(errors), ram.anonHugeBytes(), after,
                System.nanoTime() - start);
    }

    /**
     * What this host offers a restore choosing its guest RAM: whether it may take surplus hugetlb pages, MemAvailable, and the
     * free 2 MiB blocks. What cannot be read counts as none: the choice then keeps 4 KiB pages, which never fail for want of
     * huge pages.
     */
    public static GuestRamChoice.Host host() {
        boolean permitted = Files.isWritable(overcommitKnob());
        long available = 0;
        long blocks = 0;
        try {
            for (String line : Files.readAllLines(Path.of("/proc/meminfo"))) {
                if (line.startsWith("MemAvailable:")) available = Long.parseLong(line.replaceAll("[^0-9]", "")) << 10;
            }
            for (String line : Files.readAllLines(Path.of("/proc/buddyinfo"))) blocks += freeHugeBlocks(line);
        } catch (IOException | RuntimeException e) {
            return new GuestRamChoice.Host(permitted, 0, 0);
        }
        long pool = dev.thaw.host.HugePagePool.state().map(dev.thaw.host.HugePagePool.State::availablePageCount).orElse(0L);
        return new GuestRamChoice.Host(permitted, available, blocks, pool);
    }

    /**
     * The free 2 MiB blocks one line of {@code /proc/buddyinfo} counts ("Node 0, zone Normal" and then free blocks of order 0,
     * 1, ...): a block of order 9 + k holds 2^k of them.
     */
    static long freeHugeBlocks(String buddyinfoLine) {
        String[] fields = buddyinfoLine.trim().split("\\s+");
        if (fields.length < 4 || !fields[0].equals("Node") || !fields[2].equals("zone")) {
            throw new IllegalArgumentException("/proc/buddyinfo: expected 'Node N, zone NAME' and counts, actual '" + buddyinfoLine + "'");
        }
        long blocks = 0;
        for (int order = 9; 4 + order < fields.length; order++) blocks += Long.parseLong(fields[4 + order]) << (order - 9);
        return blocks;
    }

    /**
     * Lets QEMU take {@code count} more 2 MiB hugetlb pages from the kernel as it maps guest RAM
     * (root: {@code /proc/sys/vm/nr_overcommit_hugepages}; surplus pages, freed again when QEMU
     * exits) and returns what undoes it. QEMU's mmap of the hugetlb memfd fails at once, and QEMU
     * with it, if the kernel cannot find the pages: hugetlb memory is never overcommitted.
     */
    public static Runnable allowHugetlbPages(long count) {
        return allowHugetlbPages(overcommitKnob(), count);
    }

    /** {@link #allowHugetlbPages(long)} through {@code knob}. */
    static Runnable allowHugetlbPages(Path knob, long count) {
        // Read, add, write: concurrent restores would lose each other's additions without the locks (the JVM's for clones in one
        // process, the file's for restores in several).
        return underKnobLock(knob, () -> allowUnderLock(knob, count));
    }

    private static final Object OVERCOMMIT_KNOB = new Object();
    /** How long a change of the knob waits for another process's: each holds the lock for a read and a write. */
    static final java.time.Duration KNOB_LOCK_WAIT = java.time.Duration.ofSeconds(10);

    /**
     * The file that serializes the knob's read-add-write across processes: beside a knob in an ordinary directory (a test's),
     * else {@code /run/lock/thaw-hugetlb-knob.lock} (a sysfs or proc knob has no room beside it), or under {@code /tmp}.
     */
    static Path lockFileFor(Path knob) {
        if (!knob.startsWith("/sys") && !knob.startsWith("/proc")) return knob.resolveSibling(knob.getFileName() + ".lock");
        Path runLock = Path.of("/run/lock");
        return (Files.isDirectory(runLock) ? runLock : Path.of(System.getProperty("java.io.tmpdir"))).resolve("thaw-hugetlb-knob.lock");
    }

    /** Runs {@code change} holding this JVM's lock and the knob's lock file (an exclusive POSIX lock, waited for at most 10 s). */
    private static <T> T underKnobLock(Path knob, java.util.function.Supplier<T> change) {
        synchronized (OVERCOMMIT_KNOB) {
            Path lockFile = lockFileFor(knob);
            try (java.nio.channels.FileChannel channel = java.nio.channels.FileChannel.open(lockFile, java.nio.file.StandardOpenOption.CREATE,
                    java.nio.file.StandardOpenOption.WRITE)) {
                long deadline = System.nanoTime() + KNOB_LOCK_WAIT.toNanos();
                java.nio.channels.FileLock lock;
                while ((lock = channel.tryLock()) == null) {
                    if (System.nanoTime() > deadline) {
                        throw new IllegalStateException("waited " + KNOB_LOCK_WAIT.toSeconds() + " s for " + lockFile + " (another Thaw changing "
                                + knob + "): expected it released, actual still held");
                    }
                    Thread.sleep(5);
                }
                try (java.nio.channels.FileLock held = lock) {
                    return change.get();
                }
            } catch (IOException e) {
                throw new IllegalStateException("cannot lock " + lockFile + " to change " + knob + ": " + e.getMessage(), e);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted while waiting for " + lockFile, e);
            }
        }
    }

    /**
     * What gives back {@code count} pages that a Thaw now dead allowed for the QEMU this process resumed: without it, every
     * hugetlb restore whose Thaw was killed left its allowance raised for good.
     */
    public static Runnable takeOverAllowance(long count) {
        return lowering(overcommitKnob(), count);
    }

    /** What lowers {@code knob} by {@code count} under the lock: the undo of an allowance, whoever made it. */
    private static Runnable lowering(Path knob, long count) {
        return () -> underKnobLock(knob, () -> {
            lower(knob, count);
            return null;
        });
    }

    /**
     * The surplus-page knob of 2 MiB pages: the per-size one in sysfs ({@code /proc/sys/vm/nr_overcommit_hugepages} is the
     * default size's, 1 GiB on some hosts), else the /proc one on kernels without it.
     */
    static Path overcommitKnob() {
        Path perSize = Path.of("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_overcommit_hugepages");
        return Files.exists(perSize) ? perSize : Path.of("/proc/sys/vm/nr_overcommit_hugepages");
    }

    private static Runnable allowUnderLock(Path knob, long count) {
        try {
            long before = Long.parseLong(Files.readString(knob).strip());
            Files.writeString(knob, Long.toString(before + count));
            return lowering(knob, count);
        } catch (IOException e) {
            throw new IllegalStateException("cannot allow hugetlb pages through " + knob + " (root needed): " + e.getMessage(), e);
        }
    }

    private static void lower(Path knob, long count) {
        try {
            long current = Long.parseLong(Files.readString(knob).strip());
            Files.writeString(knob, Long.toString(Math.max(0, current - count)));
        } catch (IOException e) {
            throw new IllegalStateException("cannot lower " + knob + ": " + e.getMessage(), e);
        }
    }
}
