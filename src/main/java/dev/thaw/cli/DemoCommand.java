package dev.thaw.cli;

import dev.thaw.guest.DemoGuest;
import dev.thaw.guest.GuestAgent;
import dev.thaw.guest.GuestImage;
import dev.thaw.guest.WsbenchTick;
import dev.thaw.host.HostDoctor;
import dev.thaw.measure.Throughput;
import dev.thaw.qemu.Accel;
import dev.thaw.qemu.ConsoleLine;
import dev.thaw.qemu.Journal;
import dev.thaw.qemu.QemuVersion;
import dev.thaw.qemu.QemuVm;
import java.io.PrintStream;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * The main job. At this stage: check the host, build the demo guest, boot it, watch wsbench's
 * throughput, prove the guest agent works (memsum with the workload paused), shut down.
 */
@Command(name = "demo", mixinStandardHelpOptions = true,
        description = {"Builds the demo guest, boots it, shows its workload's throughput and shuts it down.",
                "Installs what the host lacks first (see 'thaw doctor')."})
final class DemoCommand implements Callable<Integer> {
    @Option(names = "--memory-mib", defaultValue = "512", description = "Guest RAM in MiB (default ${DEFAULT-VALUE}).")
    long memoryMiB;

    @Option(names = "--total-mib", defaultValue = "192", description = "wsbench region T in MiB (default ${DEFAULT-VALUE}).")
    long totalMiB;

    @Option(names = "--ws-mib", defaultValue = "64", description = "wsbench working set W in MiB (default ${DEFAULT-VALUE}).")
    long wsMiB;

    @Option(names = "--seconds", defaultValue = "5", description = "How long to watch the workload (default ${DEFAULT-VALUE}).")
    int seconds;

    @Option(names = "--json", description = "Print one JSON object summarizing what the demo did and measured.")
    boolean json;

    /** What {@code --json} prints. Times are milliseconds from QEMU's launch unless named otherwise. */
    record DemoReport(String qemuVersion, String accel, String accelReason, String guestKey, String guestKernel,
                      long memoryMiB, long totalMiB, long wsMiB,
                      long consoleFirstLineMillis, long initUpMillis, long wsbenchReadyMillis,
                      int tickCount, double opsPerSecond, double minWindowOpsPerSecond, double maxWindowOpsPerSecond,
                      String memsumPaused, boolean memsumRepeatable, String memsumAfterResume, long memsumByteCount,
                      long shutdownMillis, long totalMillis) {}

