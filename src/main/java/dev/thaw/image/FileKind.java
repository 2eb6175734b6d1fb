package dev.thaw.image;

/** What a framed image file holds; the number is on disk in every file header (0 is never valid). */
public enum FileKind {
    INVALID(0, "invalid"),
    MANIFEST(1, "manifest"),
    PAGE_MAP(2, "page map"),
    EXTENT_TABLE(3, "extent table"),
    DEVICE_STATE(4, "device state"),
    PACK(5, "pack"),
    /** Optional: the working-set estimate and where its pages are laid out in queue order (WorkingSetSection). */
    WORKING_SET(6, "working set"),
    /** A cluster checkpoint's manifest (dev.thaw.cluster.checkpoint): its members, switch state and traffic record. */
    CLUSTER_MANIFEST(7, "cluster manifest"),
    /** The frames a cluster checkpoint's switch held at its cut, delivered after the restore. */
    CLUSTER_FRAMES(8, "cluster frames"),
    /** Format version 3: the page contents an image takes from its disk bases, each a (disk, offset) and the page's SHA-256. */
    DISK_REFS(9, "disk references"),
    /** Not part of an image: a disk base's block index, cached by the base's identity (DiskBlockIndex). */
    DISK_BLOCK_INDEX(10, "disk block index");

    private final int code;
    private final String label;

    FileKind(int code, String label) {
        this.code = code;
        this.label = label;
    }

    public int code() {
        return code;
    }

    public String label() {
        return label;
    }

    public static FileKind of(int code) {
        for (FileKind k : values()) {
            if (k.code == code && k != INVALID) return k;
        }
        return INVALID;
    }
}
