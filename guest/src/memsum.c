/*
 * memsum: the demo guest's control agent, on a serial port (ttyS1) that the host reaches
 * through a QEMU socket chardev. One request per line, one answer per line:
 *     ping <id>    -> pong <id>
 *     memsum <id> [<first_mib> <mib>]
 *                  -> memsum <id> <hex64 checksum> <bytes>     (the whole region wsbench filled, or
 *                     MiB [first, first + mib) of it: the part beyond wsbench's working set is never
 *                     written after the fill, so its sum can be compared while wsbench runs)
 *     memsum <id> cold
 *                  -> memsum <id> <hex64 checksum> <bytes>     (the pages outside wsbench's working set,
 *                     wherever its layout puts them: the pages its hot map leaves clear)
 *     pause <id>   -> paused <id>     (SIGSTOP to wsbench: its memory stops changing)
 *     resume <id>  -> resumed <id>    (SIGCONT)
 *     disk <id> write <first_mib> <mib> <seed>
 *                  -> disk <id> written <bytes>   (MiB [first, first + mib) of /dev/vda filled with bytes that
 *                     depend on the seed and the offset, O_DIRECT and fsynced: on the disk, not in the cache)
 *     disk <id> sum <first_mib> <mib>
 *                  -> disk <id> <hex64 checksum> <bytes>    (read back with O_DIRECT: what the disk holds)
 *     disk <id> read <first_mib> <mib>
 *                  -> disk <id> <hex64 checksum> <bytes>    (read through the page cache, the device kept open: the
 *                     guest's cache then holds it)
 *     dropcaches <id>
 *                  -> dropcaches <id> 1 <buffers> <cached> <free> <buffers after> <cached after> <free after>
 *                     (kB from /proc/meminfo before and after: sync, then 1 written to /proc/sys/vm/drop_caches, which
 *                     frees the clean page cache; 2 and 3 would also free slab objects, dentries and inodes, whose
 *                     rebuilding costs the restored guest metadata reads for little memory)
 *     tcp <id>     -> tcp <id> Tcp:RetransSegs=<n> TcpExt:TCPTimeouts=<n> TcpExt:TCPLossProbes=<n> TcpExt:TCPSpuriousRTOs=<n>
 *                     (the kernel's TCP counters since boot, from /proc/net/snmp and /proc/net/netstat; -1 for a counter the
 *                     kernel does not have: the cluster evaluation's retransmissions and retransmission timeouts)
 * Errors answer "error <id> <text>". The region is read through /proc/<pid>/mem, so wsbench's
 * memory stays ordinary private anonymous memory.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define CHUNK_BYTES (1024 * 1024)
#define DISK_DEVICE "/dev/vda"

static int port = -1;

static void reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void reply(const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (n > (int)sizeof buf - 2) n = sizeof buf - 2;
    buf[n++] = '\n';
    for (int off = 0; off < n;) {
        ssize_t w = write(port, buf + off, n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        off += w;
    }
}

static int read_region(long *pid, uintptr_t *addr, size_t *bytes, uintptr_t *hot_map) {
    FILE *f = fopen("/run/wsbench.region", "r");
    if (!f) return -1;
    int ok = fscanf(f, "%ld %" SCNuPTR " %zu %" SCNuPTR, pid, addr, bytes, hot_map) == 4;
    fclose(f);
    return ok ? 0 : -1;
}

#define PAGE_BYTES 4096

static void do_memsum(const char *id, long first_mib, long mib, int cold) {
    long pid; uintptr_t addr, hot_addr; size_t bytes;
    if (read_region(&pid, &addr, &bytes, &hot_addr) != 0) { reply("error %s wsbench region not ready", id); return; }
    if (mib > 0) {
        size_t first = (size_t)first_mib << 20, length = (size_t)mib << 20;
        if (first_mib < 0 || first + length > bytes) {
            reply("error %s range: expected MiB [%ld, %ld) inside the %zu-MiB region", id, first_mib, first_mib + mib, bytes >> 20);
            return;
        }
        addr += first;
        bytes = length;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/mem", pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0) { reply("error %s open %s: %s", id, path, strerror(errno)); return; }
    uint8_t *hot = NULL; /* with cold: one bit per page of the region, set for the working set */
    if (cold) {
        size_t map_bytes = (bytes / PAGE_BYTES + 7) / 8;
        hot = malloc(map_bytes);
        ssize_t got = hot ? pread(fd, hot, map_bytes, (off_t)hot_addr) : -1;
        if (got != (ssize_t)map_bytes) {
            reply("error %s read the hot map in %s at %" PRIuPTR ": expected %zu bytes, actual %zd", id, path, hot_addr, map_bytes, got);
            free(hot);
            close(fd);
            return;
        }
    }
    static uint64_t buf[CHUNK_BYTES / sizeof(uint64_t)];
    uint64_t h = 0xCBF29CE484222325ULL;
    size_t summed = 0;
    for (size_t done = 0; done < bytes;) {
        size_t want = bytes - done < CHUNK_BYTES ? bytes - done : CHUNK_BYTES;
        ssize_t got = pread(fd, buf, want, (off_t)(addr + done));
        if (got <= 0 || got % 8 != 0) {
            reply("error %s read %s at %zu: expected %zu bytes, actual %zd", id, path, done, want, got);
            close(fd);
            return;
        }
        for (size_t i = 0; i < (size_t)got / 8; i++) {
            size_t page = (done + i * 8) / PAGE_BYTES;
            if (hot && (hot[page / 8] >> (page % 8) & 1)) continue;
            h = (h ^ buf[i]) * 0x100000001B3ULL;
            h ^= h >> 29;
            summed += 8;
        }
        done += (size_t)got;
    }
    free(hot);
    close(fd);
    reply("memsum %s %016" PRIx64 " %zu", id, h, summed);
}

