// zrl_emu_switch: the fiber context switch of the CUDA emulation (shim.h) on
// x86-64 — saves the callee-saved registers and the stack pointer of the
// current fiber, loads another's — with no system call (swapcontext's signal
// mask save/restore made the emulation syscall-bound). Other architectures
// use ucontext (shim.h).
#if defined(__x86_64__)
asm(R"(
  .text
  .globl zrl_emu_switch
  .type zrl_emu_switch, @function
zrl_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size zrl_emu_switch, .-zrl_emu_switch
  .section .note.GNU-stack,"",@progbits
  .text
)");
#endif
