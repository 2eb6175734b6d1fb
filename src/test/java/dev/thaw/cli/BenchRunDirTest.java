package dev.thaw.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The bench's files go to a directory of the run's own: runs never share names, and the work directory is never emptied. */
class BenchRunDirTest {
    @Test
    void eachRunHasItsOwnDirectoryAndRemovesOnlyIt(@TempDir Path work) throws Exception {
        Path mine = Files.writeString(work.resolve("notes.txt"), "the operator's"); // --work-dir may hold other things
        Path leftover = Files.createDirectories(work.resolve("thaw-wsbench-1024M-W64-3")); // as a killed run of the old layout left
        try (BenchCommand.RunDir a = new BenchCommand.RunDir(work); BenchCommand.RunDir b = new BenchCommand.RunDir(work)) {
            assertThat(a.path()).isNotEqualTo(b.path());
            assertThat(a.path().getParent()).isEqualTo(work);
            // The same image name in each: no collision with the other run or the leftover.
            Files.createDirectory(a.path().resolve(leftover.getFileName()));
            Files.createDirectory(b.path().resolve(leftover.getFileName()));
            assertThat(Files.getPosixFilePermissions(a.path())).hasSize(3); // rwx------: guest memory goes here
            b.close();
            assertThat(b.path()).doesNotExist();
            assertThat(a.path()).isDirectory();
        }
        assertThat(work).isDirectory();
        assertThat(mine).hasContent("the operator's");
        assertThat(leftover).isDirectory();
        try (var left = Files.list(work)) {
            assertThat(left).containsExactlyInAnyOrder(mine, leftover);
        }
    }
}
