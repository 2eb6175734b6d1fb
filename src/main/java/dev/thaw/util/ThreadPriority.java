package dev.thaw.util;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Linux scheduling classes of threads, through {@code sched_setscheduler(2)} (the JDK's foreign function API): a thread in
 * SCHED_IDLE runs only on a core that nothing else wants, so work that merely streams in the background cannot take CPU
 * from a guest's vCPU on a host with few cores. Moving another process's thread needs CAP_SYS_NICE (root) or the same user.
 */
public final class ThreadPriority {
    private static final int SCHED_OTHER = 0;
    private static final int SCHED_IDLE = 5;
    private static final MethodHandle SCHED_SETSCHEDULER;
    private static final MethodHandle SCHED_GETSCHEDULER;

    static {
        Linker linker = Linker.nativeLinker();
        Linker.Option errno = Errno.CAPTURE;
        SCHED_SETSCHEDULER = linker.downcallHandle(linker.defaultLookup().find("sched_setscheduler").orElseThrow(),
                FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.ADDRESS), errno);
        SCHED_GETSCHEDULER = linker.downcallHandle(linker.defaultLookup().find("sched_getscheduler").orElseThrow(),
                FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT), errno);
    }

    /** A thread's scheduling class as this class sets them. */
    public enum Policy {
        /** The default time-sharing class (SCHED_OTHER, nice unchanged). */
        NORMAL,
        /** SCHED_IDLE: only what no other thread wants. */
        IDLE
    }

    private ThreadPriority() {}

    /** Sets the calling thread's class; throws with errno if the kernel refuses. */
    public static void setCurrentThread(Policy policy) {
        set(0, policy);
    }

    /** Sets the class of thread {@code tid} (of any process); throws with errno if the kernel refuses. */
    public static void set(long tid, Policy policy) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment param = arena.allocate(ValueLayout.JAVA_INT); // struct sched_param { int sched_priority = 0; }
            MemorySegment state = Errno.state(arena);
            int rc = (int) SCHED_SETSCHEDULER.invokeExact(state, (int) tid, policy == Policy.IDLE ? SCHED_IDLE : SCHED_OTHER, param);
            if (rc != 0) {
                throw new IllegalStateException("sched_setscheduler(" + tid + ", " + policy + ") failed: errno "
                        + Errno.of(state));
            }
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("sched_setscheduler(" + tid + "): " + t, t);
        }
    }

    /** The calling thread's Linux thread id (what {@link #set} takes for another thread to move it). */
    public static long currentTid() {
        try {
            return Long.parseLong(Files.readSymbolicLink(Path.of("/proc/thread-self")).getFileName().toString());
        } catch (IOException | NumberFormatException e) {
            throw new IllegalStateException("cannot read this thread's id from /proc/thread-self: " + e.getMessage(), e);
        }
    }

    /** The class of thread {@code tid} (0: the calling thread). */
    public static Policy get(long tid) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = Errno.state(arena);
            int rc = (int) SCHED_GETSCHEDULER.invokeExact(state, (int) tid);
            if (rc < 0) throw new IllegalStateException("sched_getscheduler(" + tid + ") failed: errno " + Errno.of(state));
            return rc == SCHED_IDLE ? Policy.IDLE : Policy.NORMAL;
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("sched_getscheduler(" + tid + "): " + t, t);
        }
    }

    /** The ids of the process's threads whose name ({@code /proc/PID/task/TID/comm}) is {@code name}; empty if it exited. */
    public static List<Long> threadsNamed(long pid, String name) {
        List<Long> out = new ArrayList<>();
        try (DirectoryStream<Path> tasks = Files.newDirectoryStream(Path.of("/proc/" + pid + "/task"))) {
            for (Path task : tasks) {
                try {
                    if (Files.readString(task.resolve("comm")).strip().equals(name)) out.add(Long.parseLong(task.getFileName().toString()));
                } catch (IOException gone) {
                    // the thread ended while we looked
                }
            }
        } catch (IOException e) {
            return List.of();
        }
        return out;
    }
}
