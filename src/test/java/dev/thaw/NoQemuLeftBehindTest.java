package dev.thaw;

import static org.assertj.core.api.Assertions.assertThat;

import dev.thaw.qemu.QemuVm;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;

/** Runs last (see the class order in pom.xml): no QEMU started by the suite may still be alive. */
@Order(Integer.MAX_VALUE)
class NoQemuLeftBehindTest {
    @Test
    void noQemuStartedByTheSuiteRemains() {
        assertThat(QemuVm.live()).as("QEMU handles never closed").isEmpty();
        assertThat(ProcessHandle.current().descendants()
                .filter(ProcessHandle::isAlive)
                .map(p -> p.pid() + " " + p.info().commandLine().orElse("?"))
                .filter(cmd -> cmd.contains("qemu-system")))
                .as("qemu-system processes descended from the test JVM")
                .isEmpty();
    }
}
