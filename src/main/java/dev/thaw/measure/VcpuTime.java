package dev.thaw.measure;

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

    /** Nanoseconds on a CPU summed over the vCPU threads; 0 when the process is gone. */
    public static long runNanos(long pid) {
        long sum = 0;
        try (DirectoryStream<Path> tasks = Files.newDirectoryStream(Path.of("/proc/" + pid + "/task"))) {
            for (Path task : tasks) {
                try {
                    if (!Files.readString(task.resolve("comm")).startsWith("CPU ")) continue;
                    String stat = Files.readString(task.resolve("schedstat")).trim();
                    sum += Long.parseLong(stat.substring(0, stat.indexOf(' ')));
                } catch (IOException | RuntimeException e) {
                    // the thread ended meanwhile
                }
            }
        } catch (IOException e) {
            return 0;
        }
        return sum;
    }
}
