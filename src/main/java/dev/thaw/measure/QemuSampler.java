package dev.thaw.measure;

import dev.thaw.qemu.QemuVm;
import dev.thaw.qemu.VcpuTime;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Samples the QEMU named {@code vmName} every {@link #PERIOD_MILLIS} from the restore's start,
 * whichever method restores it: its resident memory (RssAnon + RssFile + RssShmem: the pages a
 * restore has placed so far, for eager, lazy and mapped-file restores alike, QEMU's own memory of
 * some tens of MiB included) and the time its vCPU threads spent on a CPU ({@link VcpuTime}). Before
 * that QEMU exists both read 0.
 */
public final class QemuSampler implements AutoCloseable {
    static final long PERIOD_MILLIS = 50;

    private final String vmName;
    private final long startNanos;
    private final List<long[]> samples = new ArrayList<>(); // {nanos from start, resident bytes, vCPU run nanos, vCPU queued nanos, vCPUs}
    private final Thread thread;
    private volatile boolean stop;

    public QemuSampler(String vmName, long startNanos) {
        this.vmName = vmName;
        this.startNanos = startNanos;
        this.thread = Thread.ofPlatform().daemon().name("rss-" + vmName).start(this::loop);
    }

    private void loop() {
        while (!stop) {
            long pid = QemuVm.live(vmName).map(QemuVm::pid).orElse(-1L);
            long bytes = pid < 0 ? 0 : residentBytes(pid);
            VcpuTime.Sample vcpu = pid < 0 ? new VcpuTime.Sample(0, 0, 0) : VcpuTime.sample(pid);
            synchronized (samples) {
                samples.add(new long[] {System.nanoTime() - startNanos, bytes, vcpu.runNanos(), vcpu.waitedNanos(), vcpu.vcpuCount()});
            }
            try {
                Thread.sleep(PERIOD_MILLIS);
            } catch (InterruptedException e) {
                return;
            }
        }
    }

    /** RssAnon + RssFile + RssShmem of process {@code pid}, in bytes; 0 if it has ended. */
    public static long residentBytes(long pid) {
        try {
            long kib = 0;
            for (String line : Files.readAllLines(Path.of("/proc/" + pid + "/status"))) {
                if (line.startsWith("RssAnon:") || line.startsWith("RssFile:") || line.startsWith("RssShmem:")) {
                    kib += Long.parseLong(line.replaceAll("[^0-9]", ""));
                }
            }
            return kib << 10;
        } catch (IOException | RuntimeException e) {
            return 0; // the process ended between the lookup and the read
        }
    }

    /**
     * The proportional set size of process {@code pid} ({@code Pss} of /proc/PID/smaps_rollup), in bytes: each page it maps
     * divided among the processes that map it, so that clones mapping one RAM file privately sum to the host memory they hold;
     * 0 if it has ended.
     */
    public static long proportionalBytes(long pid) {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/" + pid + "/smaps_rollup"))) {
                if (line.startsWith("Pss:")) return Long.parseLong(line.replaceAll("[^0-9]", "")) << 10;
            }
            return 0;
        } catch (IOException | RuntimeException e) {
            return 0; // the process ended between the lookup and the read
        }
    }

    /** The samples so far: {nanos from the start, vCPU run nanos}. */
    public List<long[]> vcpuRunSamples() {
        return copy().stream().map(x -> new long[] {x[0], x[2]}).toList();
    }

    /**
     * The share of each consecutive step up to {@code endNanos} that the vCPU spent runnable but waiting for a CPU (another
     * thread on its core): the CPU contention a restore's own threads cause on a small host. With several vCPUs, their mean
     * (their queued times are summed: over one vCPU's step they could exceed it).
     */
    public List<Double> vcpuQueuedSharePerStep(long stepNanos, long endNanos) {
        List<long[]> ends = atStepEnds(stepNanos, endNanos);
        List<Double> out = new ArrayList<>();
        for (int k = 0; k < ends.size(); k++) {
            // A QEMU that appeared within the step starts from 0: its first sample counts whole.
            long before = k == 0 ? 0 : ends.get(k - 1)[3];
            long vcpus = Math.max(1, ends.get(k)[4]);
            out.add(Math.min(1.0, Math.max(0, ends.get(k)[3] - before) / (double) (stepNanos * vcpus)));
        }
        return List.copyOf(out);
    }

    /** The latest sample at or before the end of each consecutive step up to {@code endNanos} (all zero before the first). */
    private List<long[]> atStepEnds(long stepNanos, long endNanos) {
        List<long[]> copy = copy();
        List<long[]> out = new ArrayList<>();
        int i = 0;
        long[] last = {0, 0, 0, 0, 0};
        for (long end = stepNanos; end <= endNanos; end += stepNanos) {
            while (i < copy.size() && copy.get(i)[0] <= end) last = copy.get(i++);
            out.add(last);
        }
        return out;
    }

    private List<long[]> copy() {
        synchronized (samples) {
            return List.copyOf(samples);
        }
    }

    /** The resident MiB at the end of each consecutive step up to {@code endNanos}: the latest sample at or before it. */
    public List<Double> mibPerStep(long stepNanos, long endNanos) {
        return atStepEnds(stepNanos, endNanos).stream().map(x -> x[1] / (double) (1 << 20)).toList();
    }

    @Override
    public void close() {
        stop = true;
        thread.interrupt();
        try {
            thread.join(1000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
