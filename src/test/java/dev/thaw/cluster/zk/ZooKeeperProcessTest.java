package dev.thaw.cluster.zk;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/** The ZooKeeper server the project starts: it serves, a second one on its port fails clearly, and nothing is left behind. */
class ZooKeeperProcessTest {
    @Test
    void servesThenAnotherOnItsPortFailsClearlyAndCloseLeavesNothing() {
        long pid;
        try (ZooKeeperProcess zk = ZooKeeperProcess.start(0, ZooKeeperProcess.START_TIMEOUT)) {
            pid = zk.pid();
            assertThat(ZooKeeperProcess.fourLetters("127.0.0.1", zk.port(), "ruok", Duration.ofSeconds(2))).isEqualTo("imok");
            assertThat(ZooKeeperProcess.fourLetters("127.0.0.1", zk.port(), "srvr", Duration.ofSeconds(2))).contains("Zookeeper version: 3.9.5");
            long started = System.nanoTime();
            assertThatThrownBy(() -> ZooKeeperProcess.start(zk.port(), Duration.ofSeconds(20)).close())
                    .isInstanceOf(ZkException.ServerFailed.class)
                    .hasMessageContaining("ZooKeeper server: expected port " + zk.port() + " free on 127.0.0.1, actual in use");
            assertThat(Duration.ofNanos(System.nanoTime() - started)).isLessThan(Duration.ofSeconds(20));
        }
        assertThat(ProcessHandle.of(pid).filter(ProcessHandle::isAlive)).isEmpty();
    }

    @Test
    void aServerThatDoesNotAnswerInTimeFailsSayingSo() throws Exception {
        long before = countDirs();
        assertThatThrownBy(() -> ZooKeeperProcess.start(0, Duration.ofMillis(1)).close()).isInstanceOf(ZkException.ServerFailed.class)
                .hasMessageContaining("within 1 ms, actual no answer");
        assertThat(countDirs()).isEqualTo(before);
    }

    private static long countDirs() throws Exception {
        try (var s = Files.list(Path.of("/tmp"))) {
            return s.filter(p -> p.getFileName().toString().startsWith("thaw-zookeeper-")).count();
        }
    }
}
