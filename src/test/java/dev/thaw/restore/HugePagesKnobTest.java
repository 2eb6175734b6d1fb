package dev.thaw.restore;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The surplus-page knob's read-add-write, from several processes at once (restores in separate Thaws): no addition or undo is
 * lost. A knob in a temporary directory stands for the kernel's (the same code; its lock file lies beside it). No QEMU.
 */
@Timeout(120)
class HugePagesKnobTest {
    static final int ROUNDS = 2000;

    /**
     * A child JVM's work: says it is ready ({@code KNOB.ready-I}), waits for {@code KNOB.go} so that every process changes the
     * knob at the same time, then {@code ROUNDS} allowances of one page through the knob, each undone at once.
     */
    public static void main(String[] args) throws Exception {
        Path knob = Path.of(args[0]);
        Files.createFile(knob.resolveSibling("ready-" + args[1]));
        long deadline = System.nanoTime() + 60_000_000_000L;
        while (!Files.exists(knob.resolveSibling("go")) && System.nanoTime() < deadline) Thread.onSpinWait();
        for (int i = 0; i < ROUNDS; i++) HugePages.allowHugetlbPages(knob, 1).run();
    }

    @Test
    void allowancesFromSeveralProcessesAtOnceAreNeverLost(@TempDir Path dir) throws Exception {
        Path knob = dir.resolve("nr_overcommit_hugepages");
        Files.writeString(knob, "5\n");
        List<Process> children = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            children.add(new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-cp",
                    System.getProperty("java.class.path"), HugePagesKnobTest.class.getName(), knob.toString(), Integer.toString(i))
                    .redirectErrorStream(true).redirectOutput(dir.resolve("child-" + i + ".log").toFile()).start());
        }
        long deadline = System.nanoTime() + 60_000_000_000L;
        for (int i = 0; i < children.size(); i++) {
            while (!Files.exists(dir.resolve("ready-" + i))) {
                assertThat(System.nanoTime()).as("child " + i + " ready within 60 s").isLessThan(deadline);
                assertThat(children.get(i).isAlive()).as("child " + i + " alive").isTrue();
                Thread.sleep(10);
            }
        }
        Files.createFile(dir.resolve("go"));
        // This JVM changes it meanwhile too.
        for (int i = 0; i < ROUNDS; i++) HugePages.allowHugetlbPages(knob, 2).run();
        for (int i = 0; i < children.size(); i++) {
            Process p = children.get(i);
            assertThat(p.waitFor(90, TimeUnit.SECONDS)).as("child " + i + " ended").isTrue();
            assertThat(p.exitValue()).as("child " + i + ": " + Files.readString(dir.resolve("child-" + i + ".log"))).isZero();
        }
        assertThat(Files.readString(knob).strip()).as("the knob after %d allowances and undos in 4 processes", 4 * ROUNDS).isEqualTo("5");
        assertThat(HugePages.lockFileFor(knob)).isEqualTo(dir.resolve("nr_overcommit_hugepages.lock"));
        assertThat(HugePages.lockFileFor(Path.of("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_overcommit_hugepages")))
                .isEqualTo(Path.of("/run/lock/thaw-hugetlb-knob.lock"));
    }
}
