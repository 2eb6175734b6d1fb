package dev.thaw.cli;

import java.io.PrintStream;
import java.util.Optional;

/** A one-line status on a terminal ({@code \r}-updated); a line per second otherwise. */
final class Progress {
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
