package dev.thaw.migration;

import java.io.InputStream;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Parses the stream QEMU writes for a {@code migrate} to Thaw: header and configuration, commands,
 * the RAM section (START with the block list, PARTs and END with page records), then the device
 * state, which stays opaque. It parses only the RAM encoding: the device state is everything after
 * the RAM END footer up to the EOF byte, found by reading to the end of the stream and stripping
 * the VMDESCRIPTION trailer.
 *
 * <p>It refuses what a RAM/device split cannot carry: other iterable sections (block migration,
 * dirty bitmaps, VFIO), RAM encodings other than ZERO and PAGE (XBZRLE, compression, multifd),
 * packaged (postcopy) streams, and device state before the RAM END section.
 */
public final class SaveStreamParser {
    /** Device state beyond this is refused (the demo guest's is about 15 KiB). */
    public static final int MAX_DEVICE_STATE_BYTES = 256 << 20;
    private static final int BUFFER_BYTES = 1 << 20;

    private final WireInput in;
    private final SaveStreamHandler handler;
    private final Map<String, Integer> blockIndex = new HashMap<>();
    private List<RamBlock> blocks;
    private int ramSectionId = -1;
    private int lastBlock = -1; // QEMU remembers the last block across sections for CONTINUE

    private SaveStreamParser(InputStream stream, SaveStreamHandler handler) {
        this.in = new WireInput(stream, BUFFER_BYTES);
        this.handler = handler;
    }

    /** Parses the whole stream; returns the number of bytes read. */
    public static long parse(InputStream stream, SaveStreamHandler handler) {
        SaveStreamParser parser = new SaveStreamParser(stream, handler);
        parser.run();
        return parser.in.offset();
    }

    private void run() {
        readHeaderAndConfiguration();
        while (true) {
            long at = in.offset();
            int type = in.peek();
            if (type < 0) {
                throw new StreamFormatException(at, "truncated: expected a record or the RAM END section, actual the end of the stream");
            }
            in.u8("record type");
            switch (type) {
                case Wire.COMMAND -> readCommand(at);
                case Wire.SECTION_START -> readSectionStart(at);
                case Wire.SECTION_PART, Wire.SECTION_END -> {
                    int sid = in.be32("section id");
                    if (sid != ramSectionId) {
                        throw new StreamFormatException(at, "expected a PART/END of the RAM section (id " + ramSectionId
                                + "), actual section id " + sid);
                    }
                    readRamRecords();
                    readFooter(sid);
                    if (type == Wire.SECTION_END) {
                        readDeviceState();
                        return;
                    }
                }
                case Wire.SECTION_FULL -> {
                    in.be32("section id");
                    String idstr = in.countedString("section name");
                    throw new StreamFormatException(at, "device state ('" + idstr + "') before the RAM END section: an unsupported"
                            + " layout (expected all device state after the RAM END section)");
                }
                case Wire.EOF -> throw new StreamFormatException(at, "EOF before the RAM END section");
                default -> throw new StreamFormatException(at, String.format("unknown record type 0x%02x: expected COMMAND,"
                        + " SECTION_START, SECTION_PART or SECTION_END", type));
            }
        }
    }

    private void readHeaderAndConfiguration() {
        int magic = in.be32("file magic");
        if (magic != Wire.FILE_MAGIC) {
            throw new StreamFormatException(0, String.format("not a QEMU migration stream: expected magic 0x%08x ('QEVM'),"
                    + " actual 0x%08x", Wire.FILE_MAGIC, magic));
        }
        int version = in.be32("file version");
        if (version != Wire.FILE_VERSION) {
            throw new StreamFormatException(4, "expected stream version " + Wire.FILE_VERSION + ", actual " + version);
        }
        java.io.ByteArrayOutputStream verbatim = new java.io.ByteArrayOutputStream();
        writeBe32(verbatim, magic);
        writeBe32(verbatim, version);
        String machine = "";
        List<String> capabilities = new ArrayList<>();
        if (in.peek() == Wire.CONFIGURATION) {
            long at = in.offset();
            in.u8("configuration");
            int nameLength = in.be32("machine name length");
            if (nameLength < 0 || nameLength > 4096) {
                throw new StreamFormatException(at, "configuration: expected a machine name length of 0-4096, actual " + nameLength);
            }
            byte[] name = in.bytes(nameLength, "machine name");
            machine = new String(name, java.nio.charset.StandardCharsets.ISO_8859_1);
            verbatim.write(Wire.CONFIGURATION);
            writeBe32(verbatim, nameLength);
            verbatim.writeBytes(name);
            while (in.peek() == Wire.SUBSECTION) {
                long subAt = in.offset();
                in.u8("subsection");
                String sub = in.countedString("subsection name");
                int subVersion = in.be32("subsection version");
                java.io.ByteArrayOutputStream payload = new java.io.ByteArrayOutputStream();
                switch (sub) {
                    case "configuration/target-page-bits" -> {
                        int bits = in.be32("target page bits");
                        if (bits != Wire.TARGET_PAGE_BITS) {
                            throw new StreamFormatException(subAt, "expected target page bits " + Wire.TARGET_PAGE_BITS + ", actual " + bits);
                        }
                        writeBe32(payload, bits);
                    }
                    case "configuration/capabilities" -> {
                        int count = in.be32("capability count");
                        if (count < 0 || count > 64) {
                            throw new StreamFormatException(subAt, "expected 0-64 validated capabilities, actual " + count);
                        }
                        writeBe32(payload, count);
                        for (int i = 0; i < count; i++) {
                            String cap = in.countedString("capability name");
                            capabilities.add(cap);
                            payload.write(cap.length());
                            payload.writeBytes(cap.getBytes(java.nio.charset.StandardCharsets.ISO_8859_1));
                        }
                    }
                    case "configuration/uuid" -> payload.writeBytes(in.bytes(16, "uuid"));
                    default -> throw new StreamFormatException(subAt, "unknown configuration subsection '" + sub + "'");
                }
                verbatim.write(Wire.SUBSECTION);
                verbatim.write(sub.length());
                verbatim.writeBytes(sub.getBytes(java.nio.charset.StandardCharsets.ISO_8859_1));
                writeBe32(verbatim, subVersion);
                verbatim.writeBytes(payload.toByteArray());
            }
        }
        handler.configuration(verbatim.toByteArray(), machine, List.copyOf(capabilities));
    }

