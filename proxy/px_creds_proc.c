/*
 * px_creds_proc.c: one run of a profile's credential_process in the credentials thread.
 *
 * The program runs without a shell (proc_split gives its argv, PATH is searched as the SDKs'
 * subprocess calls do), with stdin on /dev/null, stdout on a pipe read from the loop, stderr
 * shared with sigv4d (the SDKs show the program's messages the same way), no other descriptor,
 * the environment inherited, default signal dispositions and mask, in a process group of its own so
 * a timeout can kill whatever it started. Its exit is noticed through a pidfd (a polling timer
 * where the kernel has none); the answer is parsed once stdout is closed and the program has
 * exited with status 0.
 */
#define _GNU_SOURCE /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "px_common.h"
#include "px_creds_int.h"

extern char **environ;

#define PX_PROC_POLL_MS 20 /* exit polling where there is no pidfd */

static void finish(struct px_creds *c)
{
    if (!c->out_eof || !c->exited)
        return;
    char reason[CRED_MAX_REASON];
    if (WIFSIGNALED(c->status)) {
        snprintf(reason, sizeof(reason), "killed by signal %d", WTERMSIG(c->status));
        px_creds_failed(c, CRED_ERR_PROCESS, reason);
        return;
    }
    if (!WIFEXITED(c->status) || WEXITSTATUS(c->status) != 0) {
        snprintf(reason, sizeof(reason), "exited with status %d",
                 WIFEXITED(c->status) ? WEXITSTATUS(c->status) : -1);
        px_creds_failed(c, CRED_ERR_PROCESS, reason);
        return;
    }
    struct proc_answer ans = {0};
    char msg[256];
    if (c->answer_full) {
        px_creds_failed(c, CRED_ERR_BAD_ANSWER, "more than 64 KiB of output");
        return;
    }
    if (proc_parse_output(c->answer, c->answer_len, &ans, msg, sizeof(msg)) != CRED_OK) {
        snprintf(reason, sizeof(reason), "malformed output: %.250s", msg);
        px_creds_failed(c, CRED_ERR_BAD_ANSWER, reason);
        return;
    }
    px_creds_succeeded(c, ans.creds, ans.expiration);
}

/* Reaps the program if it has exited; true when it has. */
static bool reap(struct px_creds *c)
{
    int status = 0;
    pid_t r = waitpid(c->pid, &status, WNOHANG);
    if (r == 0 || (r < 0 && errno == EINTR))
        return false;
    c->status = r == c->pid ? status : 0;
    c->exited = true;
    c->pid = 0;
    return true;
}

static void exit_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct px_creds *c = arg;
    if (!reap(c)) {
        if (c->pid_fd < 0) { /* polling: look again later */
            struct timeval tv = {.tv_sec = 0, .tv_usec = PX_PROC_POLL_MS * 1000};
            evtimer_add(c->exit_ev, &tv);
        }
        return;
    }
    event_del(c->exit_ev);
    finish(c);
}

/* Reads what the program wrote; the bytes are the secret: only into the wiped answer buffer. */
static void out_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct px_creds *c = arg;
    for (;;) {
        uint8_t scratch[4096];
        size_t room = PROC_MAX_OUTPUT_BYTES - c->answer_len;
        uint8_t *to = room > 0 ? c->answer + c->answer_len : scratch;
        size_t want = room > 0 ? room : sizeof(scratch);
        ssize_t n = read(fd, to, want);
        if (n > 0 && room == 0) {
            c->answer_full = true; /* keep draining so the program is not stuck on a full pipe */
            OPENSSL_cleanse(scratch, (size_t)n);
            continue;
        }
        if (n > 0) {
            c->answer_len += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        break; /* end of file, or an error: nothing more will come */
    }
    event_del(c->out_ev);
    c->out_eof = true;
    finish(c);
}

static bool spawn(struct px_creds *c, char *const argv[], int out_w, char *reason, size_t cap)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE); /* ignored in sigv4d; exec keeps ignored signals ignored */
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGTERM);
    posix_spawnattr_setsigmask(&attr, &none); /* sigv4d's threads block SIGINT and SIGTERM */
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                        POSIX_SPAWN_SETPGROUP);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out_w, 1);
    /* Everything else closed: libevent opens upstream sockets without O_CLOEXEC, and a socket
     * the program inherits stays open for as long as it runs. */
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    int e = posix_spawnp(&c->pid, argv[0], &fa, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (e == 0)
        return true;
    c->pid = 0;
    snprintf(reason, cap, "cannot run %.200s: %s", argv[0], strerror(e));
    return false;
}

static bool watch_exit(struct px_creds *c)
{
    c->pid_fd = (int)syscall(SYS_pidfd_open, c->pid, 0);
    if (c->pid_fd >= 0) {
        c->exit_ev = event_new(c->base, c->pid_fd, EV_READ | EV_PERSIST, exit_cb, c);
        return c->exit_ev != NULL && event_add(c->exit_ev, NULL) == 0;
    }
    c->exit_ev = evtimer_new(c->base, exit_cb, c);
    struct timeval tv = {.tv_sec = 0, .tv_usec = PX_PROC_POLL_MS * 1000};
    return c->exit_ev != NULL && evtimer_add(c->exit_ev, &tv) == 0;
}

void px_creds_proc_start(struct px_creds *c)
{
    char reason[CRED_MAX_REASON];
    struct proc_argv *av = px_xmalloc(sizeof(*av));
    int p[2] = {-1, -1};
    c->out_eof = c->exited = false;
    c->status = 0;
    if (proc_split(sig_slice_from_cstr(c->command), av, reason, sizeof(reason)) != CRED_OK) {
        free(av);
        px_creds_failed(c, CRED_ERR_PROCESS, "the command line is malformed");
        return;
    }
    /* Non-blocking on our side only: the program gets an ordinary blocking stdout. */
    bool ok = pipe2(p, O_CLOEXEC) == 0 && fcntl(p[0], F_SETFL, O_NONBLOCK) == 0;
    if (!ok)
        snprintf(reason, sizeof(reason), "cannot make a pipe: %s", strerror(errno));
    else
        ok = spawn(c, av->argv, p[1], reason, sizeof(reason));
    OPENSSL_cleanse(av, sizeof(*av)); /* the command line may carry a secret */
    free(av);
    if (p[1] >= 0)
        close(p[1]); /* the program holds its own copy: EOF once it (and its children) close */
    c->out_fd = p[0];
    if (ok) {
        c->out_ev = event_new(c->base, c->out_fd, EV_READ | EV_PERSIST, out_cb, c);
        ok = c->out_ev != NULL && event_add(c->out_ev, NULL) == 0 && watch_exit(c);
        if (!ok)
            snprintf(reason, sizeof(reason), "cannot watch the program");
    }
    if (!ok)
        px_creds_failed(c, CRED_ERR_PROCESS, reason);
}

void px_creds_proc_end(struct px_creds *c)
{
    if (c->pid > 0) { /* still running (a timeout, or sigv4d stopping): the whole group goes */
        kill(-c->pid, SIGKILL);
        while (waitpid(c->pid, NULL, 0) < 0 && errno == EINTR) {
        }
        c->pid = 0;
    }
    if (c->out_ev != NULL) {
        event_free(c->out_ev);
        c->out_ev = NULL;
    }
    if (c->exit_ev != NULL) {
        event_free(c->exit_ev);
        c->exit_ev = NULL;
    }
    if (c->out_fd >= 0) {
        close(c->out_fd);
        c->out_fd = -1;
    }
    if (c->pid_fd >= 0) {
        close(c->pid_fd);
        c->pid_fd = -1;
    }
}
