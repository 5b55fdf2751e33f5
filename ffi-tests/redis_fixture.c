/*
 * See redis_fixture.h. The port comes from binding 127.0.0.1:0; since
 * another process may take it before redis-server binds it, a server that
 * exits before it is ready is retried on a new port. Readiness is the
 * server's own log line on its stdout (a pipe), so there are no sleeps.
 */
#include "redis_fixture.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

static int free_port(void) {
    struct sockaddr_in addr;
    socklen_t len = sizeof addr;
    int port = -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0 &&
        getsockname(fd, (struct sockaddr *)&addr, &len) == 0) {
        port = ntohs(addr.sin_port);
    }
    close(fd);
    return port;
}

/* Execs redis-server in the child with stdout on `out_fd`; never returns. */
static void exec_server(const redis_fixture *fixture, int out_fd) {
    char port[16];
    const char *binary = getenv("REDIS_SERVER");
    int null_fd = open("/dev/null", O_RDWR);
#ifdef __linux__
    /* If the test dies, the server goes with it. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
    if (null_fd >= 0) {
        dup2(null_fd, STDIN_FILENO);
        dup2(null_fd, STDERR_FILENO);
    }
    dup2(out_fd, STDOUT_FILENO);
    snprintf(port, sizeof port, "%d", fixture->port);
    if (binary == NULL || binary[0] == '\0') binary = "redis-server";
    execlp(binary, binary, "--port", port, "--bind", "127.0.0.1", "--save", "",
           "--appendonly", "no", "--daemonize", "no", "--dir", fixture->dir,
           "--logfile", "", (char *)NULL);
    _exit(127);
}

/* Reads the server's log until it is ready (1) or has exited (0). */
static int wait_until_ready(int fd) {
    char buf[4096];
    size_t used = 0;
    for (;;) {
        ssize_t n = read(fd, buf + used, sizeof buf - 1 - used);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return 0;
        used += (size_t)n;
        buf[used] = '\0';
        if (strstr(buf, "Ready to accept connections") != NULL) return 1;
        /* Keep the unfinished last line; drop whole lines already seen. */
        char *last = strrchr(buf, '\n');
        if (last != NULL) {
            size_t keep = used - (size_t)(last + 1 - buf);
            memmove(buf, last + 1, keep);
            used = keep;
        } else if (used == sizeof buf - 1) {
            used = 0;
        }
    }
}

int redis_fixture_start(redis_fixture *fixture) {
    const char *tmp = getenv("TMPDIR");
    memset(fixture, 0, sizeof *fixture);
    fixture->pid = -1;
    snprintf(fixture->dir, sizeof fixture->dir, "%s/latchkey-ffi-XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    if (mkdtemp(fixture->dir) == NULL) {
        perror("redis_fixture: mkdtemp");
        return -1;
    }
    for (int attempt = 0; attempt < 10; attempt++) {
        int fds[2];
        fixture->port = free_port();
        if (fixture->port < 0 || pipe(fds) != 0) {
            perror("redis_fixture: port or pipe");
            break;
        }
        /* Only the child's stdout may hold the write end, or EOF never comes. */
        fcntl(fds[0], F_SETFD, FD_CLOEXEC);
        fcntl(fds[1], F_SETFD, FD_CLOEXEC);
        pid_t pid = fork();
        if (pid < 0) {
            perror("redis_fixture: fork");
            close(fds[0]);
            close(fds[1]);
            break;
        }
        if (pid == 0) exec_server(fixture, fds[1]);
        close(fds[1]);
        int ready = wait_until_ready(fds[0]);
        /* The server ignores SIGPIPE, so closing our end only silences its log. */
        close(fds[0]);
        if (ready) {
            fixture->pid = pid;
            snprintf(fixture->url, sizeof fixture->url, "redis://127.0.0.1:%d", fixture->port);
            return 0;
        }
        int status = 0;
        waitpid(pid, &status, 0);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
            fprintf(stderr, "redis_fixture: cannot run redis-server; install it "
                            "(apt-get install redis-server) or set REDIS_SERVER\n");
            break;
        }
        /* Most likely the port was taken meanwhile: try another. */
    }
    fprintf(stderr, "redis_fixture: redis-server did not start\n");
    rmdir(fixture->dir);
    fixture->dir[0] = '\0';
    return -1;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void redis_fixture_stop(redis_fixture *fixture) {
    if (fixture->pid > 0) {
        kill(fixture->pid, SIGTERM);
        while (waitpid(fixture->pid, NULL, 0) < 0 && errno == EINTR) {
        }
        fixture->pid = -1;
    }
    if (fixture->dir[0] != '\0') {
        nftw(fixture->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
        fixture->dir[0] = '\0';
    }
}
