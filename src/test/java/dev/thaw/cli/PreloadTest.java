package dev.thaw.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.Optional;
import org.junit.jupiter.api.Test;

class PreloadTest {
    @Test
    void everyPreloadedClassExistsSoThatAMovedClassIsNotSilentlyLeftCold() throws Exception {
        for (String name : Preload.classNames()) {
            assertThat(Class.forName(name, false, getClass().getClassLoader())).as(name).isNotNull();
        }
    }

    @Test
    void onlyARestorePreloadsAndItsThreadEnds() throws Exception {
        assertThat(Preload.start("inspect")).isEmpty();
        assertThat(Preload.start("save")).isEmpty();
        Optional<Thread> thread = Preload.start("restore");
        assertThat(thread).isPresent();
        thread.get().join(30_000);
        assertThat(thread.get().isAlive()).as("the preload ends on its own").isFalse();
        assertThat(thread.get().isDaemon()).as("never keeps the JVM alive").isTrue();
    }
}
