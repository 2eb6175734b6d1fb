/*
 * freemem: allocates up to N MiB of anonymous memory, writes every page with data that is neither
 * zero nor repeated (so that, kept, each page would be stored as it is), frees it all and exits.
 * The guest has then "freed most of its memory" (SonicShot's case): without a free-page-reporting
 * balloon those pages keep their data in QEMU's RAM and a save stores them; with it the guest
 * kernel reports them free and QEMU discards them, so they read as zero.
 *
 *   freemem MIB     prints "freemem touched M MiB in S s, freed" (M is MIB, or less: at most
 *                   MemAvailable - 24 MiB, so that the guest does not run out of memory)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static long mem_available_mib(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    long kib = -1;
    if (!f) return -1;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "MemAvailable: %ld kB", &kib) == 1) break;
    }
    fclose(f);
    return kib < 0 ? -1 : kib / 1024;
}

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 2 || atol(argv[1]) <= 0) {
        fprintf(stderr, "freemem error: expected freemem MIB (MIB > 0), actual %d arguments%s%s\n", argc - 1,
                argc > 1 ? ", the first " : "", argc > 1 ? argv[1] : "");
        return 2;
    }
    long mib = atol(argv[1]);
    long available = mem_available_mib();
    // The reserve keeps the page cache and the kernel's own allocations going while the rest is taken.
    if (available > 0 && mib > available - 24) mib = available - 24;
    if (mib <= 0) {
        fprintf(stderr, "freemem error: expected some memory available, actual MemAvailable %ld MiB\n", available);
        return 1;
    }
    size_t bytes = (size_t)mib << 20;
    double start = now_seconds();
    uint64_t *mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        perror("freemem error: mmap");
        return 1;
    }
    // xorshift64: every 8-byte word differs, so no page is zero or a duplicate of another.
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < bytes / sizeof *mem; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        mem[i] = x;
    }
    munmap(mem, bytes);
    printf("freemem touched %ld MiB in %.2f s, freed\n", mib, now_seconds() - start);
    fflush(stdout);
    return 0;
}
