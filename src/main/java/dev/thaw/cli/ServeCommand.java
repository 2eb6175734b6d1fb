package dev.thaw.cli;

import dev.thaw.host.HostDoctor;
import dev.thaw.util.ThawPaths;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "serve", mixinStandardHelpOptions = true,
        description = {"Run restores for thaw restore --server in this warm JVM, until Ctrl-C or SIGTERM.",
                "A fresh thaw restore spends most of a second starting its JVM, loading classes and running cold code before",
                "its QEMU starts; a restore sent here (thaw restore --server SOCKET IMAGE ..., or THAW_SERVER=SOCKET) skips that:",
                "the client only sends its arguments, working directory and start time, and prints the restore's output as it",
                "comes. The restore runs as thaw restore would (same options, same output, same exit code); the client's Ctrl-C",
                "ends it (its QEMU killed). Stopping the server ends every restore it runs. Only restore is served; the socket",
                "is owner-only, in an owner-only directory, and the server's own environment (AWS_*, THAW_*) applies."})
final class ServeCommand implements Callable<Integer> {
    @Option(names = "--socket", paramLabel = "PATH",
            description = "The unix socket to listen on (default: CACHE/serve/thaw.sock, CACHE as thaw doctor says).")
    Path socket;

    @Option(names = "--max-restores", defaultValue = "16", paramLabel = "N",
            description = "Restores at once; more are refused (default ${DEFAULT-VALUE}).")
    int maxRestores;

    @Option(names = "--warm", paramLabel = "IMAGE",
            description = "Before listening, restore IMAGE (--exit) as ws and in its default mode, so that the first client's restore"
                    + " does not run the restore's code cold (a first ws restore of the demo image took 0.7-0.8 s here, later ones 0.2 s).")
    Path warm;

    /** What a warm-up restore did. */
    record WarmUp(int exit, double seconds, String said) {}

    /**
     * Restores {@code image} here in each way a client's restore of it may go, ws and its default (mapped when it has its RAM
     * file), with their output kept out of sight: the restores' code runs, and is compiled, before a client's. A mapped restore
     * alone left a first ws restore at 0.54-0.65 s against 0.71-0.83 s cold, 0.2 s warm (docs/benchmarks.md, twenty-fourth session).
     */
    static List<WarmUp> warmUp(Path image) {
        return List.of(warmUp(image, "ws"), warmUp(image, "auto"));
    }

    private static WarmUp warmUp(Path image, String mode) {
        java.io.ByteArrayOutputStream sink = new java.io.ByteArrayOutputStream();
        java.io.PrintStream quiet = new java.io.PrintStream(sink, true, java.nio.charset.StandardCharsets.UTF_8);
        Invocation invocation = new Invocation(quiet, quiet, Path.of("").toAbsolutePath(), java.util.Optional.empty(), false);
        long start = System.nanoTime();
        int exit = RestoreServer.runRestore(new String[] {"restore", image.toAbsolutePath().toString(), "--mode", mode, "--exit",
                "--name", "thaw-serve-warm-up", "--no-resume"}, invocation);
        List<String> lines = sink.toString(java.nio.charset.StandardCharsets.UTF_8).lines().filter(l -> !l.isBlank()).toList();
        // The restore's summary ("... guest running after ..."), else what it said last (its error).
        String said = lines.stream().filter(l -> l.contains("guest running after")).reduce((a, b) -> b)
                .orElse(lines.isEmpty() ? "" : lines.getLast());
        return new WarmUp(exit, (System.nanoTime() - start) / 1e9, said);
    }

    /** The default socket: short enough for a unix socket's 107 bytes under the usual cache roots. */
    static Path defaultSocket() {
        return ThawPaths.cacheDir().resolve("serve").resolve("thaw.sock");
    }

    @Override
    public Integer call() throws Exception {
        Path path = (socket == null ? defaultSocket() : socket).toAbsolutePath();
        // What every restore checks first, once here: a host that cannot restore fails now, not at the first request.
        HostDoctor.ensureCanRestore(System.err);
        Preload.start("restore").ifPresent(t -> {
            try {
                t.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        if (warm != null) {
            // Best effort: a server that could not warm up (an image without a working set has no ws restore) still serves.
            for (WarmUp w : warmUp(warm)) {
                System.out.printf("thaw serve: warm-up restore of %s %s in %.2f s: %s%n", warm, w.exit() == 0 ? "done"
                        : "failed (exit " + w.exit() + ")", w.seconds(), w.said());
            }
        }
        RestoreServer server = RestoreServer.start(path, maxRestores, System.out);
        CountDownLatch stopped = new CountDownLatch(1);
        // Beside QemuVm's own hook (hooks run together): each request ends and tells its client, the socket goes.
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            server.close();
            stopped.countDown();
        }, "serve-shutdown"));
        System.out.println("thaw serve: listening on " + path + " (restore only, at most " + maxRestores + " at once)");
        System.out.println("  thaw restore --server " + path + " IMAGE [OPTIONS]   or   export " + ServeClient.ENVIRONMENT + "=" + path);
        System.out.flush();
        stopped.await();
        return 0;
    }
}
