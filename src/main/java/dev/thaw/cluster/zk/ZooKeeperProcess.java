package dev.thaw.cluster.zk;

import dev.thaw.util.FileTrees;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * A standalone ZooKeeper server in a child JVM ({@code org.apache.zookeeper.server.ZooKeeperServerMain}, from the jar Thaw was
 * built with), its configuration and data in a new temporary directory, listening on 127.0.0.1 (or the address given: another
 * host's cohorts reach it there, such as another network namespace across a veth). {@link #start} returns once the
 * server serves (its {@code srvr} command answers with its version); {@link #close()} kills it and removes the directory.
 */
public final class ZooKeeperProcess implements AutoCloseable {
    public static final Duration START_TIMEOUT = Duration.ofSeconds(30);
    /** ZooKeeper's tick; sessions may last 2 to 20 ticks. */
    public static final Duration TICK = Duration.ofMillis(500);

    private final Process process;
    private final Path dir;
    private final int port;
    private final String host;

    private ZooKeeperProcess(Process process, Path dir, String host, int port) {
        this.process = process;
        this.dir = dir;
        this.host = host;
        this.port = port;
    }

    /**
     * Starts a server on {@code port} (0: a free one).
     *
     * @throws ZkException.ServerFailed when it exits or does not answer within {@code timeout}, with its last output
     */
    public static ZooKeeperProcess start(int port, Duration timeout) {
        return start(java.net.InetAddress.getLoopbackAddress(), port, timeout);
    }

    /** Starts a server listening on {@code bind}'s {@code port} (0: a free one). */
    public static ZooKeeperProcess start(java.net.InetAddress bind, int port, Duration timeout) {
        String host = bind.getHostAddress();
        Path dir;
        try {
            dir = Files.createTempDirectory(Path.of("/tmp"), "thaw-zookeeper-");
        } catch (IOException e) {
            throw new ZkException.ServerFailed("cannot create its data directory: " + e, e);
        }
        int chosen = port == 0 ? freePort(bind) : port;
        // Another server on the port would answer the readiness check for this one: refuse at once.
        try (ServerSocket probe = new ServerSocket(chosen, 1, bind)) {
            probe.setReuseAddress(true);
        } catch (IOException e) {
            FileTrees.deleteQuietly(dir);
            throw new ZkException.ServerFailed("expected port " + chosen + " free on " + host + ", actual in use (" + e.getMessage() + ")", e);
        }
        Path log = dir.resolve("server.log");
        Process p;
        try {
            Files.createDirectories(dir.resolve("data"));
            Files.writeString(dir.resolve("zoo.cfg"), String.join("\n",
                    "tickTime=" + TICK.toMillis(),
                    "dataDir=" + dir.resolve("data"),
                    "clientPort=" + chosen,
                    "clientPortAddress=" + host,
                    "admin.enableServer=false",
                    "4lw.commands.whitelist=ruok,srvr",
                    "") );
            String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
            List<String> cmd = new ArrayList<>(List.of(java, "-Xmx128m", "-XX:+UseSerialGC", "-cp", System.getProperty("java.class.path"),
                    "-Dzookeeper.jmx.log4j.disable=true", "-Dlogback.configurationFile=" + writeLogConfig(dir),
                    "org.apache.zookeeper.server.ZooKeeperServerMain", dir.resolve("zoo.cfg").toString()));
            p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        } catch (IOException e) {
            FileTrees.deleteQuietly(dir);
            throw new ZkException.ServerFailed("cannot start its JVM: " + e, e);
        }
        ZooKeeperProcess zk = new ZooKeeperProcess(p, dir, host, chosen);
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            if (!p.isAlive()) {
                String tail = zk.logTail();
                zk.close();
                throw new ZkException.ServerFailed("expected ZooKeeper serving on " + host + ":" + chosen + ", actual its JVM exited with status "
                        + p.exitValue() + "; its last output: " + tail, null);
            }
            // ruok says imok before the server serves; srvr says so only once it does.
            String srvr = fourLetters(host, chosen, "srvr", Duration.ofMillis(500));
            if (srvr != null && srvr.startsWith("Zookeeper version:")) return zk;
            if (System.nanoTime() > deadline) {
                String tail = zk.logTail();
                zk.close();
                throw new ZkException.ServerFailed("expected ZooKeeper serving on " + host + ":" + chosen + " within " + timeout.toMillis()
                        + " ms, actual no answer; its last output: " + tail, null);
            }
            try {
                Thread.sleep(100);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                zk.close();
                throw new ZkException.ServerFailed("interrupted while it started", e);
            }
        }
    }

    /** {@code HOST:PORT} (127.0.0.1 unless another address was given), the clients' connect string. */
    public String connectString() {
        return host + ":" + port;
    }

    public int port() {
        return port;
    }

    public long pid() {
        return process.pid();
    }

    public boolean isAlive() {
        return process.isAlive();
    }

    /** Kills the server at once (SIGKILL), as a crash would; {@link #close()} still removes its directory. */
    public void kill() {
        process.destroyForcibly();
        try {
            process.waitFor(java.util.concurrent.TimeUnit.SECONDS.toMillis(10), java.util.concurrent.TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** Blocks until the server's JVM exits. */
    public int waitFor() throws InterruptedException {
        return process.waitFor();
    }

    @Override
    public void close() {
        if (process.isAlive()) {
            process.destroy();
            try {
                if (!process.waitFor(5, java.util.concurrent.TimeUnit.SECONDS)) kill();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                kill();
            }
        }
        FileTrees.deleteQuietly(dir);
    }

    /** A four-letter command's answer, or null when the server does not answer within {@code timeout}. */
    static String fourLetters(String host, int port, String command, Duration timeout) {
        try (Socket s = new Socket()) {
            s.connect(new InetSocketAddress(host, port), (int) timeout.toMillis());
            s.setSoTimeout((int) timeout.toMillis());
            OutputStream out = s.getOutputStream();
            out.write(command.getBytes(StandardCharsets.US_ASCII));
            out.flush();
            InputStream in = s.getInputStream();
            return new String(in.readAllBytes(), StandardCharsets.US_ASCII).strip();
        } catch (IOException e) {
            return null;
        }
    }

    private String logTail() {
        try {
            List<String> lines = Files.readAllLines(dir.resolve("server.log"));
            return String.join(" | ", lines.subList(Math.max(0, lines.size() - 5), lines.size()));
        } catch (IOException e) {
            return "(no output: " + e.getMessage() + ")";
        }
    }

    private static String writeLogConfig(Path dir) throws IOException {
        Path f = dir.resolve("logback.xml");
        Files.writeString(f, """
                <configuration>
                  <appender name="OUT" class="ch.qos.logback.core.ConsoleAppender">
                    <encoder><pattern>%d{HH:mm:ss.SSS} %-5level %logger{20} %msg%n</pattern></encoder>
                  </appender>
                  <root level="WARN"><appender-ref ref="OUT"/></root>
                  <logger name="org.apache.zookeeper.server.ZooKeeperServerMain" level="INFO"/>
                </configuration>
                """);
        return f.toString();
    }

    private static int freePort(java.net.InetAddress bind) {
        try (ServerSocket s = new ServerSocket(0, 1, bind)) {
            return s.getLocalPort();
        } catch (IOException e) {
            throw new ZkException.ServerFailed("cannot find a free port: " + e, e);
        }
    }
}
