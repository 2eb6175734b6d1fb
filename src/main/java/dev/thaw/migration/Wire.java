package dev.thaw.migration;

/** Constants of QEMU's migration stream (see docs/protocol.md). These are QEMU's numbers, not ours. */
public final class Wire {
    private Wire() {}

    public static final int FILE_MAGIC = 0x5145564D; // "QEVM"
    public static final int FILE_VERSION = 3;
    public static final int TARGET_PAGE_BYTES = 4096;
    public static final int TARGET_PAGE_BITS = 12;

    // Record types (one byte).
    public static final int EOF = 0x00;
    public static final int SECTION_START = 0x01;
    public static final int SECTION_PART = 0x02;
    public static final int SECTION_END = 0x03;
    public static final int SECTION_FULL = 0x04;
    public static final int SUBSECTION = 0x05;
    public static final int VMDESCRIPTION = 0x06;
    public static final int CONFIGURATION = 0x07;
    public static final int COMMAND = 0x08;
    public static final int SECTION_FOOTER = 0x7E;

    // Commands (be16).
    public static final int CMD_OPEN_RETURN_PATH = 1;
    public static final int CMD_PING = 2;
    public static final int CMD_POSTCOPY_ADVISE = 3;
    public static final int CMD_POSTCOPY_LISTEN = 4;
    public static final int CMD_POSTCOPY_RUN = 5;
    public static final int CMD_POSTCOPY_RAM_DISCARD = 6;
    public static final int CMD_PACKAGED = 7;
    public static final int CMD_POSTCOPY_RESUME = 9;
    public static final int CMD_RECV_BITMAP = 10;
    public static final int CMD_SWITCHOVER_START = 11; // QEMU 10.0+

    // RAM record flags (low 12 bits of the be64 record header).
    public static final int RAM_FULL = 0x001;
    public static final int RAM_ZERO = 0x002;
    public static final int RAM_MEM_SIZE = 0x004;
    public static final int RAM_PAGE = 0x008;
    public static final int RAM_EOS = 0x010;
    public static final int RAM_CONTINUE = 0x020;
    public static final int RAM_XBZRLE = 0x040;
    public static final int RAM_HOOK = 0x080;
    public static final int RAM_COMPRESS_PAGE = 0x100;
    public static final int RAM_MULTIFD_FLUSH = 0x200;
    public static final long RAM_FLAG_MASK = 0xFFF;

    public static final String RAM_SECTION = "ram";
    public static final int RAM_SECTION_VERSION = 4;

    // Return-path message types (be16), destination -> source.
    public static final int RP_SHUT = 1;
    public static final int RP_PONG = 2;
    public static final int RP_REQ_PAGES_ID = 3;
    public static final int RP_REQ_PAGES = 4;
    public static final int RP_RECV_BITMAP = 5;
    public static final int RP_RESUME_ACK = 6;

    /** The be64 after each received bitmap on the return path (QEMU's RAMBLOCK_RECV_BITMAP_ENDING). */
    public static final long RECV_BITMAP_ENDING = 0x0123456789ABCDEFL;
    /** The only value of RESUME_ACK (QEMU's MIGRATION_RESUME_ACK_VALUE). */
    public static final int RESUME_ACK_VALUE = 1;

    /** A name for a RAM flag in error messages. */
    static String ramFlagName(long flag) {
        return switch ((int) flag) {
            case RAM_FULL -> "FULL (obsolete)";
            case RAM_XBZRLE -> "XBZRLE (the xbzrle capability)";
            case RAM_HOOK -> "HOOK (RDMA)";
            case RAM_COMPRESS_PAGE -> "COMPRESS_PAGE (the compress capability)";
            case RAM_MULTIFD_FLUSH -> "MULTIFD_FLUSH (multifd)";
            default -> String.format("0x%03x", flag);
        };
    }

    /** Iterable sections other than RAM, with the capability that adds them. */
    static String iterableName(String idstr) {
        return switch (idstr) {
            case "block" -> "block migration (the 'block' capability)";
            case "dirty-bitmap" -> "dirty-bitmap migration (the 'dirty-bitmaps' capability)";
            default -> idstr.startsWith("vfio") || idstr.contains("vfio") ? "VFIO device state" : "'" + idstr + "'";
        };
    }
}
