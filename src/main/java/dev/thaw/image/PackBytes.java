package dev.thaw.image;

import java.util.UUID;

/**
 * Where a pack file's bytes come from when they may not all be local yet (a pack being fetched from object storage into
 * a sparse file of its full size): a reader asks for a range before it reads it, and the call returns once those bytes
 * are in the file. Whatever arrives is checked as a local pack is, when read (extent header and payload checksums; the
 * frame and index at open).
 */
@FunctionalInterface
public interface PackBytes {
    /** Every pack wholly local: nothing to wait for. */
    PackBytes LOCAL = (packId, offset, length) -> {};

    /** Returns once bytes {@code [offset, offset + length)} of pack {@code packId} are in its local file; throws otherwise. */
    void require(UUID packId, long offset, long length);
}
