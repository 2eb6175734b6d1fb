package dev.thaw.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import dev.thaw.testing.TestHost;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

/** {@code thaw demo --json} end to end, in-process. */
class DemoCommandTest {
    @Test
    void demoPrintsOneJsonObjectWithWhatItMeasured() throws Exception {
        TestHost.report();
        ByteArrayOutputStream captured = new ByteArrayOutputStream();
        PrintStream original = System.out;
        int exit;
        System.setOut(new PrintStream(captured, true, StandardCharsets.UTF_8));
        try {
            exit = new CommandLine(new ThawCli()).execute("demo", "--json", "--seconds", "2", "--memory-mib", "512",
                    "--total-mib", "128", "--ws-mib", "32");
        } finally {
            System.setOut(original);
        }
        String out = captured.toString(StandardCharsets.UTF_8);
        assertThat(exit).as(out).isZero();
        JsonNode json = Json.MAPPER.readTree(out);
        assertThat(json.path("accel").asText()).isEqualTo(TestHost.accel().qemuName());
        assertThat(json.path("guestKey").asText()).isEqualTo(TestHost.guest().key());
        assertThat(json.path("tickCount").asInt()).isGreaterThan(5);
        assertThat(json.path("opsPerSecond").asDouble()).isPositive();
        assertThat(json.path("memsumRepeatable").asBoolean()).isTrue();
        assertThat(json.path("memsumAfterResume").asText()).isNotEqualTo(json.path("memsumPaused").asText());
        assertThat(json.path("memsumByteCount").asLong()).isEqualTo(128L << 20);
        assertThat(json.path("wsbenchReadyMillis").asLong()).isGreaterThan(json.path("initUpMillis").asLong()).isPositive();
    }
}
