/**
 * The cluster network: {@link dev.thaw.cluster.net.ClusterSwitch}, the virtual Ethernet switch the
 * members' QEMUs connect to (QEMU 7.2's stream netdev over one unix socket per member), with its
 * traffic record, per-member hold and release, and the cut that yields the frames in flight of a
 * cluster checkpoint. The only package of {@code dev.thaw.cluster} with threads.
 */
package dev.thaw.cluster.net;
