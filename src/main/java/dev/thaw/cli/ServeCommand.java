package dev.thaw.cli;

import dev.thaw.host.HostDoctor;
import dev.thaw.util.ThawPaths;
import java.nio.file.Path;
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
