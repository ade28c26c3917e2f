/* on_change: see on_change.h. */
#define _GNU_SOURCE /* close_range */
#include "on_change.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* One event waiting for its handler: the environment of the handler and its stdin. */
typedef struct pending {
    char **env; /* NULL-terminated, every string owned */
    char *json; /* the event, a line */
} pending;

/* A handler running: its pid, and what is left of its stdin to write. */
typedef struct running {
    pid_t pid;
    int stdin_fd; /* -1 once written and closed */
    struct event *writable;
    char *json;
    size_t written, len;
} running;

struct on_change {
    struct event_base *base;
    char *command;
    struct event *sigchld;
    running run[ON_CHANGE_RUNNING];
    pending queue[ON_CHANGE_QUEUE];
    size_t head, count; /* the queue, a ring */
    unsigned long long dropped, failed_to_start;
};

static void free_env(char **env) {
    for (size_t i = 0; env && env[i]; i++) free(env[i]);
    free(env);
}

static char *format(const char *fmt, const char *name, const char *value) {
    size_t len = strlen(name) + strlen(value) + 2;
    char *s = malloc(len);
    if (s) snprintf(s, len, fmt, name, value);
    return s;
}

/* The process's environment, without SHAZBOT_EVENT_* of its own, and the event's. Built in
 * the parent: after fork in a process with threads (libcurl's resolver) the child may only
 * call what is async-signal-safe, so it does nothing but dup2 and exec. */
static char **event_env(const shazbot_event *ev) {
    enum { OWN = 9 };
    size_t n = 0;
    while (environ[n]) n++;
    char **env = calloc(n + OWN + 1, sizeof *env);
    if (!env) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "SHAZBOT_EVENT_", 14) != 0 && !(env[k++] = strdup(environ[i]))) goto fail;
    char number[32];
    const struct {
        const char *name;
        const char *value;
        bool is_number;
        long long n;
    } own[OWN] = {
        {"SHAZBOT_EVENT_KIND", ev->kind, false, 0},
        {"SHAZBOT_EVENT_URL", ev->base_url, false, 0},
        {"SHAZBOT_EVENT_SEQ", NULL, true, (long long)ev->seq},
        {"SHAZBOT_EVENT_TIME", NULL, true, ev->time_ms},
        {"SHAZBOT_EVENT_BEFORE", !ev->has_before ? "none" : ev->before_online ? "online" : "offline", false, 0},
        {"SHAZBOT_EVENT_AFTER", !ev->has_after ? "none" : ev->after_online ? "online" : "offline", false, 0},
        {"SHAZBOT_EVENT_LAST_UPDATE", ev->has_after ? NULL : "", ev->has_after, ev->after_last_update},
        {"SHAZBOT_EVENT_MONITOR", (ev->has_after ? ev->after_monitor : ev->before_monitor) ? "true" : "false", false, 0},
        {"SHAZBOT_EVENT_JSON", ev->json, false, 0},
    };
    for (int i = 0; i < OWN; i++) {
        const char *value = own[i].value;
        if (own[i].is_number) {
            snprintf(number, sizeof number, "%lld", own[i].n);
            value = number;
        }
        if (!(env[k++] = format("%s=%s", own[i].name, value))) goto fail;
    }
    return env;
fail:
    free_env(env);
    return NULL;
}

static void close_stdin(running *r) {
    if (r->writable) event_free(r->writable);
    r->writable = NULL;
    if (r->stdin_fd >= 0) close(r->stdin_fd);
    r->stdin_fd = -1;
    free(r->json);
    r->json = NULL;
}

/* Writes what the pipe takes; the rest when it is writable again. A handler that exits
 * without reading gets EPIPE here (SIGPIPE is ignored by the program), which ends the write. */
static void write_stdin(evutil_socket_t fd, short what, void *arg) {
    running *r = arg;
    while (r->written < r->len) {
        ssize_t n = write(r->stdin_fd, r->json + r->written, r->len - r->written);
        if (n > 0) {
            r->written += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return; /* the pipe is full: the write event fires again */
        } else {
            break;
        }
    }
    close_stdin(r);
}

static void start_next(on_change *h);

static bool spawn(on_change *h, running *r, pending *p) {
    int fds[2];
    if (pipe(fds) != 0) return false;
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return false;
    }
    if (pid == 0) {
        /* The child: only async-signal-safe calls until exec. The node's signal mask and
         * ignored signals would be inherited by the handler: a shell that ignores SIGPIPE
         * behaves differently, so both are reset. */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        dup2(fds[0], STDIN_FILENO);
        /* Nothing of the node's (its listening sockets, connections) stays open in the handler. */
        if (close_range(3, ~0U, 0) != 0)
            for (int fd = 3; fd < 4096; fd++) close(fd);
        char *argv[] = {"sh", "-c", h->command, NULL};
        execve("/bin/sh", argv, p->env);
        _exit(127);
    }
    close(fds[0]);
    fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    *r = (running){.pid = pid, .stdin_fd = fds[1], .json = p->json, .len = strlen(p->json)};
    p->json = NULL;
    r->writable = event_new(h->base, fds[1], EV_WRITE | EV_PERSIST, write_stdin, r);
    if (!r->writable || event_add(r->writable, NULL) != 0) close_stdin(r); /* no stdin, still the handler */
    else write_stdin(fds[1], EV_WRITE, r);
    return true;
}

