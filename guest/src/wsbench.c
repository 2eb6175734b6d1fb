/*
 * wsbench: the demo guest's workload.
 *
 * Fills TOTAL MiB with non-zero data that differs from page to page, then forever does random
 * 8-byte reads and writes over a working set of WS MiB (the rest stays cold). Every 100 ms it prints
 *     wsbench tick <seq> <guest_monotonic_ns> <ops_in_interval> <stalled_ns_in_interval>
 * on stdout (the serial console), from which the host computes throughput and TTR.
 *
 * Stalled time: wsbench reads the clock every OPS_PER_CLOCK_CHECK operations (a few microseconds
 * of work); a gap of STALL_NANOS or more between two reads is time the guest did not run its
 * workload (a page the restore has not delivered yet, a read from disk, a vCPU waiting for a host
 * CPU, a timer interrupt that takes long under TCG), and the whole gap is counted. Unlike the
 * operation count, this does not follow the host's memory speed: under TCG on the project's
 * machines the rate of an undisturbed guest swings about 2x over seconds (docs/benchmarks.md),
 * while its stalled share stays at a few percent.
 *
 * LAYOUT says where the working set lies in the region:
 *   contiguous  the first WS MiB;
 *   scattered   WS/TOTAL of the region's 4 KiB pages, chosen at random with a fixed seed by
 *               selection sampling (Knuth's Algorithm S), so every 2 MiB stretch holds about
 *               WS/TOTAL of its pages at random places: a file's readahead (128 KiB and more)
 *               brings in mostly cold pages, and no stride predicts the next hot page.
 * The same seed gives the same set on every boot, so runs compare.
 *
 * TOTAL, WS and LAYOUT come from the kernel command line (wsbench.total_mib=, wsbench.ws_mib=,
 * wsbench.layout=, default contiguous) or from argv[1], argv[2], argv[3]. memsum finds the
 * region through /run/wsbench.region ("pid address bytes hot_map_address"): the hot map has one
 * bit per page of the region, set for the working set's pages, the only ones written after the fill.
 *
 * Under TCG, QEMU resizes its software TLB only when the guest flushes its whole TLB, so the
 * rate would depend on history (seen: 2-4 M ops/s in a freshly booted 1 GiB guest with W=64 MiB,
 * 10-24 M once something had flushed it). Every interval wsbench touches SCRATCH_PAGES scratch
 * pages, then MADV_DONTNEEDs them: more than Linux's single-page flush ceiling (33 pages on
 * x86), so the kernel flushes the whole TLB (a CR3 reload), at which QEMU sizes its TLB to the
 * working set. Four pages (the first version) were flushed one by one and left the rate bimodal.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024UL * 1024UL)
#define PAGE_BYTES 4096UL
#define TICK_NANOS 100000000ULL
#define SCRATCH_PAGES 64
/* 16 operations take 1-3 us here; a restore's demand fault takes 50 us or more, a read from disk far more. */
#define OPS_PER_CLOCK_CHECK 16
#define STALL_NANOS 40000ULL
#define WORDS_PER_PAGE (PAGE_BYTES / sizeof(uint64_t))

