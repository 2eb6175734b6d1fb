package dev.thaw.util;

/** Hears a long operation: a transient status, each replacing the last, and lines to keep. */
public interface StatusListener {
    void status(String status);

    void line(String line);
}
