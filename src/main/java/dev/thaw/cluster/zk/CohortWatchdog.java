package dev.thaw.cluster.zk;

import java.io.IOException;
import java.util.List;

/**
 * Kills a cohort's QEMU once the cohort's process is gone, however it ended. The cohort's shutdown hooks kill it on SIGTERM or
 * Ctrl-C, but SIGKILL runs no hook, and a child outlives its parent: without this, a cohort killed so leaves its member's QEMU
 * behind, paused, its postcopy source gone. The watchdog is a process of its own ({@code sh}), so it outlives the cohort: every
 * 200 ms it checks that the cohort still runs (a zombie does not), and ends by itself once the QEMU is gone. It kills the QEMU
 * (SIGKILL) only if its start time is still the one it saw, so a pid reused meanwhile is left alone.
 */
final class CohortWatchdog {
    private static final String SCRIPT = """
            c=$1; q=$2
            s=$(cut -d' ' -f22 /proc/$q/stat 2>/dev/null) || exit 0
            while [ -e /proc/$c ] && [ "$(cut -d' ' -f3 /proc/$c/stat 2>/dev/null)" != Z ]; do
              [ -e /proc/$q ] || exit 0
              sleep 0.2
            done
            [ "$(cut -d' ' -f22 /proc/$q/stat 2>/dev/null)" = "$s" ] && kill -9 $q
            exit 0
            """;

    private CohortWatchdog() {}

    /** Starts the watchdog of {@code qemuPid} for this process. */
    static Process watch(long qemuPid) throws IOException {
        return new ProcessBuilder(List.of("sh", "-c", SCRIPT, "thaw-cohort-watchdog", Long.toString(ProcessHandle.current().pid()),
                Long.toString(qemuPid))).redirectOutput(ProcessBuilder.Redirect.DISCARD).redirectError(ProcessBuilder.Redirect.DISCARD)
                .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null"))).start();
    }
}
