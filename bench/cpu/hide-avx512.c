/*
 * Preloaded into a benchmark (LD_PRELOAD), hides AVX-512 from it: the process answers "AVX2 and FMA, no AVX-512"
 * to every CPUID, so onnxruntime's MLAS, OpenBLAS and PyTorch pick the kernels they pick on an AVX2-only machine,
 * on this machine's cores. bench/common.mjs builds it and re-runs a bench under it (--isa avx2).
 *
 * How: Linux's CPUID faulting (arch_prctl ARCH_SET_CPUID, /proc/cpuinfo flag cpuid_fault) makes each cpuid
 * instruction raise SIGSEGV; the handler runs the real cpuid, clears the AVX-512 bits of leaf 7 and steps over the
 * instruction. The setting is per thread, inherited by new threads and reset by exec (a child process preloads
 * this again). Programs that install their own SIGSEGV handler (Node does, for WebAssembly bounds checks) get it
 * chained behind ours. Code that read CPUID before this library's constructor ran (the dynamic loader, so glibc's
 * string functions) still uses AVX-512: it is the BLAS kernels this is for.
 */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <dlfcn.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);
static sigaction_fn real_sigaction;
/* The SIGSEGV handler the program asked for, called for every fault that is not a cpuid. */
static struct sigaction program_handler;

static int cpuid_enabled(int on) { return syscall(SYS_arch_prctl, ARCH_SET_CPUID, on); }

#define BIT(n) (1u << (n))
/* Leaf 7 sub-leaf 0: EBX AVX512F, DQ, IFMA, PF, ER, CD, BW, VL; ECX VBMI, VBMI2, VNNI, BITALG, VPOPCNTDQ;
   EDX 4VNNIW, 4FMAPS, VP2INTERSECT, FP16. Sub-leaf 1: EAX AVX512_BF16. */
static const uint32_t hidden_ebx = BIT(16) | BIT(17) | BIT(21) | BIT(26) | BIT(27) | BIT(28) | BIT(30) | BIT(31);
static const uint32_t hidden_ecx = BIT(1) | BIT(6) | BIT(11) | BIT(12) | BIT(14);
static const uint32_t hidden_edx = BIT(2) | BIT(3) | BIT(8) | BIT(23);
static const uint32_t hidden_bf16 = BIT(5);

static void on_segv(int sig, siginfo_t *info, void *context) {
  greg_t *reg = ((ucontext_t *)context)->uc_mcontext.gregs;
  const uint8_t *ip = (const uint8_t *)reg[REG_RIP];
  if (info->si_code != SI_KERNEL || ip[0] != 0x0f || ip[1] != 0xa2) {
    if (program_handler.sa_flags & SA_SIGINFO) {
      program_handler.sa_sigaction(sig, info, context);
    } else if (program_handler.sa_handler != SIG_DFL && program_handler.sa_handler != SIG_IGN) {
      program_handler.sa_handler(sig);
    } else {
      /* No handler of the program's: the default action when the faulting instruction runs again. */
      struct sigaction fallback = {.sa_handler = SIG_DFL};
      real_sigaction(sig, &fallback, NULL);
    }
    return;
  }
  uint32_t leaf = reg[REG_RAX], subleaf = reg[REG_RCX];
  uint32_t a = leaf, b, c = subleaf, d;
  cpuid_enabled(1);
  __asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
  cpuid_enabled(0);
  if (leaf == 7 && subleaf == 0) {
    b &= ~hidden_ebx;
    c &= ~hidden_ecx;
    d &= ~hidden_edx;
  } else if (leaf == 7 && subleaf == 1) {
    a &= ~hidden_bf16;
  }
  reg[REG_RAX] = a;
  reg[REG_RBX] = b;
  reg[REG_RCX] = c;
  reg[REG_RDX] = d;
  reg[REG_RIP] += 2;
}

int sigaction(int sig, const struct sigaction *action, struct sigaction *previous) {
  if (sig != SIGSEGV) return real_sigaction(sig, action, previous);
  if (previous) *previous = program_handler;
  if (action) program_handler = *action;
  return 0;
}

__attribute__((constructor)) static void hide_avx512(void) {
  real_sigaction = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
  program_handler.sa_handler = SIG_DFL;
  struct sigaction ours = {.sa_sigaction = on_segv, .sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK};
  real_sigaction(SIGSEGV, &ours, NULL);
  if (cpuid_enabled(0) != 0) {
    perror("hide-avx512: arch_prctl(ARCH_SET_CPUID, 0) (does /proc/cpuinfo list cpuid_fault?)");
    _exit(3);
  }
  /* Tells the bench (and its children) that this process runs with AVX-512 hidden. */
  setenv("CTL_BENCH_HIDDEN_ISA", "avx512", 1);
}