static void finish(on_change *h, running *r, int status) {
    if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
        fprintf(stderr, "clustershazbot serve: --on-change handler (pid %d) exited with status %d\n", (int)r->pid,
                WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        fprintf(stderr, "clustershazbot serve: --on-change handler (pid %d) killed by signal %d\n", (int)r->pid,
                WTERMSIG(status));
    close_stdin(r);
    r->pid = 0;
}

/* SIGCHLD, delivered by libevent on the loop: every handler that has ended is reaped (by its
 * own pid: the program has no other children, but a host might), then the next start. */
static void on_sigchld(evutil_socket_t sig, short what, void *arg) {
    on_change *h = arg;
    for (int i = 0; i < ON_CHANGE_RUNNING; i++) {
        running *r = &h->run[i];
        int status;
        if (r->pid > 0 && waitpid(r->pid, &status, WNOHANG) == r->pid) finish(h, r, status);
    }
    start_next(h);
}

static void start_next(on_change *h) {
    for (int i = 0; i < ON_CHANGE_RUNNING && h->count > 0; i++) {
        running *r = &h->run[i];
        if (r->pid > 0) continue;
        pending *p = &h->queue[h->head];
        h->head = (h->head + 1) % ON_CHANGE_QUEUE;
        h->count--;
        if (!spawn(h, r, p)) {
            h->failed_to_start++;
            fprintf(stderr, "clustershazbot serve: --on-change handler could not start: %s (%llu so far)\n",
                    strerror(errno), h->failed_to_start);
        }
        free_env(p->env);
        free(p->json);
        *p = (pending){0};
    }
}

void on_change_event(const shazbot_event *ev, void *arg) {
    on_change *h = arg;
    if (h->count == ON_CHANGE_QUEUE) {
        /* Counted and told, at powers of two, so that a flood does not flood the log too. */
        h->dropped++;
        if ((h->dropped & (h->dropped - 1)) == 0)
            fprintf(stderr, "clustershazbot serve: --on-change: %d handlers running and %d events queued: "
                            "%llu events dropped so far\n", ON_CHANGE_RUNNING, ON_CHANGE_QUEUE, h->dropped);
        return;
    }
    size_t len = strlen(ev->json);
    pending p = {event_env(ev), malloc(len + 2)};
    if (!p.env || !p.json) {
        free_env(p.env);
        free(p.json);
        h->dropped++;
        return;
    }
    memcpy(p.json, ev->json, len);
    memcpy(p.json + len, "\n", 2);
    h->queue[(h->head + h->count) % ON_CHANGE_QUEUE] = p;
    h->count++;
    start_next(h);
}

on_change *on_change_new(struct event_base *base, const char *command, char *err, size_t err_len) {
    on_change *h = calloc(1, sizeof *h);
    if (!h || !(h->command = strdup(command))) {
        free(h);
        snprintf(err, err_len, "--on-change: out of memory");
        return NULL;
    }
    h->base = base;
    for (int i = 0; i < ON_CHANGE_RUNNING; i++) h->run[i].stdin_fd = -1;
    h->sigchld = evsignal_new(base, SIGCHLD, on_sigchld, h);
    if (!h->sigchld || event_add(h->sigchld, NULL) != 0) {
        snprintf(err, err_len, "--on-change: cannot watch SIGCHLD on the loop");
        on_change_free(h);
        return NULL;
    }
    return h;
}

static bool busy(const on_change *h) {
    if (h->count) return true;
    for (int i = 0; i < ON_CHANGE_RUNNING; i++)
        if (h->run[i].pid > 0) return true;
    return false;
}

static void on_drain_deadline(evutil_socket_t fd, short what, void *arg) { *(bool *)arg = true; }

void on_change_drain(on_change *h, double seconds) {
    bool over = false;
    struct timeval tv = {(time_t)seconds, (suseconds_t)((seconds - (double)(time_t)seconds) * 1e6)};
    struct event *deadline = evtimer_new(h->base, on_drain_deadline, &over);
    if (!deadline) return;
    evtimer_add(deadline, &tv);
    /* A child that ended before its SIGCHLD event was armed is reaped here too. */
    on_sigchld(SIGCHLD, 0, h);
    while (busy(h) && !over && event_base_loop(h->base, EVLOOP_ONCE) == 0) {
    }
    event_free(deadline);
}

void on_change_free(on_change *h) {
    if (!h) return;
    for (int i = 0; i < ON_CHANGE_RUNNING; i++) close_stdin(&h->run[i]);
    for (size_t i = 0; i < h->count; i++) {
        pending *p = &h->queue[(h->head + i) % ON_CHANGE_QUEUE];
        free_env(p->env);
        free(p->json);
    }
    if (h->sigchld) event_free(h->sigchld);
    free(h->command);
    free(h);
}
