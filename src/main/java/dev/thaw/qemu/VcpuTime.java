package dev.thaw.qemu;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The time a QEMU's vCPU threads have spent on a CPU, from {@code /proc/PID/task/TID/schedstat}
 * (its first field, nanoseconds). QEMU names them "CPU n/TCG" or "CPU n/KVM" (Thaw starts QEMU with
 * {@code debug-threads=on}). A vCPU waiting for a page sleeps, and one whose core another thread
 * holds waits on the run queue: neither counts, so for a guest that keeps its vCPU busy the run
 * time per second is a host-side measure of how much it could run.
 */
public final class VcpuTime {
    private VcpuTime() {}

    /** The vCPU threads' time so far: on a CPU and waiting for one (summed), and how many there are. */
    public record Sample(long runNanos, long waitedNanos, int vcpuCount) {}

    /** The vCPU threads' time so far; all 0 when the process is gone. */
    public static Sample sample(long pid) {
        long[] t = of(pid);
        return new Sample(t[0], t[1], (int) t[2]);
    }

    /** Nanoseconds on a CPU summed over the vCPU threads; 0 when the process is gone. */
    public static long runNanos(long pid) {
        return of(pid)[0];
    }

    /**
     * {run, waited} nanoseconds summed over the vCPU threads: on a CPU, and runnable but waiting on a run queue for one
     * (schedstat's second field: the time another thread held the core), and the number of vCPU threads. {0, 0, 0} when the
     * process is gone.
     */
    public static long[] of(long pid) {
        long sum = 0;
        long waited = 0;
        long count = 0;
        try (DirectoryStream<Path> tasks = Files.newDirectoryStream(Path.of("/proc/" + pid + "/task"))) {
            for (Path task : tasks) {
                try {
                    if (!Files.readString(task.resolve("comm")).startsWith("CPU ")) continue;
                    String[] stat = Files.readString(task.resolve("schedstat")).trim().split("\\s+");
                    sum += Long.parseLong(stat[0]);
                    waited += Long.parseLong(stat[1]);
                    count++;
                } catch (IOException | RuntimeException e) {
                    // the thread ended meanwhile
                }
            }
        } catch (IOException e) {
            return new long[] {0, 0, 0};
        }
        return new long[] {sum, waited, count};
    }
}
