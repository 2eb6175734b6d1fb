package dev.thaw.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** thaw serve without QEMU: what it refuses, what it answers, its socket's life. The restores themselves: SaveRestoreCommandsTest. */
class RestoreServerTest {
    record Run(int exit, String out, String err) {}

    static Run client(Path socket, String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int exit = ServeClient.run(socket, args, new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8));
        return new Run(exit, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    private static PrintStream quiet() {
        return new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8);
    }

    @Test
    void servesRestoreOnlyAndAnswersAsTheCommandWould(@TempDir Path dir) throws Exception {
        Path socket = dir.resolve("run").resolve("thaw.sock");
        ByteArrayOutputStream events = new ByteArrayOutputStream();
        try (RestoreServer server = RestoreServer.start(socket, 2, new PrintStream(events, true, StandardCharsets.UTF_8))) {
            assertThat(Files.getPosixFilePermissions(socket)).isEqualTo(PosixFilePermissions.fromString("rw-------"));
            assertThat(Files.getPosixFilePermissions(socket.getParent())).isEqualTo(PosixFilePermissions.fromString("rwx------"));

            Run help = client(socket, "restore", "--help", "--server", socket.toString());
            assertThat(help.exit()).as(help.err()).isZero();
            assertThat(help.out()).contains("Usage: thaw restore").contains("--server=SOCKET");

            // The image's path is the client's: relative to its working directory, named in the error.
            Run missing = client(socket, "restore", "no-such-image", "--exit");
            assertThat(missing.exit()).isEqualTo(1);
            assertThat(missing.err()).contains("thaw restore: ").contains(Path.of("").toAbsolutePath().resolve("no-such-image").toString());

            Run badOption = client(socket, "restore", "img", "--mode");
            assertThat(badOption.exit()).isEqualTo(2);
            assertThat(badOption.err()).contains("Missing required parameter for option '--mode'");

            Run other = client(socket, "inspect", "img");
            assertThat(other.exit()).isEqualTo(2);
            assertThat(other.err()).contains("thaw serve: expected a restore (thaw serve runs restore only), actual 'inspect'");

            // Not this protocol: told so, and the connection ends.
            try (SocketChannel raw = SocketChannel.open(UnixDomainSocketAddress.of(socket))) {
                raw.write(ByteBuffer.wrap("GET / HTTP/1.1\r\n\r\n".getBytes(StandardCharsets.US_ASCII)));
                ServeWire.FrameReader frames = new ServeWire.FrameReader(raw);
                ServeWire.Frame err = frames.next().orElseThrow();
                assertThat(new String(err.payload(), StandardCharsets.UTF_8)).contains("expected magic 0x54485731");
                assertThat(frames.next().orElseThrow().exitCode()).isEqualTo(2);
                assertThat(frames.next()).isEmpty();
            }

            assertThatThrownBy(() -> RestoreServer.start(socket, 1, quiet())).hasMessageContaining("expected no server listening on " + socket);
            assertThat(server.runningCount()).isZero();
        }
        assertThat(socket).doesNotExist();
        assertThat(events.toString(StandardCharsets.UTF_8)).contains("request 1: restore --help -> exit 0")
                .contains("request 4: refused: inspect").contains("request 5: refused: request at byte 0: expected magic");

        Run noServer = client(socket, "restore", "img");
        assertThat(noServer.exit()).isEqualTo(1);
        assertThat(noServer.err()).contains("thaw restore --server " + socket + ": expected a restore server there");
    }

