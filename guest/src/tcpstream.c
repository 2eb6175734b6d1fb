/*
 * tcpstream: the cluster member's workload (thaw.net= on the kernel command line). A client
 * streams bytes to a server member over TCP; the server checks every byte as it arrives. Byte i
 * of a stream is byte (i mod 8) of splitmix64(i / 8), little-endian, so the server knows what
 * each byte must be without any state from the client: a lost, duplicated or corrupted byte shows
 * at once, at its offset, however long the stream runs.
 *
 *   tcpstream server PORT              accepts any number of clients (a process each)
 *   tcpstream client HOST PORT BYTES   BYTES a multiple of 8; 0 streams forever
 *
 * Console lines (ttyS0), the host parses them (dev.thaw.guest.ClusterMember):
 *   tcpstream server listening <port>
 *   tcpstream client connected <host>:<port>
 *   tcpstream tx tick <seq> <guest_ns> <bytes>                  every 100 ms, bytes sent so far
 *   tcpstream rx tick <seq> <guest_ns> <bytes> <bad> <peer>     every 100 ms, bytes received so far
 *                                                               and how many of them differ
 *   tcpstream tx done <bytes> <fnv>     the client sent everything and the server closed
 *   tcpstream rx done <bytes> <bad> <fnv> <peer>
 *   tcpstream error <text>
 * <fnv> is FNV-1a over the stream's 64-bit words (a last partial word zero-padded), in hex, so
 * the host compares the two ends' checksums.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUFFER_BYTES (64 * 1024)
#define TICK_NS 100000000ULL
#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static uint64_t word_at(uint64_t index) { /* splitmix64 */
    uint64_t z = index + 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) {
    printf("tcpstream error %s: %s\n", what, strerror(errno));
    fflush(stdout);
    exit(1);
}

static int client(const char *host, int port, uint64_t total) {
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        printf("tcpstream error bad host address %s\n", host);
        return 2;
    }
    if (total % 8 != 0) {
        printf("tcpstream error bytes %" PRIu64 " is not a multiple of 8\n", total);
        return 2;
    }
    int fd;
    int waited = 0;
    /* The server member may boot later: retry until it listens (the host bounds the wait). */
    for (;;) {
        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) die("socket");
        if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0) break;
        if (!waited) {
            printf("tcpstream client waiting for %s:%d (%s)\n", host, port, strerror(errno));
            fflush(stdout);
            waited = 1;
        }
        close(fd);
        usleep(200000);
    }
    printf("tcpstream client connected %s:%d\n", host, port);
    fflush(stdout);
    static uint64_t words[BUFFER_BYTES / 8];
    uint64_t sent = 0, seq = 0, hash = FNV_OFFSET, next_tick = now_ns() + TICK_NS;
    while (total == 0 || sent < total) {
        uint64_t chunk = BUFFER_BYTES;
        if (total != 0 && total - sent < chunk) chunk = total - sent;
        for (uint64_t w = 0; w < chunk / 8; w++) {
            words[w] = word_at(sent / 8 + w);
            hash = (hash ^ words[w]) * FNV_PRIME;
        }
        for (uint64_t off = 0; off < chunk;) {
            ssize_t n = write(fd, (char *)words + off, chunk - off);
            if (n < 0) {
                if (errno == EINTR) continue;
                die("write");
            }
            off += (uint64_t)n;
        }
        sent += chunk;
        uint64_t t = now_ns();
        if (t >= next_tick) {
            printf("tcpstream tx tick %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", seq++, t, sent);
            fflush(stdout);
            next_tick = t + TICK_NS;
        }
    }
    /* Done once the server has read everything and closed: it closes at our end of stream. */
    shutdown(fd, SHUT_WR);
    char sink[256];
    while (read(fd, sink, sizeof sink) > 0) {}
    printf("tcpstream tx done %" PRIu64 " %016" PRIx64 "\n", sent, hash);
    fflush(stdout);
    close(fd);
    return 0;
}

static void serve(int fd, const char *peer) {
    static unsigned char buf[BUFFER_BYTES];
    uint64_t received = 0, bad = 0, seq = 0, hash = FNV_OFFSET, next_tick = now_ns() + TICK_NS;
    uint64_t pending = 0; /* the bytes of the word being assembled, little-endian */
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("read");
        }
        if (n == 0) break;
        for (ssize_t k = 0; k < n;) {
            unsigned shift = (unsigned)(received & 7) * 8;
            if (shift == 0 && n - k >= 8) { /* an aligned whole word */
                uint64_t w;
                memcpy(&w, buf + k, 8);
                uint64_t x = w ^ word_at(received / 8);
                for (; x; x >>= 8) bad += (x & 0xff) != 0;
                hash = (hash ^ w) * FNV_PRIME;
                received += 8;
                k += 8;
                continue;
            }
            if (shift == 0) pending = 0;
            unsigned char b = buf[k++];
            bad += b != (unsigned char)(word_at(received / 8) >> shift);
            pending |= (uint64_t)b << shift;
            received++;
            if ((received & 7) == 0) hash = (hash ^ pending) * FNV_PRIME;
        }
        uint64_t t = now_ns();
        if (t >= next_tick) {
            printf("tcpstream rx tick %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %s\n", seq++, t, received, bad, peer);
            fflush(stdout);
            next_tick = t + TICK_NS;
        }
    }
    if (received & 7) hash = (hash ^ pending) * FNV_PRIME;
    printf("tcpstream rx done %" PRIu64 " %" PRIu64 " %016" PRIx64 " %s\n", received, bad, hash, peer);
    fflush(stdout);
    close(fd);
}

static int server(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_ANY)};
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
    if (listen(fd, 16) < 0) die("listen");
    signal(SIGCHLD, SIG_IGN); /* children are reaped by the kernel */
    printf("tcpstream server listening %d\n", port);
    fflush(stdout);
    for (;;) {
        struct sockaddr_in from;
        socklen_t len = sizeof from;
        int c = accept(fd, (struct sockaddr *)&from, &len);
        if (c < 0) {
            if (errno == EINTR) continue;
            die("accept");
        }
        char peer[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &from.sin_addr, peer, sizeof peer);
        pid_t pid = fork();
        if (pid < 0) die("fork");
        if (pid == 0) {
            close(fd);
            serve(c, peer);
            _exit(0);
        }
        close(c);
    }
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 3 && strcmp(argv[1], "server") == 0) return server(atoi(argv[2]));
    if (argc == 5 && strcmp(argv[1], "client") == 0) return client(argv[2], atoi(argv[3]), strtoull(argv[4], NULL, 10));
    fprintf(stderr, "usage: tcpstream server PORT | tcpstream client HOST PORT BYTES\n");
    return 2;
}
