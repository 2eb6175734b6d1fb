package dev.thaw.image;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class FramedWriterTest {
    /** Linux reports a writeback error to one fsync only: the background one's error must fail the file. */
    @Test
    void aFailedBackgroundFsyncFailsTheFile(@TempDir Path dir) throws Exception {
        Path target = dir.resolve("pack.thaw");
        AtomicInteger backgroundForces = new AtomicInteger();
        FramedWriter.Force failingWriteback = (channel, metadata) -> {
            if (!metadata) {
                backgroundForces.incrementAndGet();
                throw new IOException("EIO injected into the writeback");
            }
            channel.force(true); // the final fsync succeeds, as the kernel's second report would
        };
        byte[] chunk = new byte[1 << 20];
        assertThatThrownBy(() -> {
            try (FramedWriter out = new FramedWriter(target, FileKind.PACK, UUID.randomUUID(), 1, failingWriteback)) {
                for (int i = 0; i < 4; i++) out.write(chunk);
                out.finish();
            }
        }).isInstanceOf(ImageException.CannotWrite.class).hasMessageContaining("EIO injected into the writeback")
                .hasMessageContaining(target.toString());
        assertThat(backgroundForces.get()).as("background fsyncs tried").isPositive();
        try (Stream<Path> files = Files.list(dir)) {
            assertThat(files.toList()).as("neither the file nor its temporary is left").isEmpty();
        }
    }

    @Test
    void filesAreReadableByTheirOwnerOnly(@TempDir Path dir) throws Exception {
        Path target = dir.resolve("device.thaw");
        try (FramedWriter out = new FramedWriter(target, FileKind.DEVICE_STATE, UUID.randomUUID())) {
            out.write(new byte[100]);
            out.finish();
        }
        assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(target))).isEqualTo("rw-------");
    }
}
