package dev.thaw.restore;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;

/** The reading of QEMU's {@code query-yank} answer that tells whether the incoming migration is torn down (QEMU 7.2's answers). */
class IncomingQemuTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @Test
    void theMigrationInstanceIsFoundAmongTheOthers() throws Exception {
        assertThat(IncomingQemu.migrationYankRegistered(JSON.readTree(
                "[{\"type\":\"chardev\",\"id\":\"qmp\"},{\"type\":\"migration\"},{\"type\":\"block-node\",\"node-name\":\"d0\"}]"))).isTrue();
    }

    @Test
    void withoutItTheTeardownIsOver() throws Exception {
        assertThat(IncomingQemu.migrationYankRegistered(JSON.readTree("[{\"type\":\"chardev\",\"id\":\"qmp\"}]"))).isFalse();
        assertThat(IncomingQemu.migrationYankRegistered(JSON.readTree("[]"))).isFalse();
    }

    @Test
    void anAnswerThatIsNotAListIsRefusedByName() throws Exception {
        assertThatThrownBy(() -> IncomingQemu.migrationYankRegistered(JSON.readTree("{\"type\":\"migration\"}")))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("query-yank: expected a list of instances, actual");
    }
}
