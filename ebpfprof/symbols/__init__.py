"""Addresses to symbols: the kernel (kallsyms), user space (BCC's symbol cache), callchains."""
from ebpfprof.symbols.callchain import (CONTEXT_KERNEL, CONTEXT_USER, CallchainResolver,
                                        default_resolver)
from ebpfprof.symbols.kernel import KERNEL_DSO, KernelSymbols
from ebpfprof.symbols.user import UserSymbols

__all__ = ["KernelSymbols", "UserSymbols", "CallchainResolver", "default_resolver", "CONTEXT_KERNEL",
           "CONTEXT_USER", "KERNEL_DSO"]
