package dev.thaw.qemu;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.thaw.testing.Signals;
import dev.thaw.testing.TestHost;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The QMP client against a real QEMU started with -S (answers QMP, runs no guest code). */
class QmpClientTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private QemuVm vm;

    @BeforeEach
    void launch() {
        vm = QemuVm.launch(TestHost.pausedConfig("thaw-test-qmp"));
    }

    @AfterEach
    void close() {
        if (vm != null) vm.close();
    }

    @Test
    void handshakeNegotiatesOutOfBandAndReportsTheVersion() {
        assertThat(vm.qmp().oobEnabled()).isTrue();
        QemuVersion doctor = TestHost.qemu();
        assertThat(vm.qmp().qemuVersionText()).isEqualTo(doctor.major() + "." + doctor.minor() + "." + doctor.micro());
        assertThat(vm.qmp().queryStatus()).isEqualTo(new QmpClient.RunState(false, "prelaunch"));
    }

    @Test
    void unknownCommandIsRaisedWithItsName() {
        assertThatThrownBy(() -> vm.qmp().execute("no-such-command"))
                .isInstanceOfSatisfying(QmpException.CommandFailed.class, e -> {
                    assertThat(e.command()).isEqualTo("no-such-command");
                    assertThat(e.errorClass()).isEqualTo("CommandNotFound");
                })
                .hasMessageContaining("'no-such-command'");
    }

    @Test
    void wrongArgumentsAreRaisedWithTheCommandName() {
        assertThatThrownBy(() -> vm.qmp().execute("migrate-set-parameters", JSON.createObjectNode().put("max-bandwidth", "fast")))
                .isInstanceOfSatisfying(QmpException.CommandFailed.class, e -> {
                    assertThat(e.errorClass()).isEqualTo("GenericError");
                    assertThat(e.description()).contains("max-bandwidth");
                })
                .hasMessageContaining("'migrate-set-parameters'");
    }

    @Test
    void outOfBandCommandsAreAnswered() {
        // migrate-pause is one of the few commands that allow OOB; without a migration QEMU refuses it.
        assertThatThrownBy(() -> vm.qmp().executeOob("migrate-pause", null, Duration.ofSeconds(10)))
                .isInstanceOf(QmpException.CommandFailed.class)
                .hasMessageContaining("'migrate-pause'");
    }

    @Test
    void eventsArriveForStopAndResume() throws InterruptedException {
        Journal<QmpEvent>.Cursor events = vm.qmp().events().cursor();
        vm.qmp().cont();
        assertThat(events.await(e -> e.is("RESUME"), Duration.ofSeconds(10))).isPresent();
        vm.qmp().stop();
        assertThat(events.await(e -> e.is("STOP"), Duration.ofSeconds(10))).isPresent();
        assertThat(vm.qmp().queryStatus().running()).isFalse();
    }

    @Test
    void aCallThatGetsNoAnswerTimesOutAndTheConnectionStaysUsable() {
        Signals.send("STOP", vm.pid());
        try {
            assertThatThrownBy(() -> vm.qmp().execute("query-status", null, Duration.ofMillis(300)))
                    .isInstanceOf(QmpException.Timeout.class)
                    .hasMessageContaining("'query-status'")
                    .hasMessageContaining("300 ms");
        } finally {
            Signals.send("CONT", vm.pid());
        }
        assertThat(vm.qmp().queryStatus().status()).isEqualTo("prelaunch");
    }

    @Test
    void aStoppedQemuIsSlowNotDead() {
        Signals.send("STOP", vm.pid());
        try {
            assertThat(vm.statusOrWhyNot(Duration.ofSeconds(1))).isEqualTo("not answering QMP within 1 s; QEMU pid " + vm.pid()
                    + " is alive (stopped or slow)");
            assertThat(vm.isAlive()).isTrue();
        } finally {
            Signals.send("CONT", vm.pid());
        }
        assertThat(vm.statusOrWhyNot(Duration.ofSeconds(10))).isEqualTo("prelaunch");
        Signals.send("KILL", vm.pid());
        assertThat(vm.awaitExit(Duration.ofSeconds(10))).isTrue();
        assertThat(vm.statusOrWhyNot(Duration.ofSeconds(1))).contains("exited");
    }

    @Test
    void qemuKilledMidCallEndsTheCallWithConnectionLost() {
        Signals.send("STOP", vm.pid()); // the call below cannot be answered
        CompletableFuture<Object> call = CompletableFuture.supplyAsync(() -> vm.qmp().execute("query-status", null, Duration.ofMinutes(5)));
        Signals.send("KILL", vm.pid());
        ExecutionException failure = assertTimeoutPreemptively(Duration.ofSeconds(30),
                () -> org.junit.jupiter.api.Assertions.assertThrows(ExecutionException.class, call::get));
        assertThat(failure.getCause()).isInstanceOf(QmpException.ConnectionLost.class).hasMessageContaining("'query-status'");
        assertThatThrownBy(() -> vm.qmp().queryStatus()).isInstanceOf(QmpException.ConnectionLost.class);
        assertThat(vm.qmp().events().isClosed()).isTrue();
    }

    @Test
    void callsAfterCloseFailAtOnce() {
        vm.qmp().close();
        assertTimeoutPreemptively(Duration.ofSeconds(5),
                () -> assertThatThrownBy(() -> vm.qmp().queryStatus()).isInstanceOf(QmpException.ConnectionLost.class));
    }
}