    @Test
    void aSocketNobodyListensOnIsReplaced(@TempDir Path dir) throws Exception {
        Path socket = dir.resolve("thaw.sock");
        RestoreServer.start(socket, 1, quiet()).close();
        // A server killed without its close leaves its socket file: bind one and drop it.
        try (var left = java.nio.channels.ServerSocketChannel.open(java.net.StandardProtocolFamily.UNIX)) {
            left.bind(UnixDomainSocketAddress.of(socket));
        }
        assertThat(socket).exists();
        try (RestoreServer server = RestoreServer.start(socket, 1, quiet())) {
            assertThat(client(socket, "restore", "--help").out()).contains("Usage: thaw restore");
        }
        assertThatThrownBy(() -> RestoreServer.start(socket, 0, quiet())).hasMessageContaining("--max-restores: expected at least 1, actual 0");
        // A file that is not a socket is never taken for a dead server's: refused, and left as it is.
        Path notes = Files.writeString(dir.resolve("notes.txt"), "mine");
        assertThatThrownBy(() -> RestoreServer.start(notes, 1, quiet()))
                .hasMessageContaining("expected a socket or nothing at " + notes + ", actual a regular file");
        assertThat(notes).hasContent("mine");
        try (var stream = Files.list(dir)) {
            assertThat(stream.map(p -> p.getFileName().toString())).as("no private binding directory left")
                    .noneMatch(n -> n.startsWith(".thaw-serve-"));
        }
    }

    /** {@code ./thaw restore --server} sends a restore through the launcher's Perl client: the same bytes, the same answers. */
    @Test
    void theLaunchersPerlClientIsAnsweredAsTheCLIsOwn(@TempDir Path dir) throws Exception {
        Path socket = dir.resolve("thaw.sock");
        Path cwd = Files.createDirectory(dir.resolve("work"));
        ByteArrayOutputStream events = new ByteArrayOutputStream();
        try (RestoreServer server = RestoreServer.start(socket, 2, new PrintStream(events, true, StandardCharsets.UTF_8))) {
            Run viaCli = client(socket, "restore", "--help", "--server", socket.toString());
            Run perl = perlClient(cwd, java.util.Map.of(), "restore", "--help", "--server", socket.toString());
            assertThat(perl.exit()).as(perl.err()).isZero();
            assertThat(perl.out()).isEqualTo(viaCli.out());

            // Its working directory is the request's; the server named in the environment.
            Run missing = perlClient(cwd, java.util.Map.of("THAW_SERVER", socket.toString()), "restore", "no-such-image", "--exit");
            assertThat(missing.exit()).isEqualTo(1);
            assertThat(missing.err()).contains(cwd.resolve("no-such-image").toString());
            Run badOption = perlClient(cwd, java.util.Map.of(), "restore", "--server=" + socket, "img", "--mode");
            assertThat(badOption.exit()).isEqualTo(2);
            assertThat(badOption.err()).contains("Missing required parameter for option '--mode'");
        }
        // Its start, as the server received it: this process's tick-precise start, a moment before.
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("request 2: .* received (\\d+\\.\\d+) s after its client started")
                .matcher(events.toString(StandardCharsets.UTF_8));
        assertThat(m.find()).as(events.toString(StandardCharsets.UTF_8)).isTrue();
        assertThat(Double.parseDouble(m.group(1))).isBetween(0.0, 10.0);

        Run noServer = perlClient(cwd, java.util.Map.of(), "restore", "img", "--server", socket.toString());
        assertThat(noServer.exit()).isEqualTo(1);
        assertThat(noServer.err()).contains("thaw restore --server " + socket + ": expected a restore server there");
        Run noValue = perlClient(cwd, java.util.Map.of(), "restore", "img", "--server");
        assertThat(noValue.exit()).isEqualTo(2);
        assertThat(noValue.err()).contains("Missing required parameter for option '--server'");
    }

    private static Run perlClient(Path cwd, java.util.Map<String, String> env, String... args) throws Exception {
        Path script = Path.of("src/main/perl/serve-client.pl").toAbsolutePath();
        java.util.List<String> command = new java.util.ArrayList<>(java.util.List.of("perl", script.toString()));
        command.addAll(java.util.List.of(args));
        ProcessBuilder pb = new ProcessBuilder(command).directory(cwd.toFile());
        pb.environment().remove("THAW_SERVER");
        pb.environment().putAll(env);
        Path out = cwd.resolve("out.txt");
        Path err = cwd.resolve("err.txt");
        Process p = pb.redirectOutput(out.toFile()).redirectError(err.toFile()).start();
        assertThat(p.waitFor(30, java.util.concurrent.TimeUnit.SECONDS)).as("the Perl client ended within 30 s").isTrue();
        return new Run(p.exitValue(), Files.readString(out), Files.readString(err));
    }

