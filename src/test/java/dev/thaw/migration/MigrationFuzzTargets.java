package dev.thaw.migration;

import dev.thaw.fuzz.FuzzTarget;
import dev.thaw.fuzz.Mutator;
import dev.thaw.testing.SyntheticGuest;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

/** The migration stream a QEMU writes for a save: {@link SaveStreamParser} over {@link WireInput}. */
public final class MigrationFuzzTargets {
    private MigrationFuzzTargets() {}

    public static FuzzTarget saveStream() {
        List<byte[]> seeds = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            SyntheticGuest g = SyntheticGuest.random(new Random(100 + i), 1 + i % 3, 12, 0.3, 0.2);
            g.deviceState = Arrays.copyOf(g.deviceState, 1 + i * 37); // small: the device state is opaque bytes
            if (i == 3) g.vmDescription = null;
            seeds.add(g.toStream(3 + i * 4));
        }
        seeds.add(withEveryConfigurationSubsection(seeds.getFirst()));
        return new FuzzTarget("migration-stream", seeds, Mutator::mutate, input -> SaveStreamParser.parse(trickle(input), new Checking()),
                List.of(StreamFormatException.class));
    }

    /** A stream whose configuration has the subsections QEMU may send, and a PING command before the RAM section. */
    private static byte[] withEveryConfigurationSubsection(byte[] stream) {
        byte[] config = SyntheticGuest.configuration(SyntheticGuest.MACHINE);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.writeBytes(config);
        subsection(out, "configuration/target-page-bits", 0, 0, 0, 12);
        subsection(out, "configuration/capabilities", 0, 0, 0, 1, 8, 'x', '-', 'i', 'g', 'n', 'o', 'r', 'e');
        subsection(out, "configuration/uuid", 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16);
        out.writeBytes(new byte[] {Wire.COMMAND, 0, Wire.CMD_PING, 0, 4, 0, 0, 0, 1});
        out.write(stream, config.length, stream.length - config.length);
        return out.toByteArray();
    }

    private static void subsection(ByteArrayOutputStream out, String name, int... payload) {
        out.write(Wire.SUBSECTION);
        out.write(name.length());
        out.writeBytes(name.getBytes(StandardCharsets.US_ASCII));
        out.writeBytes(new byte[] {0, 0, 0, 1});
        for (int b : payload) out.write(b);
    }

    /** The input in reads of a size it chooses (1 byte to 4 KiB), as a socket delivers it: WireInput must refill across any cut. */
    public static InputStream trickle(byte[] input) {
        int chunk = 1 + (Arrays.hashCode(input) & 0xFFF);
        return new ByteArrayInputStream(input) {
            @Override
            public synchronized int read(byte[] b, int off, int len) {
                return super.read(b, off, Math.min(len, chunk));
            }
        };
    }

    /** Holds the parser to what it promises its handler: blocks first, every page inside its block, whole page data. */
    private static final class Checking implements SaveStreamHandler {
        private List<RamBlock> blocks;

        @Override
        public void configuration(byte[] headerAndConfiguration, String machineType, List<String> validatedCapabilities) {
            check(headerAndConfiguration.length >= 8 && machineType != null && validatedCapabilities != null, "configuration");
        }

        @Override
        public void ramBlocks(int sectionId, int sectionVersion, List<RamBlock> list) {
            check(blocks == null && !list.isEmpty(), "one non-empty block list");
            blocks = list;
        }

        @Override
        public void zeroPage(int blockIndex, int pageIndex) {
            inside(blockIndex, pageIndex);
        }

        @Override
        public void page(int blockIndex, int pageIndex, byte[] data, int offset) {
            inside(blockIndex, pageIndex);
            check(offset >= 0 && offset + Wire.TARGET_PAGE_BYTES <= data.length, "whole page data");
        }

        @Override
        public void deviceState(byte[] fullSections, byte[] vmDescriptionJson) {
            check(fullSections != null, "device state");
        }

        private void inside(int block, int page) {
            check(blocks != null && block >= 0 && block < blocks.size() && page >= 0 && page < blocks.get(block).pageCount(),
                    "page " + page + " of block " + block + " inside the block list " + blocks);
        }

        private static void check(boolean ok, String what) {
            if (!ok) throw new AssertionError("SaveStreamParser broke its handler contract: expected " + what);
        }
    }
}
