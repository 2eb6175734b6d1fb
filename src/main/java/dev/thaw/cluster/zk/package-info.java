/**
 * A cluster's restore coordinated across processes through ZooKeeper (issue 16 item 5, HotRestore §4.3): the ZooKeeper server the
 * project starts itself ({@link dev.thaw.cluster.zk.ZooKeeperProcess}), the cohort messages' wire form
 * ({@link dev.thaw.cluster.zk.CohortWire}), the coordinator ({@link dev.thaw.cluster.zk.ZkCoordinator}, elected with Curator's
 * leader latch, {@link dev.thaw.cluster.Coordinator} still deciding) and the cohort of one member ({@link dev.thaw.cluster.zk.ZkCohort}).
 * The messages travel in Curator's distributed queues; liveness is ZooKeeper's sessions (ephemeral znodes).
 */
package dev.thaw.cluster.zk;
