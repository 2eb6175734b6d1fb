/**
 * QEMU's migration stream (QEMU 7.2 through 10.0), as pure code: the constants of the wire format,
 * a parser for the stream QEMU writes when Thaw saves a guest, and a writer for the stream Thaw
 * sends when it restores one. No sockets, no threads, no QEMU: callers hand in streams.
 *
 * <p>Every QEMU-version-specific detail of the format lives here. The byte-level contract is
 * {@code docs/protocol.md}; all integers on the wire are big-endian.
 */
package dev.thaw.migration;
