package dev.thaw.cluster.live;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.cluster.net.PairRecord;
import dev.thaw.cluster.net.PortStats;
import dev.thaw.guest.TcpStreamLine;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The status file 'thaw cluster up' rewrites and 'thaw cluster status' reads. */
class ClusterStatusTest {
    private static final Instant AT = Instant.parse("2026-11-29T03:30:00Z");

    private static ClusterStatus status(long upPid, Instant at) {
        PortStats port = new PortStats("m1", true, false, 0, 0, 4096, 16 << 20, 3, 10, 1000, 12, 1200, 0, 1, 0, 0, 1, 0, 0);
        var member = new ClusterStatus.Member("m1", "10.0.3.1", "52:54:00:00:03:01", "server", "/tmp/thaw-vm-1/qmp-extra.sock", 42, true,
                "running", port, new TcpStreamLine.Tick(TcpStreamLine.Direction.RX, 7, 99, 4096, 0, "10.0.3.2"), null);
        return new ClusterStatus(ClusterStatus.VERSION, at, upPid, "/tmp/c", List.of(member), List.of(new PairRecord("m2", "m1", 12, 1200, at)));
    }

    @Test
    void roundTripsThroughItsFileAndLeavesNoTemporaryFile(@TempDir Path dir) throws IOException {
        ClusterStatus written = status(ProcessHandle.current().pid(), AT);
        written.write(dir);
        written.write(dir); // rewritten over itself
        assertThat(ClusterStatus.read(dir)).isEqualTo(written);
        try (var files = Files.list(dir)) {
            assertThat(files.map(p -> p.getFileName().toString())).containsExactly(ClusterStatus.FILE);
        }
    }

    @Test
    void isLiveOnlyWhileItsWriterRunsAndWritesIt() {
        long self = ProcessHandle.current().pid();
        assertThat(status(self, AT).isLive(AT.plusSeconds(1))).isTrue();
        assertThat(status(self, AT).isLive(AT.plus(ClusterStatus.STALE_AFTER).plusSeconds(1))).isFalse();
        // A pid that no process has: the writer is gone.
        assertThat(status(Long.MAX_VALUE, AT).isLive(AT)).isFalse();
    }

    @Test
    void aMissingOrForeignFileFailsNamingIt(@TempDir Path dir) throws IOException {
        assertThatThrownBy(() -> ClusterStatus.read(dir)).hasMessageContaining(dir.resolve(ClusterStatus.FILE).toString())
                .hasMessageContaining("actual none (no cluster runs there)");
        status(1, AT).write(dir);
        Path file = dir.resolve(ClusterStatus.FILE);
        Files.writeString(file, Files.readString(file).replace("\"version\":1", "\"version\":2"));
        assertThatThrownBy(() -> ClusterStatus.read(dir)).hasMessageContaining("expected version 1, actual 2");
    }
}
