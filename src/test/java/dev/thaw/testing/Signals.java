package dev.thaw.testing;

import dev.thaw.util.ExternalCommand;
import java.time.Duration;
import java.util.List;

/** Sends signals the JDK cannot send (SIGSTOP, SIGCONT) to a process. */
public final class Signals {
    private Signals() {}

    public static void send(String signal, long pid) {
        ExternalCommand.check(List.of("kill", "-" + signal, Long.toString(pid)), Duration.ofSeconds(5));
    }
}
