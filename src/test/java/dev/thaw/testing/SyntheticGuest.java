package dev.thaw.testing;

import dev.thaw.migration.RamBlock;
import dev.thaw.migration.SaveStreamHandler;
import dev.thaw.migration.StreamWriter;
import dev.thaw.migration.Wire;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

/**
 * A made-up guest memory (zero pages, duplicated pages, random pages in several blocks) and the
 * migration stream QEMU would write for it when stopped. Also a {@link SaveStreamHandler} that
 * rebuilds such a memory from a stream, so round trips can be compared page by page.
 */
public final class SyntheticGuest implements SaveStreamHandler {
    public static final String MACHINE = "pc-i440fx-7.2";
    public final List<RamBlock> blocks = new ArrayList<>();
    public byte[][][] pages; // [block][page] -> 4096 bytes, or null for a zero page
    public byte[] headerAndConfiguration;
    public String machineType;
    public byte[] deviceState;
    public byte[] vmDescription;
    public int ramSectionId;

    /** A random guest: zeroFraction of pages zero, duplicateFraction copies of earlier pages, the rest random. */
    public static SyntheticGuest random(Random random, int blockCount, int maxPagesPerBlock, double zeroFraction, double duplicateFraction) {
        return random(random, blockCount, 1, maxPagesPerBlock, zeroFraction, duplicateFraction);
    }

    /** The same with at least minPagesPerBlock pages in every block (a test that changes page k needs k + 1). */
    public static SyntheticGuest random(
            Random random, int blockCount, int minPagesPerBlock, int maxPagesPerBlock, double zeroFraction, double duplicateFraction) {
        if (minPagesPerBlock < 1 || minPagesPerBlock > maxPagesPerBlock) {
            throw new IllegalArgumentException("expected 1 <= minPagesPerBlock <= maxPagesPerBlock, actual " + minPagesPerBlock + " and " + maxPagesPerBlock);
        }
        SyntheticGuest g = new SyntheticGuest();
        g.pages = new byte[blockCount][][];
        List<byte[]> pool = new ArrayList<>();
        for (int b = 0; b < blockCount; b++) {
            int count = minPagesPerBlock + random.nextInt(maxPagesPerBlock - minPagesPerBlock + 1);
            g.blocks.add(new RamBlock(b == 0 ? "pc.ram" : "block" + b + "/rom@" + b, count * 4096L, 4096));
            g.pages[b] = new byte[count][];
            for (int p = 0; p < count; p++) {
                double r = random.nextDouble();
                if (r < zeroFraction) continue;
                if (r < zeroFraction + duplicateFraction && !pool.isEmpty()) {
                    g.pages[b][p] = pool.get(random.nextInt(pool.size()));
                    continue;
                }
                byte[] page = new byte[4096];
                if (random.nextBoolean()) {
                    random.nextBytes(page); // incompressible
                } else {
                    for (int i = 0; i < 4096; i += 8) page[i] = (byte) random.nextInt(4); // compressible
                    page[0] |= 1;
                }
                g.pages[b][p] = page;
                pool.add(page);
            }
        }
        g.headerAndConfiguration = configuration(MACHINE);
        g.machineType = MACHINE;
        g.ramSectionId = 2 + random.nextInt(10);
        g.deviceState = new byte[1 + random.nextInt(20_000)];
        random.nextBytes(g.deviceState);
        g.deviceState[0] = Wire.SECTION_FULL;
        g.vmDescription = "{\"page_size\":4096,\"devices\":[]}".getBytes(StandardCharsets.US_ASCII);
        return g;
    }

    public static byte[] configuration(String machine) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.writeBytes(new byte[] {0x51, 0x45, 0x56, 0x4D, 0, 0, 0, 3, Wire.CONFIGURATION});
        byte[] name = machine.getBytes(StandardCharsets.US_ASCII);
        out.writeBytes(new byte[] {0, 0, 0, (byte) name.length});
        out.writeBytes(name);
        return out.toByteArray();
    }

    /** The stream a stopped QEMU would write: every page once, in order, in sections of {@code sectionPages}. */
    public byte[] toStream(int sectionPages) {
        try {
            ByteArrayOutputStream bytes = new ByteArrayOutputStream();
            StreamWriter w = new StreamWriter(bytes, blocks);
            w.raw(headerAndConfiguration);
            w.ramStart(ramSectionId, false);
            int inSection = 0;
            w.openRamSection(ramSectionId, false);
            for (int b = 0; b < blocks.size(); b++) {
                for (int p = 0; p < pages[b].length; p++) {
                    if (pages[b][p] == null) w.zeroPage(b, p);
                    else w.page(b, p, pages[b][p], 0);
                    if (++inSection == sectionPages) {
                        w.closeRamSection(ramSectionId);
                        w.openRamSection(ramSectionId, false);
                        inSection = 0;
                    }
                }
            }
            w.closeRamSection(ramSectionId);
            w.openRamSection(ramSectionId, true);
            w.closeRamSection(ramSectionId);
            w.raw(deviceState);
            w.eof();
            if (vmDescription != null) w.vmDescription(vmDescription);
            w.flush();
            return bytes.toByteArray();
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    // ---- SaveStreamHandler: rebuild from a stream --------------------------------------------

    @Override
    public void configuration(byte[] headerAndConfiguration, String machineType, List<String> validatedCapabilities) {
        this.headerAndConfiguration = headerAndConfiguration;
        this.machineType = machineType;
    }

    @Override
    public void ramBlocks(int sectionId, int sectionVersion, List<RamBlock> list) {
        ramSectionId = sectionId;
        blocks.addAll(list);
        pages = new byte[list.size()][][];
        for (int b = 0; b < list.size(); b++) pages[b] = new byte[list.get(b).pageCount()][];
    }

    @Override
    public void zeroPage(int blockIndex, int pageIndex) {
        pages[blockIndex][pageIndex] = null;
    }

    @Override
    public void page(int blockIndex, int pageIndex, byte[] data, int offset) {
        pages[blockIndex][pageIndex] = Arrays.copyOfRange(data, offset, offset + 4096);
    }

    @Override
    public void deviceState(byte[] fullSections, byte[] vmDescriptionJson) {
        deviceState = fullSections;
        vmDescription = vmDescriptionJson;
    }

    /** Page contents equal, treating an all-zero page and a zero record alike. */
    public static boolean sameMemory(SyntheticGuest a, SyntheticGuest b) {
        if (!a.blocks.equals(b.blocks)) return false;
        for (int blk = 0; blk < a.pages.length; blk++) {
            for (int p = 0; p < a.pages[blk].length; p++) {
                byte[] x = a.pages[blk][p] == null ? new byte[4096] : a.pages[blk][p];
                byte[] y = b.pages[blk][p] == null ? new byte[4096] : b.pages[blk][p];
                if (!Arrays.equals(x, y)) return false;
            }
        }
        return true;
    }
}
