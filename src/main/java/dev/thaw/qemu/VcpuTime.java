package dev.thaw.qemu;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;

/**
 * The time a QEMU's vCPU threads have spent on a CPU, from {@code /proc/PID/task/TID/schedstat}
 * (its first field, nanoseconds). QEMU names them "CPU n/TCG" or "CPU n/KVM", or "ALL CPUs/TCG" for
 * single-threaded TCG (Thaw starts QEMU with {@code debug-threads=on}). A vCPU waiting for a page
 * sleeps, and one whose core another thread holds waits on the run queue: neither counts, so for a
 * guest that keeps its vCPU busy the run time per second is a host-side measure of how much it could run.
 */
public final class VcpuTime {
    private static final Pattern VCPU_THREAD = Pattern.compile("(CPU \\d+|ALL CPUs)/\\w+");

    private VcpuTime() {}

    /**
     * The vCPU threads' time so far, summed: on a CPU, and runnable but waiting on a run queue for one (schedstat's second
     * field: the time another thread held the core); and how many there are.
     */
    public record Sample(long runNanos, long waitedNanos, int vcpuCount) {}

    /** The schedstat files of a QEMU's vCPU threads, found once: reading them is then one small read per vCPU. */
    public static List<Path> schedstats(long pid) {
        List<Path> out = new ArrayList<>();
        try (DirectoryStream<Path> tasks = Files.newDirectoryStream(Path.of("/proc/" + pid + "/task"))) {
            for (Path task : tasks) {
                try {
                    if (VCPU_THREAD.matcher(Files.readString(task.resolve("comm")).strip()).matches()) out.add(task.resolve("schedstat"));
                } catch (IOException e) {
                    // the thread ended meanwhile
                }
            }
        } catch (IOException e) {
            return List.of();
        }
        return List.copyOf(out);
    }

    /** The time of the threads whose schedstat files these are; a thread that ended meanwhile is not counted. */
    public static Sample sample(List<Path> schedstats) {
        long run = 0;
        long waited = 0;
        int count = 0;
        for (Path f : schedstats) {
            try {
                String[] stat = Files.readString(f).trim().split("\\s+");
                run += Long.parseLong(stat[0]);
                waited += Long.parseLong(stat[1]);
                count++;
            } catch (IOException | RuntimeException e) {
                // the thread ended meanwhile
            }
        }
        return new Sample(run, waited, count);
    }

    /** The vCPU threads' time so far; all 0 when the process is gone. */
    public static Sample sample(long pid) {
        return sample(schedstats(pid));
    }

    /** Nanoseconds on a CPU summed over the vCPU threads; 0 when the process is gone. */
    public static long runNanos(long pid) {
        return sample(pid).runNanos();
    }
}
