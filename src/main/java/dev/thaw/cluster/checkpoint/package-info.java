/**
 * A virtual cluster's checkpoint: saved whole ({@link dev.thaw.cluster.checkpoint.ClusterSave}: the switch's cut, every member
 * stopped, each saved into its own image, the frames in flight kept) and restored whole
 * ({@link dev.thaw.cluster.checkpoint.ClusterRestore}: the coordinator and a cohort per member in one process, the frames
 * delivered once their receiver runs). {@link dev.thaw.cluster.checkpoint.ClusterManifest} and
 * {@link dev.thaw.cluster.checkpoint.FrameLog} are the checkpoint's format (pure file I/O), and
 * {@link dev.thaw.cluster.checkpoint.RestorePlan} what each strategy does (pure). Above {@code save}, {@code restore} and
 * {@code cluster.live}; {@code thaw cluster save} and {@code restore} call it.
 */
package dev.thaw.cluster.checkpoint;
