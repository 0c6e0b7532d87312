/* A plain C fork-per-connection server: the yardstick for bench-server.sh.
 *
 * The least a forking HTTP/1.1 server does: accept, fork, and in the child
 * answer every request on the connection (keep-alive, pipelined requests
 * included) until the client closes or sends `Connection: close`. No
 * parsing beyond finding the end of each head, so the reference server is
 * measured against the cost of the process model itself. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_sigchld(int sig) {
    (void)sig;
    int saved = errno;
    while (waitpid(-1, NULL, WNOHANG) > 0) {}
    errno = saved;
}

static const char keep[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!";
static const char last[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: close\r\n\r\nHello, World!";

static int write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) { if (errno == EINTR) continue; return -1; }
        p += w; n -= (size_t)w;
    }
    return 0;
}

/* Whether the head [head, end) asks to close: a "Connection: close" field. */
static int asks_close(const char *head, const char *end) {
    for (const char *p = head; p + 17 <= end; p++)
        if ((p == head || p[-1] == '\n') && strncasecmp(p, "connection: close", 17) == 0) return 1;
    return 0;
}

static void serve(int c) {
    char buf[16384];
    size_t have = 0;
    for (;;) {
        ssize_t n = read(c, buf + have, sizeof buf - have);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        have += (size_t)n;
        char *start = buf, *stop = buf + have, *end;
        while ((end = memmem(start, (size_t)(stop - start), "\r\n\r\n", 4)) != NULL) {
            end += 4;
            int close_after = asks_close(start, end);
            if (close_after) { write_all(c, last, sizeof last - 1); return; }
            if (write_all(c, keep, sizeof keep - 1)) return;
            start = end;
        }
        have = (size_t)(stop - start);
        if (have == sizeof buf) return; /* a head larger than the buffer */
        memmove(buf, start, have);
    }
}

int main(void) {
    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 1024)) { perror("bind/listen"); return 2; }
    socklen_t len = sizeof a;
    getsockname(ls, (struct sockaddr *)&a, &len);
    printf("listening on http://127.0.0.1:%d\n", ntohs(a.sin_port));
    fflush(stdout);
    struct sigaction sa = {.sa_handler = on_sigchld, .sa_flags = SA_RESTART | SA_NOCLDSTOP};
    sigaction(SIGCHLD, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    for (;;) {
        int c = accept(ls, NULL, NULL);
        if (c < 0) { if (errno == EINTR) continue; perror("accept"); return 1; }
        pid_t pid = fork();
        if (pid == 0) {
            close(ls);
            serve(c);
            close(c);
            _exit(0);
        }
        close(c);
    }
}
