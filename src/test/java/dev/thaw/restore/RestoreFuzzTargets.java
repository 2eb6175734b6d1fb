package dev.thaw.restore;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.thaw.estimate.PageRef;
import dev.thaw.estimate.WorkingSet;
import dev.thaw.fuzz.FuzzTarget;
import dev.thaw.fuzz.JsonMutator;
import dev.thaw.fuzz.Mutator;
import dev.thaw.image.CheckpointImage;
import dev.thaw.image.ImageRoundTripTest;
import dev.thaw.image.ImageWriter;
import dev.thaw.migration.MigrationFuzzTargets;
import dev.thaw.migration.RamBlock;
import dev.thaw.migration.ReturnPathMessage;
import dev.thaw.migration.ReturnPathReader;
import dev.thaw.migration.StreamFormatException;
import dev.thaw.migration.Wire;
import dev.thaw.testing.SyntheticGuest;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * What a restore reads that it did not write in this run: the destination QEMU's return path (read by
 * {@link ReturnPathReader}, each page request checked by {@link PostcopyRestore#validate}), and the traces and event
 * logs earlier restores left beside the image ({@link RestoreTraces}, {@link RestoreEventLog}, {@link RestoreTimeline}).
 */
public final class RestoreFuzzTargets {
    private RestoreFuzzTargets() {}

    private static final List<RamBlock> BLOCKS = List.of(new RamBlock("pc.ram", 64 * 4096L, 4096),
            new RamBlock("/rom@etc/acpi/tables", 32 * 4096L, 4096), new RamBlock("huge.ram", 4L << 21, 2 << 20));

    public static FuzzTarget returnPath() {
        Map<String, Integer> index = new HashMap<>();
        for (int i = 0; i < BLOCKS.size(); i++) index.put(BLOCKS.get(i).name(), i);
        ByteArrayOutputStream a = new ByteArrayOutputStream();
        message(a, Wire.RP_PONG, be(4, 1));
        requestWithId(a, "pc.ram", 5 * 4096L, 4096);
        message(a, Wire.RP_REQ_PAGES, concat(be(8, 6 * 4096L), be(4, 4096)));
        requestWithId(a, "huge.ram", 2L << 21, 2 << 20);
        message(a, Wire.RP_SHUT, be(4, 0));
        // Postcopy recovery: a received bitmap per block (64 pages: 8 bytes; 32: rounded up to 8; 4 huge pages: 2048 bits),
        // the RESUME_ACK, then requests again.
        ByteArrayOutputStream c = new ByteArrayOutputStream();
        receivedBitmap(c, "pc.ram", be(8, 0x00F0_0000_0000_0F0FL));
        receivedBitmap(c, "/rom@etc/acpi/tables", be(8, 1));
        receivedBitmap(c, "huge.ram", new byte[256]);
        message(c, Wire.RP_RESUME_ACK, be(4, Wire.RESUME_ACK_VALUE));
        requestWithId(c, "pc.ram", 7 * 4096L, 4096);
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        requestWithId(b, "/rom@etc/acpi/tables", 31 * 4096L, 4096);
        message(b, Wire.RP_REQ_PAGES, concat(be(8, 0), be(4, 4096)));
        return new FuzzTarget("return-path", List.of(a.toByteArray(), b.toByteArray(), c.toByteArray()), Mutator::mutate,
                input -> {
            ReturnPathReader reader = new ReturnPathReader(MigrationFuzzTargets.trickle(input), BLOCKS);
            while (true) {
                ReturnPathMessage m;
                try {
                    m = reader.next();
                } catch (EOFException e) {
                    if (e.getMessage().contains("closed")) return; // the clean end, between messages
                    throw e;
                }
                if (m instanceof ReturnPathMessage.PageRequest r) PostcopyRestore.validate(BLOCKS, index, r);
                if (m instanceof ReturnPathMessage.Shut) return;
            }
        }, List.of(StreamFormatException.class, EOFException.class));
    }

    private static void receivedBitmap(ByteArrayOutputStream out, String block, byte[] bitmap) {
        byte[] name = block.getBytes(StandardCharsets.ISO_8859_1);
        message(out, Wire.RP_RECV_BITMAP, concat(new byte[] {(byte) name.length}, name));
        out.writeBytes(concat(be(8, bitmap.length), bitmap, be(8, Wire.RECV_BITMAP_ENDING)));
    }

    private static void requestWithId(ByteArrayOutputStream out, String block, long offset, int length) {
        byte[] name = block.getBytes(StandardCharsets.ISO_8859_1);
        message(out, Wire.RP_REQ_PAGES_ID, concat(be(8, offset), be(4, length), new byte[] {(byte) name.length}, name));
    }

    private static void message(ByteArrayOutputStream out, int type, byte[] payload) {
        out.writeBytes(be(2, type));
        out.writeBytes(be(2, payload.length));
        out.writeBytes(payload);
    }

    private static byte[] be(int width, long v) {
        ByteBuffer b = ByteBuffer.allocate(8).putLong(v);
        return java.util.Arrays.copyOfRange(b.array(), 8 - width, 8);
    }

    private static byte[] concat(byte[]... parts) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (byte[] p : parts) out.writeBytes(p);
        return out.toByteArray();
    }

    /**
     * A trace beside a valid image: read as {@code thaw timeline} does, and turned into the working set a ws restore
     * would use, whose every page must then lie inside the image (it goes to QEMU as page addresses).
     */
    public static FuzzTarget trace(Path work) throws IOException {
        Path imageDir = work.resolve("traced");
        ImageRoundTripTest.saveInto(imageDir, SyntheticGuest.random(new Random(7), 2, 4, 40, 0.2, 0.1), ImageWriter.Options.defaults());
        CheckpointImage image = CheckpointImage.open(imageDir); // read only; left open for the run, like a restore's
        Path traces = RestoreTraces.directoryFor(imageDir);
        Files.createDirectories(traces);
        Path file = traces.resolve("000001-lazy-0123abcd.json");
        ObjectMapper json = new ObjectMapper();
        byte[] seed = json.writeValueAsBytes(new RestoreTraces.Trace("lazy", image.manifest().imageId(), Instant.now().toString(), 0.4, 1.5,
                3, List.of(new int[] {0, 1}, new int[] {1, 3}), List.of(new long[] {0, 2, 1000}, new long[] {1, 0, 2000}, new long[] {0, 1, 3000})));
        byte[] emptySeed = json.writeValueAsBytes(new RestoreTraces.Trace("ws", image.manifest().imageId(), Instant.now().toString(), 0.1, 0.2,
                0, List.of(), List.of()));
        return new FuzzTarget("restore-trace", List.of(seed, emptySeed), JsonMutator::mutate, input -> {
            Files.write(file, input);
            RestoreTraces.read(file);
            for (WorkingSetChoice.Source source : WorkingSetChoice.Source.values()) {
                var chosen = Restorer.workingSet(image, source);
                if (chosen.isEmpty()) continue;
                WorkingSet ws = chosen.get().workingSet();
                for (PageRef p : ws.pages()) {
                    if (p.block() >= image.ramBlocks().size() || p.page() >= image.ramBlocks().get(p.block()).pageCount()) {
                        throw new AssertionError("the learned working set holds " + p + ", outside the image's blocks " + image.ramBlocks());
                    }
                }
                Restorer.plan(ws, WorkingSetChoice.defaults());
            }
        }, List.of(RestoreException.class));
    }

    /** A restore's event log, summarized as {@code thaw timeline} does. */
    public static FuzzTarget eventLog(Path work) throws IOException {
        Path file = work.resolve("000001-lazy-0123abcd.events");
        RestoreEventLog log = new RestoreEventLog();
        RestoreEventLog.Type[] types = RestoreEventLog.Type.values();
        long t = 0;
        for (int i = 0; i < 40; i++) {
            t += 1_000_000 + i * 7919L;
            log.add(types[1 + i % (types.length - 1)], i % 3, i * 13L, t);
        }
        log.write(file);
        byte[] seed = Files.readAllBytes(file);
        return new FuzzTarget("restore-event-log", List.of(seed), Mutator::mutate, input -> {
            Files.write(file, input);
            RestoreTimeline.of(RestoreEventLog.read(file));
        }, List.of(IOException.class));
    }
}
