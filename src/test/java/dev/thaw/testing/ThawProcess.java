package dev.thaw.testing;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;

/**
 * A Thaw command in a JVM of its own ({@code dev.thaw.cli.ThawCli} on the tests' class path), its output lines kept as they come
 * (stdout and stderr apart). {@link #close()} kills it if it still runs.
 */
public final class ThawProcess implements AutoCloseable {
    private final Process process;
    private final List<String> out = new ArrayList<>();
    private final List<String> err = new ArrayList<>();
    private final List<Thread> pumps = new ArrayList<>();

    private ThawProcess(Process process, String label) {
        this.process = process;
        pump(process.inputReader(StandardCharsets.UTF_8), out, label);
        pump(new BufferedReader(new InputStreamReader(process.getErrorStream(), StandardCharsets.UTF_8)), err, label + " (stderr)");
    }

    public static ThawProcess start(String label, List<String> args) throws IOException {
        return startUnder(List.of(), label, args);
    }

    /** As {@link #start}, its command line after {@code prefix} (for example {@code ip netns exec NS}, which execs it: same pid). */
    public static ThawProcess startUnder(List<String> prefix, String label, List<String> args) throws IOException {
        List<String> cmd = new ArrayList<>(prefix);
        cmd.addAll(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=ALL-UNNAMED", "-XX:+UseSerialGC", "-cp", System.getProperty("java.class.path")));
        String home = System.getProperty("thaw.home");
        if (home != null) cmd.add("-Dthaw.home=" + home);
        cmd.add("dev.thaw.cli.ThawCli");
        cmd.addAll(args);
        return new ThawProcess(new ProcessBuilder(cmd).start(), label);
    }

    private void pump(BufferedReader reader, List<String> into, String label) {
        pumps.add(Thread.ofPlatform().daemon().name("thaw-process-" + label).start(() -> {
            try (reader) {
                for (String line; (line = reader.readLine()) != null; ) {
                    synchronized (this) {
                        into.add(line);
                        notifyAll();
                    }
                    if (!line.contains("console: ")) System.err.println("[" + label + "] " + line);
                }
            } catch (IOException ignored) {
                // the process ended
            }
        }));
    }

    /** The first stdout line that matches, waiting at most {@code timeout}; empty when none came (or the process ended first). */
    public synchronized Optional<String> await(Predicate<String> wanted, Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        int seen = 0;
        while (true) {
            for (; seen < out.size(); seen++) {
                if (wanted.test(out.get(seen))) return Optional.of(out.get(seen));
            }
            long left = deadline - System.nanoTime();
            if (left <= 0 || (!process.isAlive() && seen == out.size())) return Optional.empty();
            wait(Math.max(1, Math.min(TimeUnit.NANOSECONDS.toMillis(left), 200)));
        }
    }

    /** Every stdout line so far. */
    public synchronized List<String> lines() {
        return List.copyOf(out);
    }

    public synchronized String stderr() {
        return String.join("\n", err);
    }

    /** The exit status, or empty if it still runs after {@code timeout}. */
    public Optional<Integer> awaitExit(Duration timeout) throws InterruptedException {
        if (!process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) return Optional.empty();
        awaitOutput();
        return Optional.of(process.exitValue());
    }

    /** Once the process exited: waits (at most 5 s) until its last output lines are read, so that {@link #lines()} has them all. */
    private void awaitOutput() throws InterruptedException {
        for (Thread t : pumps) t.join(Duration.ofSeconds(5));
    }

    /**
     * SIGTERM, as Ctrl-C would, keeping every line it prints on its way out ({@link Process#destroy()} closes its pipes at once,
     * losing what its shutdown hooks print): its exit status, or empty if it still runs after {@code timeout}.
     */
    public Optional<Integer> terminate(Duration timeout) throws InterruptedException {
        process.toHandle().destroy();
        return awaitExit(timeout);
    }

    public long pid() {
        return process.pid();
    }

    @Override
    public void close() {
        if (process.isAlive()) {
            process.destroy();
            try {
                if (!process.waitFor(20, TimeUnit.SECONDS)) process.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
                awaitOutput();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                process.destroyForcibly();
            }
        }
    }
}
