package dev.thaw.migration;

import java.util.List;

/** Receives what {@link SaveStreamParser} finds, in stream order. */
public interface SaveStreamHandler {
    /**
     * The stream header and configuration section, verbatim (a restore replays them unchanged).
     *
     * @param machineType            the machine type named in the configuration, e.g. {@code pc-i440fx-7.2}
     * @param validatedCapabilities  capabilities the destination must have identically (usually none)
     */
    void configuration(byte[] headerAndConfiguration, String machineType, List<String> validatedCapabilities);

    /** The RAM block list (the MEM_SIZE record of the RAM START section). */
    void ramBlocks(int sectionId, int sectionVersion, List<RamBlock> blocks);

    /** A page that is all zero bytes. A page may come more than once; the last occurrence wins. */
    void zeroPage(int blockIndex, int pageIndex);

    /** A page's 4096 bytes at {@code data[offset..]}; the array is reused after the call returns. */
    void page(int blockIndex, int pageIndex, byte[] data, int offset);

    /** A command record (OPEN_RETURN_PATH, PING, ...), which a saved image does not keep. */
    default void command(int command, byte[] payload) {}

    /**
     * The device state: the FULL sections after the RAM END section, up to the EOF byte, and the
     * VMDESCRIPTION JSON after it (null when the source suppressed it).
     */
    void deviceState(byte[] fullSections, byte[] vmDescriptionJson);
}
