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
    /**
     * The whole page cache dropped ({@code /proc/sys/vm/drop_caches}, root only): QEMU's own start reads from disk too. Then
     * {@link #SETTLE_AFTER_DROP} passes, so that on a VM host with free-page reporting the memory the drop freed is back with
     * the hypervisor, as on a host that idled before the restore: whatever a restore then allocates it pays to have backed
     * again (about 6 ms per 2 MiB here; docs/benchmarks.md, eighteenth session).
     */
    COLD("cold");

    /** The kernel reports free pages to the hypervisor 2 s after they were freed (page_reporting's delay); with a margin. */
    static final java.time.Duration SETTLE_AFTER_DROP = java.time.Duration.ofSeconds(3);

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
            case COLD -> {
                QemuBaselines.dropCaches();
                try {
                    Thread.sleep(SETTLE_AFTER_DROP);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IllegalStateException("interrupted while the dropped page cache settled", e);
                }
            }
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
