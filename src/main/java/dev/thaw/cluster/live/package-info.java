/**
 * A virtual cluster that runs: the cluster switch ({@code dev.thaw.cluster.net}) with one QEMU per
 * member on it, the members' status, and their failures. The QEMU-facing layer on top of the pure
 * {@code dev.thaw.cluster} and the switch; {@code thaw cluster up} and {@code status} call it.
 */
package dev.thaw.cluster.live;
