// BenchModelCuda for builds without CUDA (ZERORL_CUDA=OFF): says so, exit 2.
#include <cstdio>

#include "model/cuda_bench.h"

namespace zerorl::model {

int BenchModelCuda(const ModelConfig&, const CudaBenchOptions&) {
  std::fprintf(stderr,
               "zerorl bench model --device cuda: this zerorl was built without CUDA "
               "(configure with nvcc available, -DZERORL_CUDA=ON)\n");
  return 2;
}

}  // namespace zerorl::model
