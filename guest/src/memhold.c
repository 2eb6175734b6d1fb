/*
 * memhold: a working set of a given size beside a cluster member's tcpstream (HotRestore's premise:
 * a member with a bigger working set takes longer to load).
 *
 *     memhold MIB [SWEEP_MS]
 *
 * Fills MIB MiB with non-zero data that differs from page to page, prints
 *     memhold ready <mib> <pages>
 * and then forever writes one 8-byte word in every page of it, spread over SWEEP_MS (default 500)
 * in 10 ms steps: every page is dirtied twice a second, so a live save's dirty-bit probe sees the
 * whole region in each of its later rounds (the working set), while the writes cost the vCPU only a
 * small share of each step (one page-touching store per page), which leaves tcpstream its CPU.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#define PAGE_BYTES 4096UL
#define STEP_MS 10L

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "memhold: expected MIB [SWEEP_MS], actual %d arguments\n", argc - 1);
        return 2;
    }
    char *end;
    unsigned long mib = strtoul(argv[1], &end, 10);
    if (*end != '\0' || mib == 0 || mib > (1UL << 20)) {
        fprintf(stderr, "memhold: expected MIB 1 to 1048576, actual '%s'\n", argv[1]);
        return 2;
    }
    long sweep_ms = 500;
    if (argc == 3) {
        sweep_ms = strtol(argv[2], &end, 10);
        if (*end != '\0' || sweep_ms < STEP_MS || sweep_ms > 60000) {
            fprintf(stderr, "memhold: expected SWEEP_MS %ld to 60000, actual '%s'\n", STEP_MS, argv[2]);
            return 2;
        }
    }
    size_t bytes = mib << 20, pages = bytes / PAGE_BYTES;
    uint64_t *region = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED) {
        perror("memhold: mmap");
        return 1;
    }
    const size_t words = PAGE_BYTES / sizeof(uint64_t);
    for (size_t p = 0; p < pages; p++) {
        for (size_t w = 0; w < words; w++) region[p * words + w] = (p + 1) * 0x9E3779B97F4A7C15ULL ^ w;
    }
    printf("memhold ready %lu %zu\n", mib, pages);
    fflush(stdout);
    long steps = sweep_ms / STEP_MS;
    size_t per_step = (pages + (size_t)steps - 1) / (size_t)steps;
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    for (uint64_t round = 1;; round++) {
        for (size_t first = 0; first < pages; first += per_step) {
            size_t last = first + per_step < pages ? first + per_step : pages;
            for (size_t p = first; p < last; p++) region[p * words + (round % words)] += round;
            next.tv_nsec += STEP_MS * 1000000L;
            if (next.tv_nsec >= 1000000000L) {
                next.tv_sec++;
                next.tv_nsec -= 1000000000L;
            }
            // Absolute: a step that ran late (the vCPU waited for a host CPU) is not followed by a longer sleep. A clock far
            // ahead (the guest was stopped: a save, a restore) starts the pace afresh instead of catching up without sleeping.
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (now.tv_sec > next.tv_sec + 1) next = now;
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
        }
    }
}
