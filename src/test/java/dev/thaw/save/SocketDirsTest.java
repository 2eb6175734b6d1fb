package dev.thaw.save;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A save killed before its cleanup leaves its socket directory: the next save removes those of dead Thaws, and only those. */
class SocketDirsTest {
    @TempDir
    Path parent;

    @Test
    void aDeadSavesDirectoryIsRemovedALiveOnesAndForeignOnesStay() throws Exception {
        Process p = new ProcessBuilder("true").start();
        p.waitFor();
        long deadPid = p.pid(); // exited and reaped: no such process now (a reuse within the test would only keep the directory)
        Path dead = Files.createDirectory(parent.resolve(Saver.SOCKET_DIR_PREFIX + deadPid + "-123"));
        Files.createFile(dead.resolve("save.sock"));
        Path live = Files.createDirectory(parent.resolve(Saver.SOCKET_DIR_PREFIX + ProcessHandle.current().pid() + "-456"));
        Path old = Files.createDirectory(parent.resolve(Saver.SOCKET_DIR_PREFIX + "8746673800726995606")); // before pids: left alone
        Path odd = Files.createDirectory(parent.resolve(Saver.SOCKET_DIR_PREFIX + "x-1"));

        assertThat(Saver.removeDeadSocketDirs(parent)).isEqualTo(1);
        assertThat(dead).doesNotExist();
        assertThat(live).isDirectory();
        assertThat(old).isDirectory();
        assertThat(odd).isDirectory();
    }
}
