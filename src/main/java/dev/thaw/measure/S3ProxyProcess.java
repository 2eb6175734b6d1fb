package dev.thaw.measure;

import dev.thaw.util.ThawPaths;
import java.io.IOException;
import java.io.PrintStream;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.TimeUnit;

/**
 * {@code ./thaw s3proxy DIR PORT BUCKET} as a process of the bench's own (s3proxy with its filesystem backend on 127.0.0.1, the
 * tests' server), on a free port; closing it ends the process and its children and deletes DIR.
 */
final class S3ProxyProcess implements AutoCloseable {
    static final String ACCESS_KEY = "thaw-local";
    static final String SECRET_KEY = "thaw-local-secret";
    static final Duration START_TIMEOUT = Duration.ofSeconds(180);

    private final Process process;
    private final Path directory;
    private final int port;

    private S3ProxyProcess(Process process, Path directory, int port) {
        this.process = process;
        this.directory = directory;
        this.port = port;
    }

    static S3ProxyProcess start(Path directory, String bucket, PrintStream log) throws IOException, InterruptedException {
        int port;
        try (ServerSocket probe = new ServerSocket(0)) {
            port = probe.getLocalPort();
        }
        Files.createDirectories(directory);
        Path logFile = directory.resolveSibling(directory.getFileName() + ".log");
        Process p = new ProcessBuilder(ThawPaths.home().resolve("thaw").toString(), "s3proxy", directory.toString(), Integer.toString(port), bucket)
                .redirectErrorStream(true).redirectOutput(logFile.toFile()).start();
        S3ProxyProcess server = new S3ProxyProcess(p, directory, port);
        long deadline = System.nanoTime() + START_TIMEOUT.toNanos();
        while (true) {
            try (Socket s = new Socket()) {
                s.connect(new InetSocketAddress("127.0.0.1", port), 1000);
                break;
            } catch (IOException notYet) {
                if (!p.isAlive() || System.nanoTime() > deadline) {
                    server.close();
                    throw new IOException("s3proxy on port " + port + ": expected it listening within " + START_TIMEOUT.toSeconds()
                            + " s, actual " + (p.isAlive() ? "not yet" : "exited with " + p.exitValue()) + " (its log: " + logFile + ")");
                }
                Thread.sleep(200);
            }
        }
        log.printf("  s3proxy on %s (pid %d), objects in %s%n", server.endpoint(), p.pid(), directory);
        return server;
    }

    URI endpoint() {
        return URI.create("http://127.0.0.1:" + port);
    }

    @Override
    public void close() {
        process.descendants().forEach(ProcessHandle::destroy);
        process.destroy();
        try {
            if (!process.waitFor(10, TimeUnit.SECONDS)) {
                process.descendants().forEach(ProcessHandle::destroyForcibly);
                process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        dev.thaw.util.FileTrees.deleteQuietly(directory);
    }
}
