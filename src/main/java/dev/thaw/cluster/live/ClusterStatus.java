package dev.thaw.cluster.live;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.thaw.cluster.net.PairRecord;
import dev.thaw.cluster.net.PortStats;
import dev.thaw.guest.TcpStreamLine;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.time.Instant;
import java.util.List;

/**
 * A live cluster at one moment: its members and the switch's traffic record. {@code thaw cluster up}
 * rewrites it every second into {@code DIR/status.json} (a new file renamed over the old one, so a
 * reader never sees half of it), and {@code thaw cluster status --dir DIR} reads it: the running
 * switch needs no control channel, and a reader cannot disturb it.
 *
 * @param at    when it was taken
 * @param upPid the process that runs the cluster and writes this file
 */
public record ClusterStatus(int version, Instant at, long upPid, String dir, List<Member> members, List<PairRecord> traffic) {
    public static final int VERSION = 1;
    public static final String FILE = "status.json";
    /** Five rewrite intervals: a file older than that was left by a writer that is stopped or gone. */
    public static final Duration STALE_AFTER = Duration.ofSeconds(5);
    private static final long MAX_FILE_BYTES = 16L << 20;
    private static final ObjectMapper JSON = new ObjectMapper().findAndRegisterModules()
            .disable(SerializationFeature.WRITE_DATES_AS_TIMESTAMPS);

    /**
     * @param qemu      "running", or how it ended
     * @param port      its port on the switch
     * @param lastTick  tcpstream's latest progress line; null before the first
     * @param done      tcpstream's end-of-stream line; null while it streams
     */
    public record Member(String name, String address, String mac, String role, String qmpSocket, long qemuPid, boolean alive,
                         String qemu, PortStats port, TcpStreamLine.Tick lastTick, TcpStreamLine.Done done) {}

    public ClusterStatus {
        members = List.copyOf(members);
        traffic = List.copyOf(traffic);
    }

    /** Writes {@code dir/status.json} atomically. */
    public void write(Path directory) throws IOException {
        Path file = directory.resolve(FILE);
        Path temp = directory.resolve(FILE + ".tmp");
        JSON.writeValue(temp.toFile(), this);
        Files.move(temp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    }

    /** Reads {@code dir/status.json}; fails naming the file when there is none or it is not a status of this version. */
    public static ClusterStatus read(Path directory) throws IOException {
        Path file = directory.resolve(FILE);
        long size;
        try {
            size = Files.size(file);
        } catch (NoSuchFileException e) {
            throw new IOException("cluster status " + file + ": expected the file a running 'thaw cluster up --dir " + directory
                    + "' rewrites every second, actual none (no cluster runs there)", e);
        }
        if (size > MAX_FILE_BYTES) {
            throw new IOException("cluster status " + file + ": expected at most " + MAX_FILE_BYTES + " bytes, actual " + size);
        }
        ClusterStatus status = JSON.readValue(file.toFile(), ClusterStatus.class);
        if (status.version() != VERSION) {
            throw new IOException("cluster status " + file + ": expected version " + VERSION + ", actual " + status.version());
        }
        return status;
    }

    /** Whether the process that writes it still runs and wrote it lately. */
    public boolean isLive(Instant now) {
        return ProcessHandle.of(upPid).map(ProcessHandle::isAlive).orElse(false) && Duration.between(at, now).compareTo(STALE_AFTER) <= 0;
    }
}
