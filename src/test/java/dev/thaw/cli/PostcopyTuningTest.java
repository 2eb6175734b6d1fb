package dev.thaw.cli;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** The scheduling options' units and checks, refused before anything starts (no QEMU, no image). */
class PostcopyTuningTest {
    @Test
    void badValuesAreRefusedNamingTheOption() {
        ImageCommandsTest.Run sixKib = ImageCommandsTest.run("restore", "/nonexistent", "--fault-region-kib", "6");
        assertThat(sixKib.exit()).isNotZero();
        assertThat(sixKib.err()).contains("--fault-region-kib").contains("actual 6");
        ImageCommandsTest.Run notPowerOfTwo = ImageCommandsTest.run("restore", "/nonexistent", "--fault-region-kib", "3000");
        assertThat(notPowerOfTwo.err()).contains("--fault-region-kib").contains("actual 3000");
        ImageCommandsTest.Run chunk = ImageCommandsTest.run("restore", "/nonexistent", "--chunk-pages", "2");
        assertThat(chunk.err()).contains("--chunk-pages").contains("actual 2");
        ImageCommandsTest.Run both = ImageCommandsTest.run("restore", "/nonexistent", "--hugetlb", "--collapse-huge-pages");
        assertThat(both.err()).contains("exclude each other");
        ImageCommandsTest.Run priority = ImageCommandsTest.run("restore", "/nonexistent", "--background-priority", "low");
        assertThat(priority.err()).contains("--background-priority").contains("actual 'low'");
        ImageCommandsTest.Run busy = ImageCommandsTest.run("restore", "/nonexistent", "--busy-background-mbps", "-1");
        assertThat(busy.err()).contains("--busy-background-mbps").contains("actual -1");
        ImageCommandsTest.Run neighbours = ImageCommandsTest.run("restore", "/nonexistent", "--neighbour-pages", "512");
        assertThat(neighbours.err()).contains("--neighbour-pages").contains("actual 512");
        ImageCommandsTest.Run demo = ImageCommandsTest.run("demo", "--send-buffer-kib", "1");
        assertThat(demo.err()).contains("--send-buffer-kib").contains("actual 1");
    }

    @Test
    void aDiskDirectoryThatIsAFileIsRefused() throws Exception {
        java.nio.file.Path file = java.nio.file.Files.createTempFile("thaw-test-disk-dir", ".txt");
        try {
            ImageCommandsTest.Run run = ImageCommandsTest.run("restore", "/nonexistent", "--disk-dir", file.toString());
            assertThat(run.exit()).isNotZero();
            assertThat(run.err()).contains("--disk-dir: expected a directory, actual " + file);
        } finally {
            java.nio.file.Files.deleteIfExists(file);
        }
    }

    @Test
    void resumeAndNoResumeExcludeEachOther() {
        ImageCommandsTest.Run both = ImageCommandsTest.run("restore", "/nonexistent", "--resume", "thaw-restored", "--no-resume");
        assertThat(both.exit()).isNotZero();
        assertThat(both.err()).contains("--resume and --no-resume exclude each other");
    }

    @Test
    void wholeRegionsAreOffByDefault() {
        for (var c : java.util.List.of(new Object[] {new String[0], false}, new Object[] {new String[] {"--no-whole-regions"}, false},
                new Object[] {new String[] {"--whole-regions"}, true})) {
            PostcopyTuning t = new PostcopyTuning();
            new picocli.CommandLine(t).parseArgs((String[]) c[0]);
            var ws = t.applyTo(dev.thaw.restore.PostcopyRestore.Options.ws("x", java.util.List.of(), java.util.List.of()));
            assertThat(ws.policy().wholeRegionPrefetch()).as(String.join(" ", (String[]) c[0])).isEqualTo(c[1]);
        }
    }

    @Test
    void kibBecomePagesOnce() {
        PostcopyTuning t = new PostcopyTuning();
        t.chunkPages = 64;
        t.sendBufferKib = 128;
        t.faultRegionKib = 512;
        t.backgroundMbps = 200;
        t.busyBackgroundMbps = 32L;
        t.backgroundPriority = "normal";
        var o = t.applyTo(dev.thaw.restore.PostcopyRestore.Options.lazy("x"));
        assertThat(o.policy().faultRegionPages()).isEqualTo(128);
        assertThat(o.policy().maxChunkPages()).isEqualTo(64);
        assertThat(o.policy().backgroundBytesPerSecond()).isEqualTo(200_000_000L);
        assertThat(o.policy().busyBackgroundBytesPerSecond()).isEqualTo(32_000_000L);
        // unset, the mode's own: a ws restore's busy pace stays, 0 turns it off
        t.busyBackgroundMbps = null;
        var ws = dev.thaw.restore.PostcopyRestore.Options.ws("x", java.util.List.of(), java.util.List.of());
        assertThat(t.applyTo(ws).policy().busyBackgroundBytesPerSecond()).isEqualTo(64_000_000L);
        t.busyBackgroundMbps = 0L;
        assertThat(t.applyTo(ws).policy().busyBackgroundBytesPerSecond()).isZero();
        assertThat(o.transport().sendBufferBytes()).isEqualTo(128 << 10);
        // unset, the policy's own (3, HotRestore's 4 per fault); given, it replaces it
        assertThat(o.policy().neighbourPages()).isEqualTo(3);
        t.neighbourPages = 31;
        assertThat(t.applyTo(ws).policy().neighbourPages()).isEqualTo(31);
        assertThat(o.backgroundPriority()).isEqualTo(dev.thaw.util.ThreadPriority.Policy.NORMAL);
    }
}