    private void readCommand(long at) {
        int command = in.be16("command");
        int length = in.be16("command length");
        byte[] payload = in.bytes(length, "command payload");
        switch (command) {
            case Wire.CMD_PACKAGED, Wire.CMD_POSTCOPY_LISTEN, Wire.CMD_POSTCOPY_RUN, Wire.CMD_POSTCOPY_ADVISE ->
                    throw new StreamFormatException(at, "postcopy command " + command + " in a saved stream: turn postcopy-ram off"
                            + " on the source before saving");
            case Wire.CMD_OPEN_RETURN_PATH ->
                    throw new StreamFormatException(at, "the source opened a return path: turn the return-path capability off"
                            + " before saving (Thaw reads a save to the end of the connection)");
            default -> handler.command(command, payload);
        }
    }

    private void readSectionStart(long at) {
        int sid = in.be32("section id");
        String idstr = in.countedString("section name");
        int instance = in.be32("instance id");
        int version = in.be32("section version");
        if (!Wire.RAM_SECTION.equals(idstr)) {
            throw new StreamFormatException(at, "unsupported iterable section " + Wire.iterableName(idstr)
                    + ": Thaw saves RAM and device state only");
        }
        if (ramSectionId >= 0) {
            throw new StreamFormatException(at, "a second RAM START section (id " + sid + ")");
        }
        if (instance != 0 || version != Wire.RAM_SECTION_VERSION) {
            throw new StreamFormatException(at, "RAM section: expected instance 0 version " + Wire.RAM_SECTION_VERSION
                    + ", actual instance " + instance + " version " + version);
        }
        ramSectionId = sid;
        readRamRecords();
        readFooter(sid);
        if (blocks == null) {
            throw new StreamFormatException(at, "the RAM START section has no block list (MEM_SIZE record)");
        }
    }

    private void readFooter(int sid) {
        long at = in.offset();
        int marker = in.u8("section footer");
        int footerSid = in.be32("section footer id");
        if (marker != Wire.SECTION_FOOTER || footerSid != sid) {
            throw new StreamFormatException(at, String.format("expected section footer 0x7e with id %d, actual 0x%02x with id %d",
                    sid, marker, footerSid));
        }
    }

    private void readRamRecords() {
        while (true) {
            long at = in.offset();
            long header = in.be64("RAM record header");
            long flags = header & Wire.RAM_FLAG_MASK;
            long addr = header & ~Wire.RAM_FLAG_MASK;
            if (flags == Wire.RAM_EOS) {
                return;
            }
            if (flags == Wire.RAM_MEM_SIZE) {
                readBlockList(at, addr);
                continue;
            }
            long kind = flags & ~Wire.RAM_CONTINUE;
            if (kind != Wire.RAM_ZERO && kind != Wire.RAM_PAGE) {
                long unsupported = Long.lowestOneBit(flags & ~(Wire.RAM_CONTINUE | Wire.RAM_ZERO | Wire.RAM_PAGE));
                throw new StreamFormatException(at, "unsupported RAM record flag " + Wire.ramFlagName(unsupported == 0 ? flags : unsupported)
                        + String.format(" (flags 0x%03x): expected ZERO, PAGE, EOS, MEM_SIZE or CONTINUE", flags));
            }
            int block;
            if ((flags & Wire.RAM_CONTINUE) != 0) {
                if (lastBlock < 0) {
                    throw new StreamFormatException(at, "a CONTINUE page record before any page record named its block");
                }
                block = lastBlock;
            } else {
                String name = in.countedString("RAM block name");
                Integer index = blockIndex.get(name);
                if (index == null) {
                    throw new StreamFormatException(at, "page record for unknown RAM block '" + name + "': expected one of "
                            + blockIndex.keySet());
                }
                block = index;
                lastBlock = block;
            }
            RamBlock b = blocks.get(block);
            if (Long.compareUnsigned(addr, b.usedByteSize()) >= 0) { // unsigned: an address with the top bit set is not below it
                throw new StreamFormatException(at, "page offset 0x" + Long.toHexString(addr) + " in RAM block '" + b.name()
                        + "': expected below its length 0x" + Long.toHexString(b.usedByteSize()));
            }
            int pageIndex = (int) (addr / Wire.TARGET_PAGE_BYTES);
            if (kind == Wire.RAM_ZERO) {
                int fill = in.u8("zero page fill byte");
                if (fill == 0) {
                    handler.zeroPage(block, pageIndex);
                } else {
                    // Older sources may encode a uniform non-zero page this way; keep it as a page.
                    byte[] uniform = new byte[Wire.TARGET_PAGE_BYTES];
                    java.util.Arrays.fill(uniform, (byte) fill);
                    handler.page(block, pageIndex, uniform, 0);
                }
            } else {
                int window = in.window(Wire.TARGET_PAGE_BYTES, "page data");
                handler.page(block, pageIndex, in.buffer(), window);
            }
        }
    }