static void do_signal(const char *id, int sig, const char *answer) {
    long pid; uintptr_t addr, hot_addr; size_t bytes;
    if (read_region(&pid, &addr, &bytes, &hot_addr) != 0) { reply("error %s wsbench region not ready", id); return; }
    if (kill((pid_t)pid, sig) != 0) { reply("error %s kill %ld: %s", id, pid, strerror(errno)); return; }
    reply("%s %s", answer, id);
}

/* Raw block I/O on the guest's first virtio disk: the test guest has no file system on it. O_DIRECT so that a sum
 * reads the disk (after a restore: the overlay and its base) rather than pages cached before the save. */
static void do_disk(const char *id, const char *op, long first_mib, long mib, unsigned long seed) {
    int writing = strcmp(op, "write") == 0, cached = strcmp(op, "read") == 0;
    if (!writing && !cached && strcmp(op, "sum") != 0) { reply("error %s disk: expected write, sum or read, actual '%s'", id, op); return; }
    if (first_mib < 0 || mib <= 0 || mib > 4096) { reply("error %s disk range: expected 0 < mib <= 4096, actual %ld %ld", id, first_mib, mib); return; }
    /* A cached read's descriptor stays open: the kernel drops a block device's page cache at its last close (kill_bdev). */
    static int cached_fd = -1;
    int fd = cached && cached_fd >= 0 ? cached_fd : open(DISK_DEVICE, (writing ? O_RDWR : O_RDONLY) | (cached ? 0 : O_DIRECT));
    if (fd < 0) { reply("error %s open %s: %s", id, DISK_DEVICE, strerror(errno)); return; }
    if (cached) cached_fd = fd;
    uint64_t *buf;
    if (posix_memalign((void **)&buf, 4096, CHUNK_BYTES) != 0) { reply("error %s no memory", id); if (!cached) close(fd); return; }
    uint64_t h = 0xCBF29CE484222325ULL;
    size_t done = 0, bytes = (size_t)mib << 20;
    for (; done < bytes; done += CHUNK_BYTES) {
        off_t at = ((off_t)first_mib << 20) + (off_t)done;
        if (writing) {
            for (size_t i = 0; i < CHUNK_BYTES / 8; i++) {
                uint64_t x = (seed + 1) * 0x9E3779B97F4A7C15ULL ^ ((uint64_t)at + i * 8);
                x ^= x >> 31; x *= 0xBF58476D1CE4E5B9ULL; x ^= x >> 27;
                buf[i] = x;
            }
        }
        ssize_t n = writing ? pwrite(fd, buf, CHUNK_BYTES, at) : pread(fd, buf, CHUNK_BYTES, at);
        if (n != CHUNK_BYTES) {
            reply("error %s %s %s at %lld: expected %d bytes, actual %zd (%s)", id, op, DISK_DEVICE, (long long)at, CHUNK_BYTES, n,
                  n < 0 ? strerror(errno) : "short");
            free(buf);
            if (!cached) close(fd);
            return;
        }
        if (!writing) {
            for (size_t i = 0; i < CHUNK_BYTES / 8; i++) { h = (h ^ buf[i]) * 0x100000001B3ULL; h ^= h >> 29; }
        }
    }
    int synced = writing ? fsync(fd) : 0;
    free(buf);
    if (!cached) close(fd);
    if (synced != 0) { reply("error %s fsync %s: %s", id, DISK_DEVICE, strerror(errno)); return; }
    if (writing) reply("disk %s written %zu", id, done);
    else reply("disk %s %016" PRIx64 " %zu", id, h, done);
}

/* The kB /proc/meminfo gives for Buffers, Cached and MemFree; -1 where absent. */
static int read_meminfo(long long *buffers, long long *cached, long long *free_kb) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return -1;
    char name[64];
    long long kb;
    *buffers = *cached = *free_kb = -1;
    while (fscanf(f, "%63s %lld kB", name, &kb) == 2) {
        if (strcmp(name, "Buffers:") == 0) *buffers = kb;
        else if (strcmp(name, "Cached:") == 0) *cached = kb;
        else if (strcmp(name, "MemFree:") == 0) *free_kb = kb;
    }
    fclose(f);
    return *buffers < 0 || *cached < 0 || *free_kb < 0 ? -1 : 0;
}