    @Override
    public Integer call() throws Exception {
        long started = System.nanoTime();
        PrintStream out = json ? System.err : System.out;
        DemoGuest shape = new DemoGuest(memoryMiB, totalMiB, wsMiB);

        HostDoctor.Report host = HostDoctor.ensureReady(System.err);
        QemuVersion qemu = host.qemuVersion().orElseThrow();
        Accel accel = host.accel();
        String accelReason = host.kvm().map(v -> v.reason()).orElse("");
        out.printf("host: QEMU %s, accelerator %s (%s)%n", qemu, accel.qemuName(), accelReason);

        GuestImage image = host.guest().orElseThrow();
        out.printf("guest: %s, kernel %s, RAM %d MiB, wsbench T=%d MiB W=%d MiB%n", image.key(), image.kernelRelease(),
                memoryMiB, totalMiB, wsMiB);

        try (QemuVm vm = QemuVm.launch(shape.vmConfig("thaw-demo", image, qemu, accel))) {
            Journal<ConsoleLine>.Cursor cursor = vm.console().cursorFromStart();
            Progress progress = new Progress(out);
            progress.update("booting");
            ConsoleLine ready = DemoGuest.awaitReady(vm, cursor, DemoGuest.BOOT_TIMEOUT);
            List<ConsoleLine> boot = vm.console().snapshot();
            long firstLine = boot.isEmpty() ? -1 : millisSince(vm.launchedNanos(), boot.getFirst().hostNanos());
            long initUp = boot.stream().filter(l -> l.text().contains("thaw-init up")).findFirst()
                    .map(l -> millisSince(vm.launchedNanos(), l.hostNanos())).orElse(-1L);
            long readyMillis = millisSince(vm.launchedNanos(), ready.hostNanos());
            progress.done(String.format("booted: kernel and init up after %.1f s, wsbench ready after %.1f s",
                    initUp / 1000.0, readyMillis / 1000.0));

            List<WsbenchTick> ticks = new ArrayList<>();
            long watchStart = System.nanoTime();
            long watchNanos = Duration.ofSeconds(seconds).toNanos();
            while (System.nanoTime() - watchStart < watchNanos) {
                ticks.addAll(DemoGuest.collectTicks(cursor, Duration.ofMillis(500)));
                Throughput sofar = Throughput.of(ticks, Throughput.ONE_SECOND_NANOS);
                progress.update(String.format("measuring %.1f/%d s: %s ops/s", (System.nanoTime() - watchStart) / 1e9, seconds,
                        human(sofar.opsPerSecond())));
                if (!vm.isAlive()) throw new IllegalStateException("the guest died: " + vm.describeState());
            }
            Throughput throughput = Throughput.of(ticks, Throughput.ONE_SECOND_NANOS);
            progress.done(String.format("wsbench: %s ops/s mean over %d ticks (1 s windows: min %s, max %s)",
                    human(throughput.opsPerSecond()), throughput.tickCount(), human(throughput.minWindow()),
                    human(throughput.maxWindow())));

            GuestAgent.MemSum first;
            GuestAgent.MemSum second;
            GuestAgent.MemSum afterResume;
            try (GuestAgent agent = GuestAgent.connect(vm)) {
                agent.awaitReady(Duration.ofSeconds(30));
                agent.pauseWorkload();
                first = agent.memsum();
                second = agent.memsum();
                agent.resumeWorkload();
                DemoGuest.collectTicks(cursor, Duration.ofMillis(300));
                afterResume = agent.memsum();
            }
            boolean repeatable = first.equals(second);
            out.printf("memsum of %d MiB with wsbench paused: %s twice %s; after resuming: %s%n", first.byteCount() >> 20,
                    first.checksumHex(), repeatable ? "identical" : "DIFFERENT", afterResume.checksumHex());

            long quitStart = System.nanoTime();
            vm.qmp().quit();
            if (!vm.awaitExit(Duration.ofSeconds(10))) {
                throw new IllegalStateException("QEMU did not exit within 10 s of 'quit': " + vm.describeState());
            }
            long shutdown = millisSince(quitStart, System.nanoTime());
            long total = millisSince(started, System.nanoTime());
            out.printf("shut down in %d ms; demo took %.1f s%n", shutdown, total / 1000.0);
            if (json) {
                System.out.println(Json.write(new DemoReport(qemu.text(), accel.qemuName(), accelReason, image.key(),
                        image.kernelPackage(), memoryMiB, totalMiB, wsMiB, firstLine, initUp, readyMillis,
                        throughput.tickCount(), throughput.opsPerSecond(), throughput.minWindow(), throughput.maxWindow(),
                        first.checksumHex(), repeatable, afterResume.checksumHex(), first.byteCount(), shutdown, total)));
            }
            return repeatable ? 0 : 1;
        }
    }

    static long millisSince(long startNanos, long endNanos) {
        return (endNanos - startNanos) / 1_000_000;
    }

    static String human(double opsPerSecond) {
        return opsPerSecond >= 1e6 ? String.format("%.2f M", opsPerSecond / 1e6) : String.format("%.0f k", opsPerSecond / 1e3);
    }

    /** A one-line status on a terminal ({@code \r}-updated); a line per second otherwise. */
    static final class Progress {
        private final PrintStream out;
        private final boolean terminal;
        private long lastPrinted;

        Progress(PrintStream out) {
            this.out = out;
            this.terminal = Optional.ofNullable(System.console()).map(c -> c.isTerminal()).orElse(false) && out == System.out;
        }

        void update(String status) {
            if (terminal) {
                out.print("\r\033[K  " + status);
                out.flush();
            } else if (System.nanoTime() - lastPrinted > 1_000_000_000L) {
                out.println("  " + status);
                lastPrinted = System.nanoTime();
            }
        }

        void done(String line) {
            if (terminal) out.print("\r\033[K");
            out.println(line);
            lastPrinted = 0;
        }
    }
}
