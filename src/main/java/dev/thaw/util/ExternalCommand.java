package dev.thaw.util;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/** Runs a short-lived external program with a timeout, draining both of its output streams. */
public final class ExternalCommand {
    private ExternalCommand() {}

    /** What a finished program left behind. {@code timedOut} means it was killed at the deadline. */
    public record Result(List<String> command, int exitCode, String stdout, String stderr, boolean timedOut) {
        public boolean succeeded() {
            return !timedOut && exitCode == 0;
        }

        /** A one-paragraph description for error messages. */
        public String describe() {
            String tail = (stderr.isBlank() ? stdout : stderr).strip();
            if (tail.length() > 2000) {
                tail = "..." + tail.substring(tail.length() - 2000);
            }
            return String.join(" ", command) + (timedOut ? " timed out" : " exited with status " + exitCode)
                    + (tail.isEmpty() ? "" : ": " + tail);
        }
    }

    public static Result run(List<String> command, Duration timeout) {
        return run(command, timeout, null, Map.of());
    }

    public static Result run(List<String> command, Duration timeout, Path workDir, Map<String, String> environment) {
        ProcessBuilder builder = new ProcessBuilder(command).redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile()));
        if (workDir != null) {
            builder.directory(workDir.toFile());
        }
        builder.environment().putAll(environment);
        Process process;
        try {
            process = builder.start();
        } catch (IOException e) {
            return new Result(command, 127, "", "cannot start " + command.getFirst() + ": " + e.getMessage(), false);
        }
        Drain out = new Drain(process.getInputStream());
        Drain err = new Drain(process.getErrorStream());
        Thread.ofVirtual().start(out);
        Thread.ofVirtual().start(err);
        boolean finished;
        try {
            finished = process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            process.destroyForcibly();
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while running " + command.getFirst(), e);
        }
        if (!finished) {
            process.destroyForcibly();
            try {
                process.waitFor(5, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        return new Result(command, finished ? process.exitValue() : -1, out.text(), err.text(), !finished);
    }

    private static final class Drain implements Runnable {
        private final InputStream in;
        private final ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        private volatile boolean done;

        Drain(InputStream in) {
            this.in = in;
        }

        @Override
        public void run() {
            try (in) {
                byte[] buffer = new byte[8192];
                for (int n; (n = in.read(buffer)) > 0; ) {
                    synchronized (bytes) {
                        bytes.write(buffer, 0, n);
                    }
                }
            } catch (IOException e) {
                // The process was killed; keep what was read.
            } finally {
                done = true;
            }
        }

        String text() {
            // Give the drain a moment to reach the end of the pipe after the process exited.
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(2);
            while (!done && System.nanoTime() < deadline) {
                Thread.onSpinWait();
                try {
                    Thread.sleep(1);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    break;
                }
            }
            synchronized (bytes) {
                return bytes.toString(StandardCharsets.UTF_8);
            }
        }
    }

    /** Like {@link #run} but throws when the program fails. */
    public static String check(List<String> command, Duration timeout) {
        Result result = run(command, timeout);
        if (!result.succeeded()) {
            throw new UncheckedIOException(new IOException(result.describe()));
        }
        return result.stdout();
    }
}
