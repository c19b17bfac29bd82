// The one place that sets the kernel ABI version: the contract between the C++ library and the ctypes
// signatures in grukit/kernels/*.py. Bump it (here only; _build.py reads this file) whenever an exported
// function is added, removed or changes its arguments, in any source file of the library.
#pragma once
#define GRUKIT_ABI_VERSION 11
