// Fused decode in CUDA C: peak search, top-N and every gather of one image in one launch.
// The contract (coordinates, tie order, border padding, unused slots) is in kernels/__init__.py.
//
// Grid (B, K + 1), DECODE_THREADS threads a block. Block (b, k < K) writes keypoint k of every slot of image b;
// block (b, K) writes scores, indices, validity and instance queries. Every block repeats the peak search of its
// image, so the decode is one launch. Peak keys: order-preserving int32 bits of the fp32 logit in the high word,
// 2^31 - 1 - flat index in the low word, so a larger key is the contract's "score descending, index ascending".
// Peaks that beat the current N-th best key are appended to a shared-memory buffer (atomicAdd); when the buffer
// could overflow it is sorted and cut to N. One bitonic sort at the end orders the kept keys.
//
// Templates: TM is the dtype of score and offsets, TF of kfeat and ifeat; float or f16 (IEEE half as raw bits,
// converted with cvt instructions, so the file needs no header and builds with NVRTC and nvcc alike).

struct f16 {
    unsigned short bits;
};

#ifdef DECODE_HOST_EMULATION  // the CPU tests compile this file as C++ with an emulation header
__device__ __forceinline__ float half_to_float(unsigned short bits) { return emulated_half_to_float(bits); }
__device__ __forceinline__ unsigned short float_to_half(float v) { return emulated_float_to_half(v); }
#else
__device__ __forceinline__ float half_to_float(unsigned short bits) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(bits));
    return f;
}
__device__ __forceinline__ unsigned short float_to_half(float v) {
    unsigned short bits;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(bits) : "f"(v));
    return bits;
}
#endif

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(f16 v) { return half_to_float(v.bits); }
template <typename T> __device__ __forceinline__ T from_float(float v);
template <> __device__ __forceinline__ float from_float<float>(float v) { return v; }
template <> __device__ __forceinline__ f16 from_float<f16>(float v) { return f16{float_to_half(v)}; }
template <typename T> __device__ __forceinline__ T zero_of() { return from_float<T>(0.0f); }

#define DECODE_THREADS 256
#define DECODE_ITEMS 4                                  // pixels a thread per tile
#define DECODE_TILE (DECODE_THREADS * DECODE_ITEMS)      // pixels a tile
#define DECODE_MAX_PEOPLE 1024
#define DECODE_BUFFER 2048                               // >= DECODE_MAX_PEOPLE + DECODE_TILE: never overflows
#define EMPTY_KEY (-9223372036854775807LL - 1LL)

__device__ __forceinline__ long long peak_key(float logit, int idx) {
    int bits = logit == 0.0f ? 0 : __float_as_int(logit);  // -0 ties with +0, as floats compare
    int ordered = bits ^ ((bits >> 31) & 0x7FFFFFFF);
    return (long long)ordered * 4294967296LL + (long long)(0x7FFFFFFF - idx);
}

// Sort buf[0, m) descending, m a power of two; all threads of the block take part.
__device__ void bitonic_sort_desc(long long* buf, int m) {
    for (int size = 2; size <= m; size <<= 1) {
        for (int stride = size >> 1; stride > 0; stride >>= 1) {
            for (int i = threadIdx.x; i < m; i += blockDim.x) {
                int j = i ^ stride;
                if (j > i) {
                    long long a = buf[i], b = buf[j];
                    bool descending = (i & size) == 0;
                    if (descending ? (a < b) : (a > b)) {
                        buf[i] = b;
                        buf[j] = a;
                    }
                }
            }
            __syncthreads();
        }
    }
}

// Pad buf[count, m) with EMPTY_KEY (m = next power of two >= max(count, 2)), sort, return m.
__device__ int sort_buffer(long long* buf, int count) {
    int m = 2;
    while (m < count) m <<= 1;
    for (int i = count + threadIdx.x; i < m; i += blockDim.x) buf[i] = EMPTY_KEY;
    __syncthreads();
    bitonic_sort_desc(buf, m);
    return m;
}

