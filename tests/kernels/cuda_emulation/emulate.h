// Host emulation of the few CUDA features kernels/decode.cu uses, so the CPU tests can run its real source.
// One block runs at a time: its threads are std::threads, __shared__ variables are function statics, and
// __syncthreads is a std::barrier. Half precision converts through _Float16 (IEEE binary16, round to nearest).
#pragma once
#include <algorithm>
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstring>

#define DECODE_HOST_EMULATION 1
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(n)
#define __shared__ static

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};
inline thread_local dim3 threadIdx;
inline dim3 blockIdx;
inline dim3 blockDim;
inline std::barrier<>* block_barrier = nullptr;

inline void __syncthreads() { block_barrier->arrive_and_wait(); }
inline int atomicAdd(int* address, int value) { return std::atomic_ref<int>(*address).fetch_add(value); }
inline int __float_as_int(float f) {
    int i;
    std::memcpy(&i, &f, sizeof i);
    return i;
}
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float emulated_half_to_float(unsigned short bits) {
    _Float16 h;
    std::memcpy(&h, &bits, sizeof h);
    return (float)h;
}
inline unsigned short emulated_float_to_half(float v) {
    _Float16 h = (_Float16)v;
    unsigned short bits;
    std::memcpy(&bits, &h, sizeof bits);
    return bits;
}
using std::max;
using std::min;
