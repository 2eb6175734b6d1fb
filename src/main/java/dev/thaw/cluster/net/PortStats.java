package dev.thaw.cluster.net;

/**
 * One member's port on the switch, at one moment.
 *
 * @param connected a QEMU is connected to the member's socket
 * @param held frames for the member wait in its queue (hold(), or the switch was cut)
 * @param queuedFrames frames waiting for the member now; {@code queuedBytes} their bytes
 * @param queueBoundFrames the queue's bound in frames; {@code queueBoundBytes} in bytes
 * @param maxQueuedFrames the most frames that ever waited at once
 * @param framesIn frames read from the member (well formed or not); {@code bytesIn} their bytes
 * @param framesOut frames written to the member in full; {@code bytesOut} their bytes, without the length prefixes
 * @param droppedQueueFull frames for the member dropped because its queue was at its bound
 * @param droppedUnconnected frames for the member dropped because nothing was connected and it was not held
 *        (and frames cut off by a disconnection)
 * @param malformedFrames frames from the member shorter than an Ethernet header, dropped
 * @param protocolViolations connections the switch ended because the member sent a length beyond QEMU's frame size
 * @param connections connections accepted on the member's socket
 * @param rejectedConnections connections refused because the member already had one
 * @param preloadedFramesOut frames of a checkpoint ({@code preload}) written to the member in full: all of them once a restored
 *        cluster delivered what was in flight at its save
 */
public record PortStats(String member, boolean connected, boolean held, int queuedFrames, long queuedBytes, int queueBoundFrames,
                        long queueBoundBytes, int maxQueuedFrames, long framesIn, long bytesIn, long framesOut, long bytesOut,
                        long droppedQueueFull, long droppedUnconnected, long malformedFrames, long protocolViolations, long connections,
                        long rejectedConnections, long preloadedFramesOut) {}
