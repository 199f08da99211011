/*
 * alloc_count.c: an LD_PRELOAD shim for test_proxy_alloc.py. It counts the heap allocations
 * (malloc, calloc, realloc, aligned_alloc, posix_memalign) whose caller is code in the main
 * executable, i.e. sigv4d's own code (proxy, providers, signer, llhttp are linked in
 * statically), and not those made inside shared libraries such as libevent's buffer chains or
 * OpenSSL. After each counted allocation the count is written, as a fixed-width decimal, at
 * offset 0 of the file named by $SIGV4D_ALLOC_COUNT_FILE.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <link.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);
static int (*real_posix_memalign)(void **, size_t, size_t);

#define MAX_RANGES 16
static uintptr_t range_lo[MAX_RANGES], range_hi[MAX_RANGES];
static int n_ranges;
static atomic_ulong count;
static int out_fd = -1;

/* dlsym may allocate before real_calloc is known: serve that from a static arena. */
static _Alignas(16) unsigned char boot[4096];
static size_t boot_used;

static int main_program_ranges(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    (void)data;
    /* The first object is the main program. */
    for (int i = 0; i < info->dlpi_phnum && n_ranges < MAX_RANGES; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
            range_lo[n_ranges] = info->dlpi_addr + ph->p_vaddr;
            range_hi[n_ranges] = range_lo[n_ranges] + ph->p_memsz;
            n_ranges++;
        }
    }
    return 1;
}

__attribute__((constructor)) static void init(void)
{
    real_calloc = dlsym(RTLD_NEXT, "calloc");
    real_malloc = dlsym(RTLD_NEXT, "malloc");
    real_realloc = dlsym(RTLD_NEXT, "realloc");
    real_aligned_alloc = dlsym(RTLD_NEXT, "aligned_alloc");
    real_posix_memalign = dlsym(RTLD_NEXT, "posix_memalign");
    dl_iterate_phdr(main_program_ranges, NULL);
    const char *path = getenv("SIGV4D_ALLOC_COUNT_FILE");
    if (path != NULL)
        out_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
}

static void note(void *caller)
{
    uintptr_t a = (uintptr_t)caller;
    int ours = 0;
    for (int i = 0; i < n_ranges; i++)
        if (a >= range_lo[i] && a < range_hi[i])
            ours = 1;
    if (!ours)
        return;
    unsigned long n = atomic_fetch_add(&count, 1) + 1;
    if (out_fd < 0)
        return;
    char buf[21];
    for (int i = 19; i >= 0; i--) {
        buf[i] = (char)('0' + n % 10);
        n /= 10;
    }
    buf[20] = '\n';
    (void)pwrite(out_fd, buf, sizeof(buf), 0);
}

void *calloc(size_t n, size_t size)
{
    if (real_calloc == NULL) {
        size_t want = (n * size + 15) & ~(size_t)15;
        if (boot_used + want > sizeof(boot))
            return NULL;
        void *p = boot + boot_used; /* static memory is zeroed */
        boot_used += want;
        return p;
    }
    note(__builtin_return_address(0));
    return real_calloc(n, size);
}

void *malloc(size_t n)
{
    if (real_malloc == NULL)
        return calloc(1, n);
    note(__builtin_return_address(0));
    return real_malloc(n);
}

void *realloc(void *p, size_t n)
{
    note(__builtin_return_address(0));
    return real_realloc(p, n);
}

void *aligned_alloc(size_t align, size_t n)
{
    note(__builtin_return_address(0));
    return real_aligned_alloc(align, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    note(__builtin_return_address(0));
    return real_posix_memalign(out, align, n);
}

void free(void *p)
{
    static void (*real_free)(void *);
    if ((unsigned char *)p >= boot && (unsigned char *)p < boot + sizeof(boot))
        return;
    if (real_free == NULL)
        real_free = dlsym(RTLD_NEXT, "free");
    real_free(p);
}
