package dev.thaw.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

class ProgressTest {
    @Test
    void notOnATerminalANewKindOfStatusShowsAtOnceAndCountsAtMostOnceASecond() {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        Progress p = new Progress(new PrintStream(bytes, true, StandardCharsets.UTF_8), false);
        p.update("ws restore: guest RAM in 4 KiB pages");
        p.update("ws restore: guest running after 0.41 s; serving pages");
        p.update("ws restore: serving pages: 0 demand faults, 9884 background pages");
        p.update("ws restore: serving pages: 1 demand faults, 12000 background pages"); // within the second: not shown
        p.update("ws restore: serving pages: 1 demand faults, 12000 background pages");
        p.done("ws restore: guest running after 0.41 s, restore completed after 4.20 s");
        assertThat(bytes.toString(StandardCharsets.UTF_8).lines()).containsExactly("  ws restore: guest RAM in 4 KiB pages",
                "  ws restore: guest running after 0.41 s; serving pages", "  ws restore: serving pages: 0 demand faults, 9884 background pages",
                "ws restore: guest running after 0.41 s, restore completed after 4.20 s");
        assertThat(Progress.kind("a: 12 b")).isEqualTo("a: ");
        assertThat(Progress.kind("no digits")).isEqualTo("no digits");
        assertThat(Progress.kind(null)).isEmpty();
    }
}
