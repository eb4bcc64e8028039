/* An AVX2-only x86 CPU, as the processes that preload this library see it (tests/_avx2_only.py).

   onnxruntime (MLAS) and OpenVINO (oneDNN, Xbyak) choose their integer kernels from the CPUID
   instruction once, when they load; neither has a setting that lowers the choice for onnxruntime
   (docs/performance.md, "INT8 on every CPU class"). Linux can make CPUID fault instead
   (arch_prctl ARCH_SET_CPUID, on CPUs and hypervisors with CPUID faulting: /proc/cpuinfo's
   "cpuid_fault"): the SIGSEGV handler below runs the real CPUID and clears the bits of AVX-512,
   AVX-VNNI and AMX, so every library sees an AVX2 machine (AMD EPYC before Zen 4, Intel before
   Skylake-SP), and /proc/cpuinfo read through open() or fopen() loses the same flags, so
   resnet_deploy._machine agrees. The setting survives fork and clone and is reset by execve; the
   preload re-applies it in every child. A handler the program installs for SIGSEGV (pytest's
   faulthandler, the C compiler's crash report) is kept aside and called for every other fault.
*/
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

/* CPUID.(EAX=7,ECX=0): EBX AVX512F DQ IFMA PF ER CD BW VL; ECX VBMI VBMI2 VNNI BITALG VPOPCNTDQ;
   EDX 4VNNIW 4FMAPS VP2INTERSECT AMX-BF16 AVX512-FP16 AMX-TILE AMX-INT8.
   CPUID.(EAX=7,ECX=1): EAX AVX-VNNI AVX512-BF16 AMX-FP16 AVX-IFMA; EDX AVX-VNNI-INT8 AVX-NE-CONVERT
   AMX-COMPLEX AVX10. (Intel SDM vol. 2A, CPUID.) */
#define BIT(n) (1u << (n))
static const uint32_t LEAF7_EBX = BIT(16) | BIT(17) | BIT(21) | BIT(26) | BIT(27) | BIT(28) | BIT(30) | BIT(31);
static const uint32_t LEAF7_ECX = BIT(1) | BIT(6) | BIT(11) | BIT(12) | BIT(14);
static const uint32_t LEAF7_EDX = BIT(2) | BIT(3) | BIT(8) | BIT(22) | BIT(23) | BIT(24) | BIT(25);
static const uint32_t LEAF7_1_EAX = BIT(4) | BIT(5) | BIT(21) | BIT(23);
static const uint32_t LEAF7_1_EDX = BIT(4) | BIT(5) | BIT(8) | BIT(19);

static void real_cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
    syscall(SYS_arch_prctl, ARCH_SET_CPUID, 1);
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
    syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0);
}

static int (*real_sigaction)(int, const struct sigaction *, struct sigaction *);
static struct sigaction program_segv; /* the program's own SIGSEGV handler, SIG_DFL at first */

/* Every SIGSEGV but CPUID's: to the program's handler, or to the default action (death). */
static void pass_on(int sig, siginfo_t *info, void *context) {
    if (program_segv.sa_flags & SA_SIGINFO) {
        program_segv.sa_sigaction(sig, info, context);
        return;
    }
    if (program_segv.sa_handler != SIG_DFL && program_segv.sa_handler != SIG_IGN) {
        program_segv.sa_handler(sig);
        return;
    }
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    real_sigaction(sig, &dfl, NULL);
    if (info->si_code <= 0) raise(sig); /* sent by kill() or raise(): again, to the default action */
    /* a fault repeats on return, and kills */
}

static void on_segv(int sig, siginfo_t *info, void *context) {
    ucontext_t *uc = context;
    greg_t *g = uc->uc_mcontext.gregs;
    const uint8_t *ip = (const uint8_t *)g[REG_RIP];
    if (info->si_code <= 0 || ip[0] != 0x0f || ip[1] != 0xa2) {
        pass_on(sig, info, context);
        return;
    }
    uint32_t leaf = (uint32_t)g[REG_RAX], sub = (uint32_t)g[REG_RCX], r[4];
    real_cpuid(leaf, sub, r);
    if (leaf == 7 && sub == 0) {
        r[1] &= ~LEAF7_EBX;
        r[2] &= ~LEAF7_ECX;
        r[3] &= ~LEAF7_EDX;
    } else if (leaf == 7 && sub == 1) {
        r[0] &= ~LEAF7_1_EAX;
        r[3] &= ~LEAF7_1_EDX;
    }
    g[REG_RAX] = r[0];
    g[REG_RBX] = r[1];
    g[REG_RCX] = r[2];
    g[REG_RDX] = r[3];
    g[REG_RIP] += 2;
}

