/**
 * Working-set estimation as it runs at save time: the pure estimators of {@code estimate} driven by
 * the host's accessed bits, by a live save ({@code save}) and by a post-save trace, which is a lazy
 * restore ({@code restore}). It sits above both so that {@code save} need not import
 * {@code restore}; the {@code save} command and the bench call it, and print what it reports.
 */
package dev.thaw.estimation;
