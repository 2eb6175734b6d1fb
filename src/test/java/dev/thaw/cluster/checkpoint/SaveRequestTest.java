package dev.thaw.cluster.checkpoint;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The files through which 'thaw cluster save' asks the cluster's process: no QEMU. */
class SaveRequestTest {
    @Test
    void eachAskerTakesOnlyItsOwnAnswer(@TempDir Path dir) throws Exception {
        SaveRequest.Answer forA = new SaveRequest.Answer(1, "/cp/a", true, "cluster saved to /cp/a", 1000, 3, 2_000_000_000L);
        forA.write(dir, 101);
        assertThat(SaveRequest.Answer.take(dir, 202)).as("another asker's answer").isEmpty();
        assertThat(SaveRequest.Answer.take(dir, 101)).contains(forA);
        assertThat(SaveRequest.Answer.take(dir, 101)).as("taken once").isEmpty();
        try (var left = Files.list(dir)) {
            assertThat(left.toList()).isEmpty();
        }
    }

    @Test
    void aRequestIsTakenOnceAndABrokenOneIsRefusedNamingIt(@TempDir Path dir) throws Exception {
        SaveRequest r = SaveRequest.of(dir.resolve("cp"));
        r.write(dir);
        assertThat(SaveRequest.take(dir)).contains(r);
        assertThat(SaveRequest.take(dir)).isEmpty();
        Files.writeString(dir.resolve(SaveRequest.FILE), "{\"version\": 9}");
        assertThatThrownBy(() -> SaveRequest.take(dir)).hasMessageContaining(SaveRequest.FILE).hasMessageContaining("expected");
        assertThat(dir.resolve(SaveRequest.FILE)).doesNotExist();
    }

    @Test
    void aRequestCarriesTheProbesLiveLimitAndKeepRunningAndAnOlderOneWithoutThemAsksForNeither(@TempDir Path dir) throws Exception {
        SaveRequest probed = SaveRequest.of(dir.resolve("cp"), 7, true);
        probed.write(dir);
        SaveRequest taken = SaveRequest.take(dir).orElseThrow();
        assertThat(taken.probeLiveSeconds()).isEqualTo(7);
        assertThat(taken.keepRunning()).isTrue();
        Files.writeString(dir.resolve(SaveRequest.FILE), "{\"version\": 1, \"out\": \"/cp/b\", \"requesterPid\": 5, \"at\": \"2026-11-30T00:00:00Z\"}");
        SaveRequest older = SaveRequest.take(dir).orElseThrow();
        assertThat(older.probeLiveSeconds()).as("a request written before the field").isZero();
        assertThat(older.keepRunning()).as("a request written before keep-running: the cluster ends, as it did").isFalse();
        assertThatThrownBy(() -> SaveRequest.of(dir.resolve("cp"), -1, false)).hasMessageContaining("expected a probe's live limit >= 0");
    }
}
