package dev.thaw.image;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A save that died (SIGKILL, power loss) left its hidden partial image: the next save into that directory removes it. */
class PartialImagesTest {
    @Test
    void removesThePartialImagesOfDeadProcessesOnly(@TempDir Path dir) throws Exception {
        Process exited = new ProcessBuilder("true").start();
        exited.waitFor();
        Path dead = Files.createDirectories(dir.resolve(".img.partial-" + exited.pid() + "-123").resolve("store"));
        Files.writeString(dead.resolve("pack-0"), "guest memory");
        Path ours = Files.createDirectory(dir.resolve(PartialImages.prefix(dir.resolve("other")) + "456"));
        Path init = Files.createDirectory(dir.resolve(".img.partial-1-789")); // alive since boot, before this directory
        Path image = Files.createDirectory(dir.resolve("img"));
        Path foreign = Files.createDirectory(dir.resolve(".img.partial-x"));

        assertThat(PartialImages.removeAbandoned(dir)).containsExactly(dead.getParent());
        assertThat(dead.getParent()).doesNotExist();
        assertThat(List.of(ours, init, image, foreign)).allMatch(Files::isDirectory);
    }

    @Test
    void aPidReusedByALaterProcessDoesNotKeepALeftover(@TempDir Path dir) throws Exception {
        Path made = Files.createDirectory(dir.resolve("made-before"));
        Thread.sleep(3_000); // more than the start time's slack
        Process later = new ProcessBuilder("sleep", "30").start();
        try {
            Path leftover = Files.move(made, dir.resolve(".img.partial-" + later.pid() + "-1")); // a rename keeps the birth time
            assertThat(PartialImages.removeAbandoned(dir)).containsExactly(leftover);
            Path live = Files.createDirectory(dir.resolve(".img.partial-" + later.pid() + "-2"));
            assertThat(PartialImages.removeAbandoned(dir)).as("made while its process runs").isEmpty();
            assertThat(live).isDirectory();
        } finally {
            later.destroyForcibly().waitFor();
        }
    }
}
