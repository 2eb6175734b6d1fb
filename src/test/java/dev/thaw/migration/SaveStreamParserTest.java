package dev.thaw.migration;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.thaw.testing.SyntheticGuest;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** Every rejection path of the save-stream parser names the offset and what was expected. */
class SaveStreamParserTest {
    private static final Random RANDOM = new Random(7);

    private static byte[] stream() {
        return SyntheticGuest.random(new Random(1), 2, 40, 0.3, 0.2).toStream(16);
    }

    private static long parse(byte[] bytes) {
        return SaveStreamParser.parse(new ByteArrayInputStream(bytes), new SyntheticGuest());
    }

    /** Offset of the first RAM PART section (after header, configuration and the RAM START section). */
    private static int firstPart(byte[] s) {
        for (int i = 0; i < s.length; i++) {
            if (s[i] == Wire.SECTION_PART && s[i - 5] == Wire.SECTION_FOOTER) return i;
        }
        throw new AssertionError("no PART section");
    }

    @Test
    void parsesAWellFormedStream() {
        byte[] s = stream();
        assertThat(parse(s)).isEqualTo(s.length);
    }

    @Test
    void rejectsBadMagicAndVersion() {
        byte[] s = stream();
        s[0] = 'X';
        assertThatThrownBy(() -> parse(s)).isInstanceOf(StreamFormatException.class)
                .hasMessageContaining("offset 0").hasMessageContaining("expected magic 0x5145564d");
        byte[] v = stream();
        v[7] = 2;
        assertThatThrownBy(() -> parse(v)).hasMessageContaining("expected stream version 3, actual 2");
    }

    @Test
    void rejectsTruncationAnywhere() {
        byte[] s = stream();
        for (int cut : new int[] {3, 20, s.length / 3, s.length / 2, s.length - 40}) {
            assertThatThrownBy(() -> parse(Arrays.copyOf(s, cut))).as("cut at " + cut)
                    .isInstanceOf(StreamFormatException.class).hasMessageContaining("truncated");
        }
    }

    @Test
    void rejectsAnUnknownRecordType() {
        byte[] s = stream();
        int at = firstPart(s);
        s[at] = 0x42;
        assertThatThrownBy(() -> parse(s)).hasMessageContaining("offset " + at).hasMessageContaining("unknown record type 0x42");
    }

    @Test
    void rejectsUnsupportedRamEncodings() {
        byte[] s = stream();
        int record = firstPart(s) + 5; // after type and section id: the first record header (be64)
        s[record + 6] = (byte) (s[record + 6] | 0x01); // flag 0x100 = COMPRESS_PAGE
        assertThatThrownBy(() -> parse(s)).hasMessageContaining("offset " + record).hasMessageContaining("COMPRESS_PAGE");
    }

    @Test
    void rejectsOtherIterableSections() throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.writeBytes(SyntheticGuest.configuration("pc-i440fx-7.2"));
        out.writeBytes(new byte[] {Wire.SECTION_START, 0, 0, 0, 1, 5, 'b', 'l', 'o', 'c', 'k', 0, 0, 0, 0, 0, 0, 0, 1});
        assertThatThrownBy(() -> parse(out.toByteArray())).hasMessageContaining("block migration");
    }

    @Test
    void rejectsAReturnPathAndPostcopy() {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.writeBytes(SyntheticGuest.configuration("pc-i440fx-7.2"));
        out.writeBytes(new byte[] {Wire.COMMAND, 0, 1, 0, 0});
        assertThatThrownBy(() -> parse(out.toByteArray())).hasMessageContaining("return path");
    }

    @Test
    void rejectsAMismatchedFooter() {
        byte[] s = stream();
        int part = firstPart(s);
        s[part - 1] ^= 1; // the START section's footer id
        assertThatThrownBy(() -> parse(s)).hasMessageContaining("expected section footer 0x7e");
    }

    @Test
    void rejectsRandomGarbageWithAFormatError() {
        for (int i = 0; i < 200; i++) {
            byte[] s = stream();
            int at = 17 + RANDOM.nextInt(s.length - 17);
            s[at] = (byte) RANDOM.nextInt(256);
            try {
                parse(s);
            } catch (StreamFormatException e) {
                assertThat(e.offset()).isBetween(0L, (long) s.length);
            }
            // Page payload bytes change content, not structure: parsing may succeed; it must never throw anything else.
        }
    }

    @Test
    void findsTheDescriptionTrailer() {
        byte[] data = {4, 9, 9, 0, 6, 0, 0, 0, 2, '{', '}'};
        assertThat(SaveStreamParser.findTrailer(data)).isEqualTo(4);
        assertThat(SaveStreamParser.findTrailer(new byte[] {4, 9, 0})).isEqualTo(-1);
    }

    @Test
    void rejectsAPageAddressWithTheTopBitSet() {
        byte[] s = stream();
        int record = firstPart(s) + 5; // the first record header (be64): its top byte is the address's
        s[record] = (byte) 0x80;
        assertThatThrownBy(() -> parse(s)).isInstanceOf(StreamFormatException.class).hasMessageContaining("offset " + record)
                .hasMessageContaining("page offset 0x80");
    }

    @Test
    void rejectsARamBlockListOfMoreThanATebibyteBeforeAllocatingForIt() {
        byte[] s = stream();
        // The block list: MEM_SIZE header (be64 total | 0x04), then per block a counted name and a be64 length.
        int name = indexOf(s, "pc.ram".getBytes(java.nio.charset.StandardCharsets.US_ASCII));
        int header = name - 1 - 8;
        java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(s);
        long total = b.getLong(header) & ~Wire.RAM_FLAG_MASK;
        long used = b.getLong(name + 6);
        long huge = 1L << 44; // 2^32 pages: no int page count, and a 32 GiB page map
        b.putLong(name + 6, huge);
        b.putLong(header, (total - used + huge) | Wire.RAM_MEM_SIZE);
        assertThatThrownBy(() -> parse(s)).isInstanceOf(StreamFormatException.class).hasMessageContaining("1 TiB");
    }

    private static int indexOf(byte[] haystack, byte[] needle) {
        outer:
        for (int i = 0; i + needle.length <= haystack.length; i++) {
            for (int j = 0; j < needle.length; j++) if (haystack[i + j] != needle[j]) continue outer;
            return i;
        }
        throw new AssertionError("not found");
    }

    /** Found by fuzzing (migration-stream): a MEM_SIZE record of 0 gave the handler an empty block list. */
    @Test
    void rejectsARamBlockListOfNoBlocks() {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.writeBytes(SyntheticGuest.configuration(SyntheticGuest.MACHINE));
        int memSize = out.size() + 1 + 4 + 1 + 3 + 4 + 4;
        out.writeBytes(new byte[] {Wire.SECTION_START, 0, 0, 0, 2, 3, 'r', 'a', 'm', 0, 0, 0, 0, 0, 0, 0, Wire.RAM_SECTION_VERSION});
        out.writeBytes(new byte[] {0, 0, 0, 0, 0, 0, 0, Wire.RAM_MEM_SIZE, 0, 0, 0, 0, 0, 0, 0, Wire.RAM_EOS, Wire.SECTION_FOOTER, 0, 0, 0, 2});
        assertThatThrownBy(() -> parse(out.toByteArray())).isInstanceOf(StreamFormatException.class)
                .hasMessageContaining("offset " + memSize).hasMessageContaining("expected at least one block");
    }
}
