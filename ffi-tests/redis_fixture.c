/*
 * See redis_fixture.h. tools/redis_fixture.py picks the port (retrying when
 * another process takes it first), starts the server in its own directory,
 * waits for its ready line and prints one JSON line; then it stays, reading
 * commands on its stdin. That stdin is one end of a socket pair, so "stop"
 * can be sent without risking SIGPIPE, and its closing (this process
 * exiting, however it exits) stops the server too.
 */
#include "redis_fixture.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef REDIS_FIXTURE_TOOL
#define REDIS_FIXTURE_TOOL "tools/redis_fixture.py"
#endif

/* Execs the tool in the child, the extra arguments after "--"; never
 * returns. */
static void exec_tool(int in_fd, int out_fd, const char *const *extra) {
    char *argv[6 + REDIS_FIXTURE_MAX_EXTRA + 1];
    size_t argc = 0;
    argv[argc++] = (char *)"python3";
    argv[argc++] = (char *)REDIS_FIXTURE_TOOL;
    argv[argc++] = (char *)"start";
    argv[argc++] = (char *)"--prefix";
    argv[argc++] = (char *)"latchkey-ffi-";
    argv[argc++] = (char *)"--";
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++) argv[argc++] = (char *)extra[i];
    argv[argc] = NULL;
    dup2(in_fd, STDIN_FILENO);
    dup2(out_fd, STDOUT_FILENO);
    execvp("python3", argv);
    _exit(127);
}

/* Reads one line (without its newline) into buf; 0 on success. */
static int read_line(int fd, char *buf, size_t size) {
    size_t used = 0;
    while (used + 1 < size) {
        ssize_t n = read(fd, buf + used, 1);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        if (buf[used] == '\n') {
            buf[used] = '\0';
            return 0;
        }
        used++;
    }
    buf[used] = '\0';
    return -1;
}

/* The value of "name" in the tool's flat JSON line: a number or a string
 * (with \" and \\ escapes), copied into out; 0 on success. */
static int json_field(const char *line, const char *name, char *out, size_t size) {
    char key[64];
    const char *p;
    size_t used = 0;
    snprintf(key, sizeof key, "\"%s\": ", name);
    p = strstr(line, key);
    if (p == NULL) return -1;
    p += strlen(key);
    if (*p == '"') {
        for (p++; *p != '\0' && *p != '"'; p++) {
            if (*p == '\\' && p[1] != '\0') p++;
            if (used + 1 >= size) return -1;
            out[used++] = *p;
        }
        if (*p != '"') return -1;
    } else {
        while (*p != '\0' && *p != ',' && *p != '}') {
            if (used + 1 >= size) return -1;
            out[used++] = *p++;
        }
    }
    out[used] = '\0';
    return 0;
}

int redis_fixture_start(redis_fixture *fixture) {
    return redis_fixture_start_with(fixture, NULL);
}

int redis_fixture_start_with(redis_fixture *fixture, const char *const *extra) {
    int to_tool[2], from_tool[2];
    char line[1024], value[256];
    size_t extras = 0;
    memset(fixture, 0, sizeof *fixture);
    fixture->pid = -1;
    fixture->tool_pid = -1;
    fixture->tool_fd = -1;
    while (extra != NULL && extra[extras] != NULL) extras++;
    if (extras > REDIS_FIXTURE_MAX_EXTRA) {
        fprintf(stderr, "redis_fixture: %zu extra arguments, at most %d\n", extras,
                REDIS_FIXTURE_MAX_EXTRA);
        return -1;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, to_tool) != 0) {
        perror("redis_fixture: socketpair");
        return -1;
    }
    if (pipe(from_tool) != 0) {
        perror("redis_fixture: pipe");
        close(to_tool[0]);
        close(to_tool[1]);
        return -1;
    }
    /* Only the tool may hold these, or the end of input never comes. */
    for (int i = 0; i < 2; i++) {
        fcntl(to_tool[i], F_SETFD, FD_CLOEXEC);
        fcntl(from_tool[i], F_SETFD, FD_CLOEXEC);
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("redis_fixture: fork");
        close(to_tool[0]);
        close(to_tool[1]);
        close(from_tool[0]);
        close(from_tool[1]);
        return -1;
    }
    if (pid == 0) exec_tool(to_tool[1], from_tool[1], extra);
    close(to_tool[1]);
    close(from_tool[1]);
    fixture->tool_pid = pid;
    fixture->tool_fd = to_tool[0];
    int got = read_line(from_tool[0], line, sizeof line);
    /* Nothing more is read: the tool ignores SIGPIPE. */
    close(from_tool[0]);
    if (got == 0 && json_field(line, "port", value, sizeof value) == 0) {
        fixture->port = atoi(value);
        if (json_field(line, "pid", value, sizeof value) == 0) fixture->pid = (pid_t)atoi(value);
        if (json_field(line, "dir", fixture->dir, sizeof fixture->dir) != 0) fixture->dir[0] = '\0';
        if (json_field(line, "tls_port", value, sizeof value) == 0) fixture->tls_port = atoi(value);
        snprintf(fixture->url, sizeof fixture->url, "redis://127.0.0.1:%d", fixture->port);
        if (fixture->port > 0 && fixture->pid > 0) return 0;
    }
    redis_fixture_stop(fixture);
    fprintf(stderr, "redis_fixture: redis-server did not start (python3 %s: %s)\n",
            REDIS_FIXTURE_TOOL, got == 0 ? line : "no answer; its message is above");
    return -1;
}

void redis_fixture_stop(redis_fixture *fixture) {
    if (fixture->tool_fd >= 0) {
        /* The tool kills the server, removes its directory and exits. */
        (void)send(fixture->tool_fd, "stop\n", 5, MSG_NOSIGNAL);
        close(fixture->tool_fd);
        fixture->tool_fd = -1;
    }
    if (fixture->tool_pid > 0) {
        int status = 0;
        while (waitpid(fixture->tool_pid, &status, 0) < 0 && errno == EINTR) {
        }
        if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
            fprintf(stderr, "redis_fixture: cannot run python3 %s\n", REDIS_FIXTURE_TOOL);
        }
        fixture->tool_pid = -1;
    }
    fixture->pid = -1;
    fixture->dir[0] = '\0';
}
