package dev.thaw.qemu;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.thaw.util.Errno;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * A QMP monitor on a pair of FIFOs in QEMU's run directory ({@code qmp-spare.in}, {@code qmp-spare.out}), whose session outlives
 * the process that negotiated it, so that another Thaw can run out-of-band commands on a QEMU that no longer answers in band.
 *
 * <p>Why: a postcopy QEMU whose source died waits for pages; under TCG its vCPU thread may wait for one while holding the big
 * QEMU lock (interrupt delivery reads the guest's IDT), and then the main thread, which runs every in-band command, blocks
 * too. A new QMP socket connection then gets QEMU's greeting but never the answer to {@code qmp_capabilities}, so it can never
 * enable out-of-band execution, and {@code migrate-recover} (out of band) cannot be sent. A pipe chardev is opened by QEMU
 * itself (read-write, so it never sees an end) and its monitor session stays negotiated: Thaw negotiates it once at launch,
 * and any later process writes {@code exec-oob} commands into it. Out-of-band works on it because fd chardevs support the
 * monitor I/O thread.
 */
public final class SpareMonitor {
    static final String NAME = "qmp-spare";
    private static final ObjectMapper JSON = new ObjectMapper();

    private SpareMonitor() {}

    /** The FIFOs to make before QEMU starts, and QEMU's arguments for the monitor on them. */
    static List<String> prepare(Path runDir) throws IOException {
        for (String end : List.of(".in", ".out")) mkfifo(runDir.resolve(NAME + end));
        return List.of("-chardev", "pipe,id=" + NAME + ",path=" + runDir.resolve(NAME), "-mon", "chardev=" + NAME + ",mode=control");
    }

    private static final MethodHandle MKFIFO;

    static {
        Linker linker = Linker.nativeLinker();
        MKFIFO = linker.downcallHandle(linker.defaultLookup().find("mkfifo").orElseThrow(),
                FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_INT), Errno.CAPTURE);
    }

    /**
     * mkfifo(3), owner-only (0600, the umask aside), through libc: the mkfifo program cost a process start each, two per
     * restore, 0.1-0.3 s of a cold restore's time to running here.
     */
    static void mkfifo(Path fifo) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = Errno.state(arena);
            int rc = (int) MKFIFO.invokeExact(state, arena.allocateFrom(fifo.toString()), 0600);
            if (rc != 0) {
                throw new IOException("cannot make the FIFO " + fifo + ": mkfifo failed with errno " + Errno.of(state));
            }
        } catch (IOException | RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IOException("cannot make the FIFO " + fifo + ": " + t, t);
        }
    }

    /** Whether the run directory has a spare monitor (QEMUs of lazy and ws restores have one). */
    public static boolean present(Path runDir) {
        return Files.exists(runDir.resolve(NAME + ".in")) && Files.exists(runDir.resolve(NAME + ".out"));
    }

    /** Enables out-of-band execution on the spare monitor; once, right after launch (its main thread answers then). */
    static void negotiate(Path runDir, String peer, Duration timeout) {
        ObjectNode args = JSON.createObjectNode();
        args.putArray("enable").add("oob");
        call(runDir, peer, "execute", "qmp_capabilities", args, timeout);
    }

    /**
     * Runs {@code command} out of band on the spare monitor of the QEMU in {@code runDir}: from any process, even while QEMU's
     * main thread is blocked. The answer is matched by a fresh id; everything else waiting in the FIFO (events, answers to
     * earlier processes) is skipped.
     *
     * @throws QmpException.CommandFailed with QEMU's error; {@link QmpException.Timeout} without an answer
     */
    public static JsonNode executeOob(Path runDir, String peer, String command, JsonNode arguments, Duration timeout) {
        return call(runDir, peer, "exec-oob", command, arguments, timeout);
    }

    private static JsonNode call(Path runDir, String peer, String kind, String command, JsonNode arguments, Duration timeout) {
        String id = "thaw-" + ProcessHandle.current().pid() + "-" + UUID.randomUUID();
        ObjectNode request = JSON.createObjectNode().put(kind, command).put("id", id);
        if (arguments != null) request.set("arguments", arguments);
        LinkedBlockingQueue<Object> answers = new LinkedBlockingQueue<>();
        // Reads block with no timeout of their own: a daemon thread reads, the caller waits with one. Opening either FIFO does
        // not block: QEMU holds both open for reading and writing.
        Thread reader = Thread.ofPlatform().daemon().name("spare-monitor-" + peer).start(() -> {
            try (BufferedReader in = new BufferedReader(new InputStreamReader(Files.newInputStream(runDir.resolve(NAME + ".out")),
                    StandardCharsets.UTF_8))) {
                for (String line; (line = in.readLine()) != null; ) {
                    if (!line.contains(id)) continue;
                    answers.add(JSON.readTree(line));
                    return;
                }
                answers.add(new IOException("the spare monitor's output ended"));
            } catch (IOException | RuntimeException e) {
                answers.add(e);
            }
        });
        try (OutputStream out = Files.newOutputStream(runDir.resolve(NAME + ".in"), java.nio.file.StandardOpenOption.WRITE)) {
            out.write((JSON.writeValueAsString(request) + "\n").getBytes(StandardCharsets.UTF_8)); // one write: atomic in a FIFO
        } catch (IOException e) {
            reader.interrupt();
            throw new QmpException.ConnectionLost(peer, command, "cannot write to the spare monitor " + runDir.resolve(NAME + ".in"), e);
        }
        Object answer;
        try {
            answer = answers.poll(timeout.toNanos(), TimeUnit.NANOSECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new QmpException.ConnectionLost(peer, command, "interrupted", e);
        }
        if (answer == null) throw new QmpException.Timeout(peer, command, timeout);
        if (answer instanceof Exception e) {
            throw new QmpException.ConnectionLost(peer, command, "reading the spare monitor failed: " + e.getMessage(), e);
        }
        JsonNode reply = (JsonNode) answer;
        if (reply.has("error")) {
            throw new QmpException.CommandFailed(peer, command, reply.path("error").path("class").asText(),
                    reply.path("error").path("desc").asText());
        }
        return reply.path("return");
    }
}
