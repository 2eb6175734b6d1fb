package dev.thaw.migration;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.BitSet;
import java.util.HexFormat;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The postcopy recovery handshake's bytes (docs/protocol.md, "Postcopy recovery"), both directions, without QEMU. */
class PostcopyRecoveryMessagesTest {
    /** 130 pages: a bitmap of 17 bytes, rounded up to 24. */
    private static final List<RamBlock> BLOCKS = List.of(new RamBlock("pc.ram", 130 * 4096L, 4096), new RamBlock("pc.bios", 64 * 4096L, 4096));

    @Test
    void recvBitmapAndPostcopyResumeAreCommandsTenAndNine() throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        StreamWriter writer = new StreamWriter(out, BLOCKS);
        writer.recvBitmap(1);
        writer.postcopyResume();
        writer.flush();
        assertThat(HexFormat.of().formatHex(out.toByteArray()))
                .isEqualTo("08" + "000a" + "0008" + "07" + HexFormat.of().formatHex("pc.bios".getBytes(StandardCharsets.US_ASCII))
                        + "08" + "0009" + "0000");
    }

    /** QEMU's answer to RECV_BITMAP: the message (a counted name), then be64 size, the bitmap, be64 ending (ramblock_recv_bitmap_send). */
    static byte[] receivedBitmap(String name, long size, byte[] bitmap, long ending) {
        byte[] n = name.getBytes(StandardCharsets.ISO_8859_1);
        ByteBuffer b = ByteBuffer.allocate(4 + 1 + n.length + 8 + bitmap.length + 8);
        b.putShort((short) Wire.RP_RECV_BITMAP).putShort((short) (1 + n.length)).put((byte) n.length).put(n);
        b.putLong(size).put(bitmap).putLong(ending);
        return b.array();
    }

    private static byte[] concat(byte[]... parts) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (byte[] p : parts) out.writeBytes(p);
        return out.toByteArray();
    }

    @Test
    void aReceivedBitmapIsLittleEndianWordsAndTheResumeAckFollows() throws Exception {
        byte[] bitmap = new byte[24];
        bitmap[0] = 0b0000_0101; // pages 0 and 2
        bitmap[8] = 0b0000_0001; // page 64
        bitmap[16] = 0b0000_0010; // page 129, the last
        bitmap[17] = 0b0000_0001; // page 136: past the block's end, dropped
        byte[] ack = {0, (byte) Wire.RP_RESUME_ACK, 0, 4, 0, 0, 0, 1};
        ReturnPathReader reader = new ReturnPathReader(new ByteArrayInputStream(concat(
                receivedBitmap("pc.ram", 24, bitmap, Wire.RECV_BITMAP_ENDING), ack)), BLOCKS);
        BitSet expected = new BitSet();
        expected.set(0);
        expected.set(2);
        expected.set(64);
        expected.set(129);
        assertThat(reader.next()).isEqualTo(new ReturnPathMessage.ReceivedBitmap("pc.ram", 130, expected));
        assertThat(reader.next()).isEqualTo(new ReturnPathMessage.ResumeAck(1));
        assertThatThrownBy(reader::next).isInstanceOf(EOFException.class).hasMessageContaining("closed");
    }

    @Test
    void malformedRecoveryAnswersAreProtocolErrorsNamingWhatWasExpected() {
        byte[] bitmap = new byte[24];
        assertThatThrownBy(() -> new ReturnPathReader(new ByteArrayInputStream(
                receivedBitmap("pc.ram", 24, bitmap, 0x0123456789ABCDEEL)), BLOCKS).next())
                .isInstanceOf(StreamFormatException.class)
                .hasMessageContaining("expected the ending 0x0123456789abcdef, actual 0x0123456789abcdee");
        assertThatThrownBy(() -> new ReturnPathReader(new ByteArrayInputStream(
                receivedBitmap("pc.ram", 16, new byte[16], Wire.RECV_BITMAP_ENDING)), BLOCKS).next())
                .isInstanceOf(StreamFormatException.class)
                .hasMessageContaining("RECV_BITMAP of pc.ram (130 pages): expected a bitmap of 24 bytes, actual 16");
        assertThatThrownBy(() -> new ReturnPathReader(new ByteArrayInputStream(
                receivedBitmap("pc.ram", -8, new byte[0], Wire.RECV_BITMAP_ENDING)), BLOCKS).next())
                .hasMessageContaining("actual 18446744073709551608");
        assertThatThrownBy(() -> new ReturnPathReader(new ByteArrayInputStream(
                receivedBitmap("vga.vram", 8, new byte[8], Wire.RECV_BITMAP_ENDING)), BLOCKS).next())
                .isInstanceOf(StreamFormatException.class)
                .hasMessageContaining("RECV_BITMAP for unknown RAM block 'vga.vram': expected one of [pc.ram, pc.bios]");
        assertThatThrownBy(() -> new ReturnPathReader(new ByteArrayInputStream(
                receivedBitmap("pc.ram", 8, new byte[8], Wire.RECV_BITMAP_ENDING))).next())
                .as("a reader told no blocks knows none").hasMessageContaining("expected one of []");
        byte[] badCount = {0, (byte) Wire.RP_RECV_BITMAP, 0, 3, 5, 'p', 'c'};
        assertThatThrownBy(() -> new ReturnPathReader(new ByteArrayInputStream(badCount), BLOCKS).next())
                .hasMessageContaining("RECV_BITMAP of 3 bytes: expected 1 + the block name's length");
        byte[] cut = receivedBitmap("pc.ram", 24, bitmap, Wire.RECV_BITMAP_ENDING);
        assertThatThrownBy(() -> new ReturnPathReader(new ByteArrayInputStream(cut, 0, cut.length - 3), BLOCKS).next())
                .isInstanceOf(EOFException.class);
        byte[] ackTwo = {0, (byte) Wire.RP_RESUME_ACK, 0, 4, 0, 0, 0, 2};
        assertThatThrownBy(() -> new ReturnPathReader(new ByteArrayInputStream(ackTwo)).next())
                .hasMessageContaining("RESUME_ACK: expected value 1, actual 2");
        byte[] ackShort = {0, (byte) Wire.RP_RESUME_ACK, 0, 2, 0, 1};
        assertThatThrownBy(() -> new ReturnPathReader(new ByteArrayInputStream(ackShort)).next())
                .hasMessageContaining("RESUME_ACK: expected 4 bytes, actual 2");
    }
}