static uint64_t monotonic_nanos(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* splitmix64: a bijection, so distinct word indexes give distinct words. */
static uint64_t mix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

/* Copies the value of "key=<value>" in /proc/cmdline into out; returns 0 when absent. */
static int cmdline_value(const char *key, char *out, size_t out_size) {
    char buf[4096];
    FILE *f = fopen("/proc/cmdline", "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    size_t keylen = strlen(key);
    for (char *tok = strtok(buf, " \n"); tok; tok = strtok(NULL, " \n")) {
        if (strncmp(tok, key, keylen) == 0 && tok[keylen] == '=') {
            snprintf(out, out_size, "%s", tok + keylen + 1);
            return 1;
        }
    }
    return 0;
}

/* Reads "key=<number>" from /proc/cmdline; returns fallback when absent. */
static long cmdline_number(const char *key, long fallback) {
    char value[64];
    return cmdline_value(key, value, sizeof value) ? strtol(value, NULL, 10) : fallback;
}

int main(int argc, char **argv) {
    long total_mib = argc > 1 ? strtol(argv[1], NULL, 10) : cmdline_number("wsbench.total_mib", 0);
    long ws_mib = argc > 2 ? strtol(argv[2], NULL, 10) : cmdline_number("wsbench.ws_mib", 0);
    char layout[32] = "contiguous";
    if (argc > 3) snprintf(layout, sizeof layout, "%s", argv[3]);
    else cmdline_value("wsbench.layout", layout, sizeof layout);
    if (total_mib <= 0 || ws_mib <= 0 || ws_mib > total_mib) {
        printf("wsbench error expected 0 < ws_mib <= total_mib, actual total_mib=%ld ws_mib=%ld\n", total_mib, ws_mib);
        return 2;
    }
    int scattered = strcmp(layout, "scattered") == 0;
    if (!scattered && strcmp(layout, "contiguous") != 0) {
        printf("wsbench error expected layout contiguous or scattered, actual layout=%s\n", layout);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    size_t total_bytes = (size_t)total_mib * MIB;
    uint64_t *region = mmap(NULL, total_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED) {
        printf("wsbench error mmap of %zu bytes failed: %s\n", total_bytes, strerror(errno));
        return 1;
    }
    char *scratch = mmap(NULL, SCRATCH_PAGES * PAGE_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (scratch == MAP_FAILED) {
        printf("wsbench error scratch mmap failed: %s\n", strerror(errno));
        return 1;
    }

    /* The working set's pages (their indexes in the region) and the hot map memsum reads. */
    size_t total_pages = total_bytes / PAGE_BYTES, ws_pages = (size_t)ws_mib * MIB / PAGE_BYTES;
    uint32_t *hot_pages = malloc(ws_pages * sizeof(uint32_t));
    uint8_t *hot_map = calloc((total_pages + 7) / 8, 1);
    if (!hot_pages || !hot_map) {
        printf("wsbench error allocating the working set's index of %zu pages failed\n", ws_pages);
        return 1;
    }
    uint64_t pick = 0x2545F4914F6CDD1DULL; /* fixed seed: the same set on every boot */
    for (size_t page = 0, chosen = 0; chosen < ws_pages; page++) {
        /* Algorithm S: take this page with probability (still needed) / (still left). */
        int take = !scattered || (mix64(pick++) >> 11) * 0x1.0p-53 * (double)(total_pages - page) < (double)(ws_pages - chosen);
        if (take) {
            hot_pages[chosen++] = (uint32_t)page;
            hot_map[page / 8] |= (uint8_t)(1u << (page % 8));
        }
    }

    printf("wsbench start total_mib=%ld ws_mib=%ld layout=%s\n", total_mib, ws_mib, layout);
    uint64_t fill_start = monotonic_nanos();
    size_t total_words = total_bytes / sizeof(uint64_t);
    for (size_t i = 0; i < total_words; i++) region[i] = mix64(i) | 1; /* never zero */
    uint64_t fill_nanos = monotonic_nanos() - fill_start;

    FILE *info = fopen("/run/wsbench.region", "w");
    if (info) {
        fprintf(info, "%d %" PRIuPTR " %zu %" PRIuPTR "\n", getpid(), (uintptr_t)region, total_bytes, (uintptr_t)hot_map);
        fclose(info);
    }
    printf("wsbench ready fill_ms=%" PRIu64 "\n", (uint64_t)(fill_nanos / 1000000ULL));

    size_t ws_words = (size_t)ws_mib * MIB / sizeof(uint64_t);
    uint64_t rng = 0x853C49E6748FEA9BULL;
    uint64_t seq = 0, ops = 0, stalled = 0;
    uint64_t last = monotonic_nanos();
    uint64_t next_tick = last + TICK_NANOS;
    for (;;) {
        for (int k = 0; k < OPS_PER_CLOCK_CHECK; k++) {
            rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; /* xorshift64 */
            size_t w = (size_t)(rng % ws_words);
            /* Contiguous: the first ws_words words, exactly as before layouts existed (same rate). */
            size_t idx = scattered ? (size_t)hot_pages[w / WORDS_PER_PAGE] * WORDS_PER_PAGE + w % WORDS_PER_PAGE : w;
            uint64_t v = region[idx];
            /* Keep the word non-zero and distinct per page: vary only the high half. */
            region[idx] = v + (1ULL << 32);
        }
        ops += OPS_PER_CLOCK_CHECK;
        uint64_t now = monotonic_nanos();
        if (now - last >= STALL_NANOS) stalled += now - last;
        last = now;
        if (now >= next_tick) {
            printf("wsbench tick %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", seq++, now, ops, stalled);
            ops = 0;
            stalled = 0;
            for (int p = 0; p < SCRATCH_PAGES; p++) scratch[p * PAGE_BYTES] = (char)seq;
            madvise(scratch, SCRATCH_PAGES * PAGE_BYTES, MADV_DONTNEED);
            /* After a long pause (guest stopped) start a fresh interval instead of catching up. */
            next_tick = now + TICK_NANOS;
            last = monotonic_nanos(); /* the report and the flush are the probe's own time, not a stall */
        }
    }
}