template <typename TM>
__device__ bool is_peak(const TM* score, int idx, int h, int w, int radius, float thr_logit, float* logit_out) {
    int row = idx / w, col = idx - (idx / w) * w;
    float logit = to_float(score[idx]);
    *logit_out = logit;
    if (!(logit > thr_logit)) return false;
    for (int dy = -radius; dy <= radius; ++dy) {
        int r = row + dy;
        if (r < 0 || r >= h) continue;
        for (int dx = -radius; dx <= radius; ++dx) {
            int c = col + dx;
            if (c < 0 || c >= w) continue;
            if (!(logit >= to_float(score[r * w + c]))) return false;  // NaN neighbours fail, as in the reference
        }
    }
    return true;
}

template <typename TM, typename TF>
__global__ void __launch_bounds__(DECODE_THREADS) decode_kernel(
    const TM* __restrict__ score, const TM* __restrict__ offsets, const TF* __restrict__ kfeat,
    const TF* __restrict__ ifeat, float* __restrict__ scores, long long* __restrict__ indices,
    unsigned char* __restrict__ valid, float* __restrict__ keypoints, TF* __restrict__ kpt_queries,
    TF* __restrict__ inst_queries, int h, int w, int num_kpts, int ck, int ci, int max_people, int radius,
    float thr_logit) {
    __shared__ long long buf[DECODE_BUFFER];
    __shared__ int count;
    __shared__ long long floor_key;  // keys <= floor_key cannot enter the top N any more
    __shared__ int x0s[DECODE_MAX_PEOPLE], y0s[DECODE_MAX_PEOPLE];
    __shared__ float wxs[DECODE_MAX_PEOPLE], wys[DECODE_MAX_PEOPLE];

    const long long b = blockIdx.x;
    const int part = blockIdx.y;
    const int hw = h * w;
    const TM* score_img = score + b * hw;
    if (threadIdx.x == 0) {
        count = 0;
        floor_key = EMPTY_KEY;
    }
    __syncthreads();

    // Phase 1: collect peaks that beat the running N-th best; cut the buffer to N before it can overflow.
    for (int start = 0; start < hw; start += DECODE_TILE) {
        long long floor_now = floor_key;
        for (int item = 0; item < DECODE_ITEMS; ++item) {
            int idx = start + item * DECODE_THREADS + threadIdx.x;
            float logit;
            if (idx < hw && is_peak(score_img, idx, h, w, radius, thr_logit, &logit)) {
                long long key = peak_key(logit, idx);
                if (key > floor_now) buf[atomicAdd(&count, 1)] = key;
            }
        }
        __syncthreads();
        if (count > DECODE_BUFFER - DECODE_TILE) {
            sort_buffer(buf, count);
            if (threadIdx.x == 0) {
                count = max_people;
                floor_key = buf[max_people - 1];
            }
        }
        __syncthreads();
    }

    // Phase 2: order the kept keys; slot n holds buf[n] when n < count.
    const int kept = min(count, max_people);
    sort_buffer(buf, count);

    if (part < num_kpts) {
        // Phase 3a: keypoint `part` of every slot, then kfeat sampled there (border-clamped bilinear, fp32).
        const int k = part;
        const TM* dx_map = offsets + (b * 2 * num_kpts + 2 * k) * hw;
        const TM* dy_map = dx_map + hw;
        for (int n = threadIdx.x; n < max_people; n += blockDim.x) {
            float kx = 0.0f, ky = 0.0f;
            if (n < kept) {
                int pix = 0x7FFFFFFF - (int)(buf[n] & 0x7FFFFFFFLL);
                kx = (float)(pix % w) + to_float(dx_map[pix]);
                ky = (float)(pix / w) + to_float(dy_map[pix]);
            }
            long long slot = (b * max_people + n) * num_kpts + k;
            keypoints[slot * 2] = kx;
            keypoints[slot * 2 + 1] = ky;
            float xs = fminf(fmaxf(kx, 0.0f), (float)(w - 1));  // fmaxf(NaN, 0) is 0: NaN counts as 0
            float ys = fminf(fmaxf(ky, 0.0f), (float)(h - 1));
            x0s[n] = (int)xs;
            y0s[n] = (int)ys;
            wxs[n] = xs - (float)(int)xs;
            wys[n] = ys - (float)(int)ys;
        }
        __syncthreads();
        const TF* feat = kfeat + (b * num_kpts + k) * (long long)ck * hw;
        for (int t = threadIdx.x; t < max_people * ck; t += blockDim.x) {
            int n = t / ck, c = t - (t / ck) * ck;
            float value = 0.0f;
            if (n < kept) {
                int x0 = x0s[n], y0 = y0s[n];
                int x1 = min(x0 + 1, w - 1), y1 = min(y0 + 1, h - 1);
                float wx = wxs[n], wy = wys[n];
                const TF* chan = feat + (long long)c * hw;
                // The reference's order of operations, without fused multiply-adds: fp32 results match it.
                float a = __fmul_rn(__fmul_rn(to_float(chan[y0 * w + x0]), 1.0f - wx), 1.0f - wy);
                float b2 = __fmul_rn(__fmul_rn(to_float(chan[y0 * w + x1]), wx), 1.0f - wy);
                float c2 = __fmul_rn(__fmul_rn(to_float(chan[y1 * w + x0]), 1.0f - wx), wy);
                float d = __fmul_rn(__fmul_rn(to_float(chan[y1 * w + x1]), wx), wy);
                value = __fadd_rn(__fadd_rn(__fadd_rn(a, b2), c2), d);
            }
            kpt_queries[((b * max_people + n) * num_kpts + k) * ck + c] = from_float<TF>(value);
        }
    } else {
        // Phase 3b: score, index, validity and the instance feature at the peak pixel.
        for (int n = threadIdx.x; n < max_people; n += blockDim.x) {
            long long slot = b * max_people + n;
            if (n < kept) {
                int pix = 0x7FFFFFFF - (int)(buf[n] & 0x7FFFFFFFLL);
                scores[slot] = 1.0f / (1.0f + expf(-to_float(score_img[pix])));
                indices[slot] = pix;
                valid[slot] = 1;
            } else {
                scores[slot] = 0.0f;
                indices[slot] = -1;
                valid[slot] = 0;
            }
        }
        const TF* feat = ifeat + b * (long long)ci * hw;
        for (int t = threadIdx.x; t < max_people * ci; t += blockDim.x) {
            int n = t / ci, c = t - (t / ci) * ci;
            TF value = zero_of<TF>();
            if (n < kept) value = feat[(long long)c * hw + (0x7FFFFFFF - (int)(buf[n] & 0x7FFFFFFFLL))];
            inst_queries[(b * max_people + n) * ci + c] = value;
        }
    }
}

template __global__ void decode_kernel<float, float>(const float*, const float*, const float*, const float*, float*,
                                                     long long*, unsigned char*, float*, float*, float*, int, int,
                                                     int, int, int, int, int, float);
template __global__ void decode_kernel<f16, f16>(const f16*, const f16*, const f16*, const f16*, float*, long long*,
                                                 unsigned char*, float*, f16*, f16*, int, int, int, int, int, int,
                                                 int, float);
template __global__ void decode_kernel<float, f16>(const float*, const float*, const f16*, const f16*, float*,
                                                   long long*, unsigned char*, float*, f16*, f16*, int, int, int,
                                                   int, int, int, int, float);
template __global__ void decode_kernel<f16, float>(const f16*, const f16*, const float*, const float*, float*,
                                                   long long*, unsigned char*, float*, float*, float*, int, int,
                                                   int, int, int, int, int, float);
