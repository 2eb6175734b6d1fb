/**
 * Virtual clusters (HotRestore, issue 16): restoring communicating VMs so that no member sends to
 * one that does not run yet. Pure code, no QEMU and no threads: the restore dependency graph built
 * from the frames in flight at the cluster's cut ({@link dev.thaw.cluster.RestoreGraph}), the
 * restore line that revises the working-set sizes so that the members start in dependency order
 * ({@link dev.thaw.cluster.RestoreLine}), and the coordinator/cohort protocol's messages and
 * checker ({@link dev.thaw.cluster.CohortMessage}, {@link dev.thaw.cluster.CoordinatorPolicy},
 * {@link dev.thaw.cluster.Coordinator}). The switch the members' QEMUs are joined by is in
 * {@code dev.thaw.cluster.net}.
 */
package dev.thaw.cluster;
