package dev.thaw.cli;

import java.io.PrintStream;
import java.nio.file.Path;
import java.time.Instant;
import java.util.Optional;

/**
 * Who asked for a command, as the command sees it: where its output goes, where its relative paths start, when the user's
 * command started and whether a terminal shows its output. {@link #local()} is this process's own; {@code thaw serve} makes one
 * per request from what its client sent (its output framed back to the client, its working directory and start).
 *
 * @param commandStart when the user's {@code thaw} process started (the restore's {@code commandRunningSeconds} counts from it)
 */
record Invocation(PrintStream out, PrintStream err, Path workingDirectory, Optional<Instant> commandStart, boolean terminal) {
    Invocation {
        if (!workingDirectory.isAbsolute()) {
            throw new IllegalArgumentException("working directory: expected an absolute path, actual " + workingDirectory);
        }
    }

    /** This process: its standard streams as they are now (tests replace them), its working directory and start. */
    static Invocation local() {
        return new Invocation(System.out, System.err, Path.of("").toAbsolutePath(), dev.thaw.util.ProcessStart.self(),
                consoleIsTerminal());
    }

    /** Whether this process's standard input and output are a terminal. */
    static boolean consoleIsTerminal() {
        return Optional.ofNullable(System.console()).map(java.io.Console::isTerminal).orElse(false);
    }

    /** A path as the user typed it, against the user's working directory. */
    Path resolve(String path) {
        return workingDirectory.resolve(path);
    }

    /** An image argument: an object-storage URL as it is, a path against the user's working directory. */
    String resolveImage(String image) {
        return dev.thaw.objectstore.S3Location.isS3(image) ? image : resolve(image).toString();
    }
}