/* sync first: drop_caches frees clean pages only, so dirty ones would stay (and be saved). */
static void do_dropcaches(const char *id) {
    long long b0, c0, f0, b1, c1, f1;
    if (read_meminfo(&b0, &c0, &f0) != 0) { reply("error %s /proc/meminfo: expected Buffers, Cached and MemFree", id); return; }
    sync();
    int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
    if (fd < 0) { reply("error %s open /proc/sys/vm/drop_caches: %s", id, strerror(errno)); return; }
    ssize_t w = write(fd, "1\n", 2);
    int saved_errno = errno;
    close(fd);
    if (w != 2) { reply("error %s write /proc/sys/vm/drop_caches: %s", id, w < 0 ? strerror(saved_errno) : "short"); return; }
    if (read_meminfo(&b1, &c1, &f1) != 0) { reply("error %s /proc/meminfo: expected Buffers, Cached and MemFree", id); return; }
    reply("dropcaches %s 1 %lld %lld %lld %lld %lld %lld", id, b0, c0, f0, b1, c1, f1);
}

/*
 * A counter of /proc/net/snmp or /proc/net/netstat: both are pairs of lines, "Prefix: Name1 Name2 ..." then
 * "Prefix: value1 value2 ...". -1 when the file, the prefix or the name is missing.
 */
static long long proc_counter(const char *file, const char *prefix, const char *name) {
    FILE *f = fopen(file, "r");
    if (!f) return -1;
    char *names = NULL, *values = NULL;
    size_t names_cap = 0, values_cap = 0;
    long long found = -1;
    size_t prefix_len = strlen(prefix);
    while (found < 0 && getline(&names, &names_cap, f) > 0 && getline(&values, &values_cap, f) > 0) {
        if (strncmp(names, prefix, prefix_len) != 0 || strncmp(values, prefix, prefix_len) != 0) continue;
        char *ns, *vs;
        char *n = strtok_r(names + prefix_len, " \n", &ns), *v = strtok_r(values + prefix_len, " \n", &vs);
        for (; n && v; n = strtok_r(NULL, " \n", &ns), v = strtok_r(NULL, " \n", &vs)) {
            if (strcmp(n, name) == 0) { found = strtoll(v, NULL, 10); break; }
        }
    }
    free(names);
    free(values);
    fclose(f);
    return found;
}

static void do_tcp(const char *id) {
    reply("tcp %s Tcp:RetransSegs=%lld TcpExt:TCPTimeouts=%lld TcpExt:TCPLossProbes=%lld TcpExt:TCPSpuriousRTOs=%lld", id,
          proc_counter("/proc/net/snmp", "Tcp:", "RetransSegs"), proc_counter("/proc/net/netstat", "TcpExt:", "TCPTimeouts"),
          proc_counter("/proc/net/netstat", "TcpExt:", "TCPLossProbes"), proc_counter("/proc/net/netstat", "TcpExt:", "TCPSpuriousRTOs"));
}

int main(int argc, char **argv) {
    const char *device = argc > 1 ? argv[1] : "/dev/ttyS1";
    port = open(device, O_RDWR | O_NOCTTY);
    if (port < 0) { fprintf(stderr, "memsum: open %s: %s\n", device, strerror(errno)); return 1; }
    struct termios tio;
    if (tcgetattr(port, &tio) == 0) {
        cfmakeraw(&tio);
        cfsetispeed(&tio, B115200);
        cfsetospeed(&tio, B115200);
        tcsetattr(port, TCSANOW, &tio);
    }
    reply("memsum ready");
    char line[256];
    size_t len = 0;
    for (;;) {
        char c;
        ssize_t r = read(port, &c, 1);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) { sleep(1); continue; }
        if (c == '\r') continue;
        if (c != '\n') {
            if (len < sizeof line - 1) line[len++] = c;
            continue;
        }
        line[len] = 0;
        len = 0;
        char cmd[32] = "", id[64] = "-", arg[32] = "";
        long first_mib = 0, mib = 0;
        if (sscanf(line, "%31s %63s %31s", cmd, id, arg) < 1) continue;
        int cold = strcmp(arg, "cold") == 0;
        if (!cold) sscanf(line, "%*s %*s %ld %ld", &first_mib, &mib);
        if (strcmp(cmd, "ping") == 0) reply("pong %s", id);
        else if (strcmp(cmd, "memsum") == 0) do_memsum(id, first_mib, mib, cold);
        else if (strcmp(cmd, "pause") == 0) do_signal(id, SIGSTOP, "paused");
        else if (strcmp(cmd, "resume") == 0) do_signal(id, SIGCONT, "resumed");
        else if (strcmp(cmd, "dropcaches") == 0) do_dropcaches(id);
        else if (strcmp(cmd, "tcp") == 0) do_tcp(id);
        else if (strcmp(cmd, "disk") == 0) {
            unsigned long seed = 0;
            sscanf(line, "%*s %*s %*s %ld %ld %lu", &first_mib, &mib, &seed);
            do_disk(id, arg, first_mib, mib, seed);
        }
        else reply("error %s unknown request '%s', expected ping, memsum, pause, resume, disk, dropcaches or tcp", id, cmd);
    }
}
