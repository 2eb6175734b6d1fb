package dev.thaw.save;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.thaw.qemu.QemuVm;
import dev.thaw.qemu.QmpClient;
import dev.thaw.testing.TestHost;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.time.Duration;
import java.time.Instant;
import org.junit.jupiter.api.Test;

/**
 * A save's hold on a guest, where recovery must not resume it: a live save holds it, the QMP socket is another QEMU's since,
 * or the guest is in a state no save leaves. Against a real QEMU started with -S (status prelaunch), holds written as a save
 * writes them; SaveFaultsTest has the recovery of a guest a killed save left paused.
 */
class SaveHoldTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @Test
    void aGuestIsResumedOnlyFromTheHoldOfADeadSaveOnItsOwnSocketInAStateASaveLeaves() throws Exception {
        try (QemuVm vm = QemuVm.launch(TestHost.pausedConfig("thaw-test-hold"))) {
            Path socket = vm.extraQmpSocket();
            Path file = SaveHold.file(socket);
            String key = Files.readAttributes(socket, BasicFileAttributes.class).fileKey().toString();
            try (QmpClient qmp = QmpClient.connect(socket, "hold", Duration.ofSeconds(10), vm::isAlive)) {
                // A live save (this process) holds the guest: no recovery, and another save is refused naming the holder.
                ProcessHandle self = ProcessHandle.current();
                write(file, new SaveHold(self.pid(), self.info().startInstant().orElseThrow().toEpochMilli(), key, "then"));
                assertThat(SaveHold.resumeIfLeftPaused(socket, qmp)).isEmpty();
                assertThatThrownBy(() -> SaveHold.claim(socket, qmp, Duration.ofSeconds(30))).isInstanceOf(SaveException.class)
                        .hasMessageContaining("a save by Thaw pid " + self.pid() + " holds it since then");
                assertThat(file).as("the live save's hold stays").exists();

                // A hold of the pid with another start time: the pid was reused, its save is dead.
                write(file, new SaveHold(self.pid(), 1_000, "(another socket)", "then"));
                assertThat(SaveHold.resumeIfLeftPaused(socket, qmp)).get().satisfies(r -> {
                    assertThat(r.resumed()).isFalse();
                    assertThat(r.message()).contains("at a QMP socket since replaced (another QEMU)");
                });
                assertThat(file).as("the stale hold is removed").doesNotExist();

                // A dead save's hold on this socket, the guest in a state no save leaves (prelaunch): left as it is.
                long dead = deadPid();
                write(file, new SaveHold(dead, Instant.now().toEpochMilli(), key, "then"));
                assertThat(SaveHold.resumeIfLeftPaused(socket, qmp)).get().satisfies(r -> {
                    assertThat(r.resumed()).isFalse();
                    assertThat(r.message()).contains("a save by Thaw pid " + dead + " that died", "the guest is prelaunch now: left as it is");
                });
                assertThat(qmp.queryStatus().status()).as("not resumed").isEqualTo("prelaunch");
                assertThat(file).doesNotExist();

                // A guest that is not running needs no hold: a save of it records none.
                try (SaveHold.Claim claim = SaveHold.claim(socket, qmp, Duration.ofSeconds(30))) {
                    assertThat(file).doesNotExist();
                }
                // A damaged hold is ignored (with a warning), not an error.
                Files.writeString(file, "{\"thawPid\":");
                assertThat(SaveHold.resumeIfLeftPaused(socket, qmp)).isEmpty();
            }
        }
    }

    private static void write(Path file, SaveHold hold) throws Exception {
        JSON.writeValue(file.toFile(), hold);
    }

    private static long deadPid() throws Exception {
        Process p = new ProcessBuilder("true").start();
        p.waitFor();
        return p.pid();
    }
}
