package dev.thaw.measure;

import dev.thaw.util.PageCache;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.List;

/** What a restore finds in the host's page cache when it starts. */
public enum CacheState {
    /** Whatever the save and the restores before left there: the saved files mostly cached. */
    WARM("warm"),
    /**
     * The saved files (Thaw's image and RAM file, QEMU's stream and qcow2) evicted, everything else cached (QEMU, its firmware, the
     * guest kernel): a snapshot saved earlier or elsewhere, restored on a host that runs VMs. Other work's pages stay.
     */
    EVICTED("saved files evicted"),
    /** The whole page cache dropped ({@code /proc/sys/vm/drop_caches}, root only): QEMU's own start reads from disk too. */
    COLD("cold");

    private final String label;

    CacheState(String label) {
        this.label = label;
    }

    /** For a table's conditions: "warm", "saved files evicted", "cold". */
    public String label() {
        return label;
    }

    /** From a report's JSON: a name, or the {@code "cold": true/false} that reports had before {@link #EVICTED} existed. */
    @com.fasterxml.jackson.annotation.JsonCreator
    static CacheState fromJson(com.fasterxml.jackson.databind.JsonNode node) {
        if (node.isBoolean()) return node.booleanValue() ? COLD : WARM;
        return valueOf(node.asText());
    }

    /** Brings the page cache into this state before a restore that may read {@code savedFiles} (files or directories). */
    public void prepare(List<Path> savedFiles) {
        switch (this) {
            case WARM -> {}
            case COLD -> QemuBaselines.dropCaches();
            case EVICTED -> {
                try {
                    PageCache.evictTrees(savedFiles);
                } catch (IOException e) {
                    throw new UncheckedIOException("evicting the saved files from the page cache: " + e.getMessage(), e);
                }
            }
        }
    }
}
