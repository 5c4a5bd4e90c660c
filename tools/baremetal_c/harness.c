/* Bare-metal harness for the int8 network in C (tools/bench_boards.py appends this to
 * tools/bench.py's network source): runs infer() under qemu-system (-icount shift=0:
 * one instruction per virtual ns) on Cortex-M3 (mps2-an385; also C built for a Cortex-M0+:
 * Thumb-1, inline asm in unified syntax) or rv32imc (virt), reads
 * the machine's timer around REPS calls, prints one JSON line by semihosting and exits.
 * Timers: Cortex-M3 SysTick on the 25 MHz processor clock (40 instructions per count),
 * rv32 `rdtime` (mtime, 10 MHz: 100 instructions per count). A spin loop of known length
 * (2 instructions per iteration) checks that scale. */
#include <stdint.h>

#ifndef REPS
#define REPS 50
#endif
#define SPIN 1000000u

#if defined(__arm__)
#define SYST_CSR (*(volatile uint32_t *)0xE000E010)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018)
#define TIMER_HZ 25000000u
static void timer_init(void) { SYST_RVR = 0xFFFFFF; SYST_CVR = 0; SYST_CSR = 5; }
static uint32_t timer(void) { return 0xFFFFFFu - SYST_CVR; } /* 24-bit, counts down */
#define TIMER_MASK 0xFFFFFFu
static int semihost(int op, const void *arg) {
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}
__attribute__((noinline)) static void spin(uint32_t n) {
    __asm__ volatile("1: subs %0, #1\n bne 1b" : "+l"(n) : : "cc");
}
#elif defined(__riscv)
#define TIMER_HZ 10000000u
static void timer_init(void) {}
static uint32_t timer(void) { uint32_t t; __asm__ volatile("rdtime %0" : "=r"(t)); return t; }
#define TIMER_MASK 0xFFFFFFFFu
static int semihost(int op, const void *arg) {
    register long a0 __asm__("a0") = op;
    register const void *a1 __asm__("a1") = arg;
    __asm__ volatile(".balign 16\n.option push\n.option norvc\n"
                     "slli zero, zero, 0x1f\nebreak\nsrai zero, zero, 7\n.option pop"
                     : "+r"(a0) : "r"(a1) : "memory");
    return (int)a0;
}
__attribute__((noinline)) static void spin(uint32_t n) {
    __asm__ volatile("1: addi %0, %0, -1\n bnez %0, 1b" : "+r"(n));
}
#endif

static char line[512];
static int pos;
static void put(const char *s) { while (*s && pos < (int)sizeof line - 1) line[pos++] = *s++; }
static void put_int(long v) {
    char b[16]; int n = 0; unsigned long u = v < 0 ? -(unsigned long)v : (unsigned long)v;
    if (v < 0) put("-");
    do { b[n++] = (char)('0' + u % 10); u /= 10; } while (u);
    while (n) { char c[2] = {b[--n], 0}; put(c); }
}

volatile int32_t sink;

int main(void) {
    timer_init();
    const int8_t *out = infer(INPUT);
    put("{\"out\": [");
    for (int u = 0; u < OUTPUTS; u++) { if (u) put(", "); put_int(out[u]); }
    uint32_t t0 = timer();
    spin(SPIN);
    uint32_t spin_ticks = (timer() - t0) & TIMER_MASK;
    t0 = timer();
    for (int r = 0; r < REPS; r++) sink += infer(INPUT)[0];
    uint32_t ticks = (timer() - t0) & TIMER_MASK;
    put("], \"timer_hz\": "); put_int(TIMER_HZ);
    put(", \"spin_instructions\": "); put_int(2 * SPIN);
    put(", \"spin_ticks\": "); put_int(spin_ticks);
    put(", \"reps\": "); put_int(REPS);
    put(", \"ticks\": "); put_int(ticks);
    put("}\n");
    line[pos] = 0;
    semihost(0x04, line); /* SYS_WRITE0 */
    semihost(0x18, (const void *)0x20026); /* SYS_EXIT, ADP_Stopped_ApplicationExit */
    for (;;) {}
}

#if defined(__arm__)
extern uint32_t _estack;
void reset_handler(void) { main(); }
__attribute__((section(".isr_vector"), used)) static const void *const vectors[] = {&_estack, (void *)reset_handler};
#elif defined(__riscv)
__asm__(".section .text.start\n.global _start\n_start:\n la sp, _estack\n call main\n1: j 1b\n");
#endif
