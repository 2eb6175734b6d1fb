package dev.thaw.cluster.checkpoint;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Instant;
import java.util.Optional;

/**
 * How {@code thaw cluster save} asks the {@code thaw cluster up} that owns a cluster to save it: the switch and the members belong
 * to that process, so the request is a file in the cluster's directory ({@value #FILE}, owner-only like the directory: whoever may
 * write there may connect to the switch anyway), which {@code up} takes (reads and removes) within 200 ms, and the answer another, named by the asker's pid
 * ({@link Answer#file}). Both are written to a temporary file and renamed, so neither side reads half of one.
 *
 * @param out              where the checkpoint goes (absolute)
 * @param requesterPid     the {@code thaw cluster save} waiting for the answer
 * @param probeLiveSeconds 0: no working-set estimate; else every member's dirty-bit probe first ({@link ClusterSave#probe}),
 *                         each stopped after this many seconds unless QEMU converged (absent in an older request: 0)
 * @param keepRunning      the members run on after the save and the switch forwards again (absent in an older request: false)
 */
public record SaveRequest(int version, String out, long requesterPid, Instant at, int probeLiveSeconds, boolean keepRunning) {
    public static final int VERSION = 1;
    public static final String FILE = "save-request.json";
    private static final ObjectMapper JSON = new ObjectMapper().findAndRegisterModules();

    public SaveRequest {
        if (version != VERSION) throw new IllegalArgumentException("save request: expected version " + VERSION + ", actual " + version);
        if (out == null || !Path.of(out).isAbsolute()) throw new IllegalArgumentException("save request: expected an absolute path, actual " + out);
        if (probeLiveSeconds < 0) {
            throw new IllegalArgumentException("save request: expected a probe's live limit >= 0 s (0: no probe), actual " + probeLiveSeconds);
        }
    }

    public static SaveRequest of(Path out) {
        return of(out, 0, false);
    }

    /**
     * @param probeLiveSeconds 0: no estimate; else each member's dirty-bit probe's live limit
     * @param keepRunning      the cluster goes on after the save
     */
    public static SaveRequest of(Path out, int probeLiveSeconds, boolean keepRunning) {
        return new SaveRequest(VERSION, out.toAbsolutePath().normalize().toString(), ProcessHandle.current().pid(), Instant.now(), probeLiveSeconds,
                keepRunning);
    }

    public void write(Path clusterDir) throws IOException {
        writeAtomically(clusterDir.resolve(FILE), this);
    }

    /** The request waiting in {@code clusterDir}, removed as it is taken. A request that does not parse is removed and refused. */
    public static Optional<SaveRequest> take(Path clusterDir) throws IOException {
        return takeFile(clusterDir.resolve(FILE), SaveRequest.class);
    }

    /**
     * What became of a request.
     *
     * @param saved   whether the checkpoint was committed at {@code out}
     * @param message the save's summary, or why it failed
     */
    public record Answer(int version, String out, boolean saved, String message, long stopSkewNanos, int frames, long durationNanos) {
        /** The answer to the request of process {@code requesterPid}: one file per asker, so that none reads another's. */
        public static Path file(Path clusterDir, long requesterPid) {
            return clusterDir.resolve("save-answer-" + requesterPid + ".json");
        }

        public void write(Path clusterDir, long requesterPid) throws IOException {
            writeAtomically(file(clusterDir, requesterPid), this);
        }

        /** The answer in {@code clusterDir} to {@code requesterPid}'s request, removed as it is taken. */
        public static Optional<Answer> take(Path clusterDir, long requesterPid) throws IOException {
            return takeFile(file(clusterDir, requesterPid), Answer.class);
        }
    }

    /** The file's value, the file removed as it is taken; one that does not parse is removed and refused. */
    private static <T> Optional<T> takeFile(Path file, Class<T> type) throws IOException {
        if (!Files.isRegularFile(file)) return Optional.empty();
        try {
            return Optional.of(JSON.readValue(file.toFile(), type));
        } catch (IOException e) {
            throw new IOException(file + ": expected a file as 'thaw cluster save' and 'up' write it, actual: " + e.getMessage(), e);
        } finally {
            Files.deleteIfExists(file);
        }
    }

    private static void writeAtomically(Path file, Object value) throws IOException {
        Path temp = file.resolveSibling(file.getFileName() + ".tmp-" + ProcessHandle.current().pid());
        JSON.writeValue(temp.toFile(), value);
        Files.move(temp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    }
}
