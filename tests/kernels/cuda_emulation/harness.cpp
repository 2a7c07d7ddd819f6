// Runs decode_kernel of kernels/decode.cu block by block on the CPU (see emulate.h); called through ctypes.
#include <thread>
#include <vector>

#include "emulate.h"
#include "../../../kernels/decode.cu"

template <typename TM, typename TF>
static void run(const void* score, const void* offsets, const void* kfeat, const void* ifeat, float* scores,
                long long* indices, unsigned char* valid, float* keypoints, void* kq, void* iq, int batch, int h,
                int w, int num_kpts, int ck, int ci, int max_people, int radius, float thr_logit) {
    blockDim.x = DECODE_THREADS;
    for (unsigned part = 0; part <= (unsigned)num_kpts; ++part) {
        for (unsigned b = 0; b < (unsigned)batch; ++b) {
            blockIdx.x = b;
            blockIdx.y = part;
            std::barrier<> barrier(DECODE_THREADS);
            block_barrier = &barrier;
            std::vector<std::thread> threads;
            for (unsigned t = 0; t < DECODE_THREADS; ++t) {
                threads.emplace_back([&, t] {
                    threadIdx.x = t;
                    decode_kernel<TM, TF>((const TM*)score, (const TM*)offsets, (const TF*)kfeat, (const TF*)ifeat,
                                          scores, indices, valid, keypoints, (TF*)kq, (TF*)iq, h, w, num_kpts, ck,
                                          ci, max_people, radius, thr_logit);
                });
            }
            for (auto& thread : threads) thread.join();
        }
    }
}

extern "C" void decode_host(int map_is_half, int feat_is_half, const void* score, const void* offsets,
                            const void* kfeat, const void* ifeat, float* scores, long long* indices,
                            unsigned char* valid, float* keypoints, void* kq, void* iq, int batch, int h, int w,
                            int num_kpts, int ck, int ci, int max_people, int radius, float thr_logit) {
    auto args = [&](auto launch) {
        launch(score, offsets, kfeat, ifeat, scores, indices, valid, keypoints, kq, iq, batch, h, w, num_kpts, ck,
               ci, max_people, radius, thr_logit);
    };
    if (map_is_half && feat_is_half) args(run<f16, f16>);
    else if (map_is_half) args(run<f16, float>);
    else if (feat_is_half) args(run<float, f16>);
    else args(run<float, float>);
}
