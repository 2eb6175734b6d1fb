package dev.thaw.guest;

import dev.thaw.qemu.Accel;
import dev.thaw.qemu.ConsoleLine;
import dev.thaw.qemu.FreePages;
import dev.thaw.qemu.Journal;
import dev.thaw.qemu.QemuVersion;
import dev.thaw.qemu.QemuVm;
import dev.thaw.qemu.VmConfig;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * The demo guest's shape: RAM size and the wsbench region (T MiB filled, W MiB hot, laid out as {@code layout}).
 *
 * @param memoryMiB guest RAM
 * @param totalMiB  T: the region wsbench fills; at most RAM - 300 MiB, or the guest runs out of memory
 * @param wsMiB     W: the part wsbench keeps touching
 * @param layout    where in the region those W MiB lie
 */
public record DemoGuest(long memoryMiB, long totalMiB, long wsMiB, Layout layout) {
    /** Where wsbench's working set lies in its region (guest/src/wsbench.c). */
    public enum Layout {
        /** The first W MiB: one range, which a file's readahead serves well. */
        CONTIGUOUS,
        /**
         * W/T of the region's 4 KiB pages, chosen at random with a fixed seed: every 2 MiB stretch holds about W/T of its pages
         * at random places, so readahead brings in mostly cold pages and no stride predicts the next hot one.
         */
        SCATTERED;

        /** The name the options and the kernel command line take: {@code contiguous}, {@code scattered}. */
        public String key() {
            return name().toLowerCase(java.util.Locale.ROOT);
        }

        public static Layout parse(String key) {
            for (Layout l : values()) {
                if (l.key().equals(key)) return l;
            }
            throw new IllegalArgumentException("working-set layout: expected one of "
                    + java.util.Arrays.stream(values()).map(Layout::key).toList() + ", actual '" + key + "'");
        }
    }

    /** A contiguous working set, as before layouts existed. */
    public DemoGuest(long memoryMiB, long totalMiB, long wsMiB) {
        this(memoryMiB, totalMiB, wsMiB, Layout.CONTIGUOUS);
    }

    /** Room the guest kernel and initramfs need beside wsbench's region. */
    public static final long KERNEL_RESERVE_MIB = 300;
    public static final Duration BOOT_TIMEOUT = Duration.ofMinutes(3);

    public DemoGuest {
        java.util.Objects.requireNonNull(layout, "layout");
        if (wsMiB <= 0 || wsMiB > totalMiB) {
            throw new IllegalArgumentException("working set: expected 0 < W <= T, actual W=" + wsMiB + " MiB, T=" + totalMiB + " MiB");
        }
        if (totalMiB > memoryMiB - KERNEL_RESERVE_MIB) {
            throw new IllegalArgumentException("wsbench region: expected T <= RAM - " + KERNEL_RESERVE_MIB + " MiB = "
                    + (memoryMiB - KERNEL_RESERVE_MIB) + " MiB (the guest kernel needs the rest), actual T=" + totalMiB + " MiB");
        }
    }

    public String kernelCommandLine() {
        // quiet keeps kernel messages off the console that carries the ticks; panic=-1 with
        // -no-reboot makes a guest panic end QEMU instead of hanging.
        return "console=ttyS0 quiet loglevel=3 panic=-1 mitigations=off rdinit=/init"
                + " wsbench.total_mib=" + totalMiB + " wsbench.ws_mib=" + wsMiB + " wsbench.layout=" + layout.key();
    }

    public VmConfig vmConfig(String name, GuestImage image, QemuVersion qemu, Accel accel) {
        return vmConfig(name, image, qemu, accel, FreePages.NONE, 0);
    }

    /**
     * The guest with a balloon that handles freed memory as {@code freePages} says and, when {@code freeMiB > 0}, that first
     * allocates, writes and frees that much memory (guest/src/freemem.c, at most what the guest has available) before wsbench
     * starts: a guest that freed most of its memory. Not the default: with free-page reporting a mapped restore is refused
     * ({@link dev.thaw.restore.MappedRestore}: QEMU 7.2 would punch the reported pages out of the RAM file).
     */
    public VmConfig vmConfig(String name, GuestImage image, QemuVersion qemu, Accel accel, FreePages freePages, long freeMiB) {
        if (freeMiB < 0 || freeMiB > memoryMiB) {
            throw new IllegalArgumentException("memory to free: expected 0 to " + memoryMiB + " MiB, actual " + freeMiB + " MiB");
        }
        List<String> args = new ArrayList<>(dev.thaw.qemu.QemuOption.VM_GENERATION_ID);
        args.addAll(freePages.arguments());
        return new VmConfig(name, qemu.i440fxMachineType(), accel, memoryMiB, 1, image.kernel(), image.initrd(),
                kernelCommandLine() + (freeMiB > 0 ? " thaw.free_mib=" + freeMiB : ""), false, false, args);
    }