static int hidden_flag(const char *word, size_t n) {
    static const char *const prefixes[] = {"avx512", "amx", "avx_vnni", "avx_ne_convert", "avx_ifma", "avx10"};
    for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++) {
        size_t k = strlen(prefixes[i]);
        if (n >= k && strncmp(word, prefixes[i], k) == 0) return 1;
    }
    return 0;
}

/* /proc/cpuinfo without the hidden flags, in a memfd. */
static int filtered_cpuinfo(void) {
    int in = (int)syscall(SYS_openat, AT_FDCWD, "/proc/cpuinfo", O_RDONLY | O_CLOEXEC);
    if (in < 0) return -1;
    size_t cap = 1 << 16, len = 0;
    char *text = malloc(cap);
    for (ssize_t got; text && (got = read(in, text + len, cap - len)) > 0;) {
        len += (size_t)got;
        if (len == cap) text = realloc(text, cap *= 2);
    }
    close(in);
    int out = text ? memfd_create("cpuinfo", MFD_CLOEXEC) : -1;
    if (out < 0) { free(text); return -1; }
    for (size_t i = 0; i < len;) {
        size_t end = i;
        while (end < len && text[end] != '\n') end++;
        int flags_line = (end - i > 5) && (strncmp(text + i, "flags", 5) == 0);
        size_t colon = i;
        while (flags_line && colon < end && text[colon] != ':') colon++;
        if (!flags_line || colon == end) {
            write(out, text + i, end - i);
        } else {
            write(out, text + i, colon + 1 - i);
            for (size_t w = colon + 1; w < end;) {
                while (w < end && text[w] == ' ') w++;
                size_t e = w;
                while (e < end && text[e] != ' ') e++;
                if (e > w && !hidden_flag(text + w, e - w)) {
                    write(out, " ", 1);
                    write(out, text + w, e - w);
                }
                w = e;
            }
        }
        if (end < len) write(out, "\n", 1);
        i = end + 1;
    }
    free(text);
    lseek(out, 0, SEEK_SET);
    return out;
}

static int is_cpuinfo(const char *path) { return path && strcmp(path, "/proc/cpuinfo") == 0; }

static int open_at(int dir, const char *path, int flags, mode_t mode) {
    if (is_cpuinfo(path)) return filtered_cpuinfo();
    return (int)syscall(SYS_openat, dir, path, flags, mode);
}

/* The mode argument exists only with O_CREAT or O_TMPFILE (open(2)). */
#define MODE(flags, mode)                                   \
    do {                                                    \
        if ((flags) & (O_CREAT | O_TMPFILE)) {              \
            va_list ap;                                     \
            va_start(ap, flags);                            \
            mode = va_arg(ap, mode_t);                      \
            va_end(ap);                                     \
        }                                                   \
    } while (0)

int open(const char *path, int flags, ...) { mode_t m = 0; MODE(flags, m); return open_at(AT_FDCWD, path, flags, m); }
int open64(const char *path, int flags, ...) { mode_t m = 0; MODE(flags, m); return open_at(AT_FDCWD, path, flags, m); }
int openat(int dir, const char *path, int flags, ...) { mode_t m = 0; MODE(flags, m); return open_at(dir, path, flags, m); }
int openat64(int dir, const char *path, int flags, ...) { mode_t m = 0; MODE(flags, m); return open_at(dir, path, flags, m); }

/* The program's SIGSEGV handlers are kept aside: ours stays installed. */
int sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
    if (sig != SIGSEGV) return real_sigaction(sig, act, old);
    if (old) *old = program_segv;
    if (act) program_segv = *act;
    return 0;
}

sighandler_t signal(int sig, sighandler_t handler) {
    struct sigaction act, old;
    memset(&act, 0, sizeof act);
    act.sa_handler = handler;
    act.sa_flags = SA_RESTART;
    return sigaction(sig, &act, &old) == 0 ? old.sa_handler : SIG_ERR;
}

FILE *fopen(const char *path, const char *how) {
    static FILE *(*real)(const char *, const char *);
    if (is_cpuinfo(path)) {
        int fd = filtered_cpuinfo();
        return fd < 0 ? NULL : fdopen(fd, how);
    }
    if (!real) real = (FILE * (*)(const char *, const char *)) dlsym(RTLD_NEXT, "fopen");
    return real(path, how);
}
FILE *fopen64(const char *path, const char *how) { return fopen(path, how); }

__attribute__((constructor)) static void avx2_only(void) {
    struct sigaction sa;
    real_sigaction = (int (*)(int, const struct sigaction *, struct sigaction *))dlsym(RTLD_NEXT, "sigaction");
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    real_sigaction(SIGSEGV, &sa, NULL);
    if (syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0) != 0) {
        fputs("avx2_only: this CPU cannot make CPUID fault (no cpuid_fault): nothing is hidden\n", stderr);
        _exit(97);
    }
}