    private void readBlockList(long at, long totalBytes) {
        if (blocks != null) {
            throw new StreamFormatException(at, "a second RAM block list (MEM_SIZE record)");
        }
        if (Long.compareUnsigned(totalBytes, RamBlock.MAX_USED_BYTE_SIZE) > 0) {
            throw new StreamFormatException(at, "RAM block list: expected at most " + RamBlock.MAX_USED_BYTE_SIZE + " bytes (1 TiB) of RAM,"
                    + " actual " + Long.toUnsignedString(totalBytes));
        }
        List<RamBlock> list = new ArrayList<>();
        long sum = 0;
        while (sum < totalBytes) {
            long entryAt = in.offset();
            String name = in.countedString("RAM block name");
            long used = in.be64("RAM block length");
            try {
                list.add(new RamBlock(name, used, Wire.TARGET_PAGE_BYTES));
            } catch (IllegalArgumentException e) {
                throw new StreamFormatException(entryAt, e.getMessage());
            }
            if (blockIndex.put(name, list.size() - 1) != null) {
                throw new StreamFormatException(entryAt, "RAM block '" + name + "' listed twice");
            }
            sum += used;
        }
        if (sum != totalBytes) {
            throw new StreamFormatException(at, "RAM block list: expected lengths adding up to " + totalBytes + ", actual " + sum);
        }
        if (list.isEmpty()) { // a MEM_SIZE of 0: no QEMU guest has no RAM, and an image of none restores nothing
            throw new StreamFormatException(at, "RAM block list: expected at least one block, actual none (MEM_SIZE 0)");
        }
        blocks = List.copyOf(list);
        handler.ramBlocks(ramSectionId, Wire.RAM_SECTION_VERSION, blocks);
    }

    private void readDeviceState() {
        long start = in.offset();
        byte[] rest = in.rest(MAX_DEVICE_STATE_BYTES, "device state");
        int end = rest.length;
        byte[] vmdesc = null;
        int trailer = findTrailer(rest);
        if (trailer >= 0) {
            vmdesc = java.util.Arrays.copyOfRange(rest, trailer + 5, rest.length);
            end = trailer;
        }
        if (end == 0 || rest[end - 1] != Wire.EOF) {
            throw new StreamFormatException(start + end, "truncated: expected the device state to end with the EOF byte"
                    + " (and an optional VMDESCRIPTION), actual " + (end == 0 ? "no device state at all" : "no EOF byte"));
        }
        byte[] device = java.util.Arrays.copyOf(rest, end - 1);
        if (device.length > 0 && (device[0] & 0xFF) != Wire.SECTION_FULL) {
            throw new StreamFormatException(start, String.format("device state: expected a FULL section (0x04) after the RAM"
                    + " END section, actual record type 0x%02x", device[0] & 0xFF));
        }
        handler.deviceState(device, vmdesc);
    }

    /** Index of the VMDESCRIPTION byte of a trailer {@code 00 06 be32(len) json} that runs exactly to the end, or -1. */
    static int findTrailer(byte[] data) {
        for (int p = data.length - 6; p >= 1; p--) {
            if (data[p] != Wire.VMDESCRIPTION || data[p - 1] != Wire.EOF || data[p + 5] != '{') continue;
            long length = ((data[p + 1] & 0xFFL) << 24) | ((data[p + 2] & 0xFFL) << 16) | ((data[p + 3] & 0xFFL) << 8) | (data[p + 4] & 0xFFL);
            if (length == data.length - p - 5L) return p;
        }
        return -1;
    }

    private static void writeBe32(java.io.ByteArrayOutputStream out, int v) {
        out.write(v >>> 24);
        out.write(v >>> 16);
        out.write(v >>> 8);
        out.write(v);
    }
}