    /**
     * Waits for freemem's report ("freemem touched M MiB in S s, freed") and returns M, the MiB it wrote and freed; fails if
     * QEMU or the guest fails first.
     */
    public static long awaitFreed(QemuVm vm, Journal<ConsoleLine>.Cursor cursor, Duration timeout) {
        ConsoleLine line = awaitLine(vm, cursor, l -> l.startsWith("freemem ") || l.contains("thaw-init warning: freemem"), timeout,
                "freemem did not report", "freemem");
        java.util.regex.Matcher m = FREED.matcher(line.text());
        if (!m.find()) throw new IllegalStateException(vm.name() + ": freemem failed: " + line.text() + lastConsoleLines(vm));
        return Long.parseLong(m.group(1));
    }

    private static final java.util.regex.Pattern FREED = java.util.regex.Pattern.compile("^freemem touched (\\d+) MiB in [0-9.]+ s, freed");

    /** Waits until wsbench has filled its region ("wsbench ready"); fails if QEMU or the workload dies first. */
    public static ConsoleLine awaitReady(QemuVm vm, Journal<ConsoleLine>.Cursor cursor, Duration timeout) {
        ConsoleLine line = awaitLine(vm, cursor, l -> l.contains("wsbench ready") || l.contains("wsbench error"), timeout,
                "wsbench not ready", "wsbench");
        if (!line.text().contains("wsbench ready")) {
            throw new IllegalStateException(vm.name() + ": the guest failed: " + line.text() + lastConsoleLines(vm));
        }
        return line;
    }

    /** The host port QEMU forwards to the guest's {@code service}: the one TCP port that QEMU listens on ({@code hostfwd} port 0). */
    static int forwardedPort(QemuVm vm, String service) {
        java.util.Set<Integer> ports = dev.thaw.util.ListeningPorts.of(vm.pid());
        if (ports.size() != 1) {
            throw new IllegalStateException(vm.name() + ": expected QEMU to listen on one TCP port (the forward to the guest's " + service
                    + "), actual " + ports);
        }
        return ports.iterator().next();
    }

    /**
     * Waits until the guest's application {@code app} is ready ("thaw-app APP ready" on the console); fails on a line
     * containing {@code failure} (the application exited) or a kernel panic, and when neither comes within {@code timeout}.
     */
    static ConsoleLine awaitAppReady(QemuVm vm, Journal<ConsoleLine>.Cursor cursor, String app, String failure, Duration timeout) {
        String ready = "thaw-app " + app + " ready";
        ConsoleLine line = awaitLine(vm, cursor, l -> l.contains(ready) || l.contains(failure), timeout, app + " not ready", app);
        if (!line.text().contains(ready)) {
            throw new IllegalStateException(vm.name() + ": the guest failed: " + line.text() + lastConsoleLines(vm));
        }
        return line;
    }

    /**
     * The first console line {@code wanted} accepts, or a kernel panic's; fails naming {@code missing} and QEMU's state when none
     * comes within {@code timeout}.
     */
    private static ConsoleLine awaitLine(QemuVm vm, Journal<ConsoleLine>.Cursor cursor, java.util.function.Predicate<String> wanted,
                                         Duration timeout, String missing, String what) {
        try {
            Optional<ConsoleLine> line = cursor.await(l -> wanted.test(l.text()) || l.text().contains("Kernel panic"), timeout);
            if (line.isEmpty()) {
                throw new IllegalStateException(vm.name() + ": " + missing + " within " + timeout.toSeconds() + " s; "
                        + vm.describeState() + lastConsoleLines(vm));
            }
            return line.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for " + what, e);
        }
    }

    /** Collects the ticks that arrive within {@code duration}. */
    public static List<WsbenchTick> collectTicks(Journal<ConsoleLine>.Cursor cursor, Duration duration) throws InterruptedException {
        List<WsbenchTick> ticks = new ArrayList<>();
        long deadline = System.nanoTime() + duration.toNanos();
        while (true) {
            long remaining = deadline - System.nanoTime();
            if (remaining <= 0) break;
            Optional<ConsoleLine> line = cursor.next(Duration.ofNanos(remaining));
            if (line.isEmpty()) break;
            WsbenchTick.parse(line.get()).ifPresent(ticks::add);
        }
        return ticks;
    }

    static String lastConsoleLines(QemuVm vm) {
        List<ConsoleLine> lines = vm.console().snapshot();
        List<String> tail = lines.subList(Math.max(0, lines.size() - 8), lines.size()).stream().map(ConsoleLine::text).toList();
        return tail.isEmpty() ? " (the console stayed empty)" : "; last console lines: " + String.join(" | ", tail);
    }
}
