package dev.thaw.cli;

import dev.thaw.util.StatusListener;
import java.io.PrintStream;

/**
 * A one-line status on a terminal ({@code \r}-updated); otherwise a line when the status changes: a new kind of status at once
 * (a script waiting for "guest running" must not miss it), the same one with new numbers at most once a second.
 */
final class Progress implements StatusListener {
    private final PrintStream out;
    private final boolean terminal;
    private long lastPrinted;
    private String lastStatus;

    Progress(PrintStream out) {
        this(out, Invocation.consoleIsTerminal() && out == System.out);
    }

    /** @param terminal whether a terminal shows {@code out} (a served command's is its client's) */
    Progress(PrintStream out, boolean terminal) {
        this.out = out;
        this.terminal = terminal;
    }

    void update(String status) {
        if (terminal) {
            out.print("\r\033[K  " + status);
            out.flush();
        } else if (!status.equals(lastStatus)
                && (System.nanoTime() - lastPrinted > 1_000_000_000L || !kind(status).equals(kind(lastStatus)))) {
            out.println("  " + status);
            lastPrinted = System.nanoTime();
            lastStatus = status;
        }
    }

    /** What a status is about: its text before the first digit ("ws restore: serving pages: " of a count's updates). */
    static String kind(String status) {
        if (status == null) return "";
        for (int i = 0; i < status.length(); i++) {
            if (Character.isDigit(status.charAt(i))) return status.substring(0, i);
        }
        return status;
    }

    void done(String line) {
        if (terminal) out.print("\r\033[K");
        out.println(line);
        lastPrinted = 0;
        lastStatus = null;
    }

    @Override
    public void status(String status) {
        update(status);
    }

    @Override
    public void line(String line) {
        done(line);
    }
}