    /**
     * A client that does not read never holds up the restore writing to it (its progress comes from the engine's threads): output
     * beyond the budget is dropped and counted, and the exit frame still comes, last, once the client reads.
     */
    @Test
    void aClientThatDoesNotReadNeverBlocksTheWriter(@TempDir Path dir) throws Exception {
        Path socket = dir.resolve("pair.sock");
        try (var listener = java.nio.channels.ServerSocketChannel.open(java.net.StandardProtocolFamily.UNIX)) {
            listener.bind(UnixDomainSocketAddress.of(socket));
            try (SocketChannel client = SocketChannel.open(UnixDomainSocketAddress.of(socket)); SocketChannel server = listener.accept()) {
                RestoreServer.Output output = new RestoreServer.Output(server, "test-writer");
                PrintStream out = new PrintStream(output.stream(ServeWire.Kind.OUT), true, StandardCharsets.UTF_8);
                byte[] line = new byte[64 * 1024];
                java.util.Arrays.fill(line, (byte) 'x');
                long start = System.nanoTime();
                for (int i = 0; i < 128; i++) out.write(line); // 8 MiB: twice the budget, far beyond the socket's buffers
                assertThat(System.nanoTime() - start).as("no write waited for the client").isLessThan(5_000_000_000L);
                var finished = java.util.concurrent.CompletableFuture.runAsync(() -> output.finish(7));
                ServeWire.FrameReader frames = new ServeWire.FrameReader(client);
                long outBytes = 0;
                java.util.List<String> dropped = new java.util.ArrayList<>();
                int exit = -1;
                for (var f = frames.next(); f.isPresent(); f = frames.next()) {
                    switch (f.get().kind()) {
                        case OUT -> outBytes += f.get().payload().length;
                        case ERR -> dropped.add(new String(f.get().payload(), StandardCharsets.UTF_8));
                        case EXIT -> exit = f.get().exitCode();
                        default -> { }
                    }
                    if (exit >= 0) break;
                }
                finished.get(30, java.util.concurrent.TimeUnit.SECONDS);
                assertThat(exit).isEqualTo(7);
                // The budget, plus what the writer had passed to the socket's buffers before the client read.
                assertThat(outBytes).isGreaterThanOrEqualTo(RestoreServer.OUTPUT_BUDGET_BYTES / 2).isLessThan(128L * line.length);
                // One note per stretch of dropped output (the writer freed room in between).
                assertThat(dropped).isNotEmpty().allMatch(n -> n.matches("\\[thaw serve: \\d+ bytes of output dropped: the client did not read them\\]\n"));
                long droppedBytes = dropped.stream().mapToLong(n -> Long.parseLong(n.replaceAll("\\D", ""))).sum();
                assertThat(outBytes + droppedBytes).as("every byte delivered or counted, frame headers included in the count")
                        .isGreaterThanOrEqualTo(128L * line.length);
            }
        }
    }

    /** A client that connects and says nothing is dropped after the request timeout; the server goes on. */
    @Test
    void aSilentClientIsDropped(@TempDir Path dir) throws Exception {
        Path socket = dir.resolve("thaw.sock");
        try (RestoreServer server = RestoreServer.start(socket, 1, quiet());
             SocketChannel silent = SocketChannel.open(UnixDomainSocketAddress.of(socket))) {
            ServeWire.FrameReader frames = new ServeWire.FrameReader(silent);
            Optional<ServeWire.Frame> err = frames.next();
            assertThat(err).isPresent();
            assertThat(new String(err.get().payload(), StandardCharsets.UTF_8)).contains("expected a whole request within 10 s, actual none");
            assertThat(client(socket, "restore", "--help").exit()).isZero();
        }
    }
}
