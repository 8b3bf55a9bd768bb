// BackendForDevice (see device.h).
#include "model/device.h"

#include "absl/strings/str_cat.h"
#include "common/config.h"
#include "common/status.h"
#ifdef ZERORL_HAVE_CUDA
#include "model/ops/cuda/cuda_backend.h"
#endif

namespace zerorl::model {

absl::StatusOr<ops::Backend*> BackendForDevice(const std::string& device, const std::string& key) {
  ZRL_ASSIGN_OR_RETURN(const int index, ParseDevice(device, key));
  if (index < 0) return nullptr;
#ifdef ZERORL_HAVE_CUDA
  if (absl::Status st = ops::CudaDeviceStatus(index); !st.ok())
    return absl::FailedPreconditionError(absl::StrCat(key, " is cuda:", index, ": ", st.message()));
  auto backend = ops::CudaBackend(index);
  if (!backend.ok()) return Annotate(backend.status(), absl::StrCat(key, " is cuda:", index));
  return *backend;
#else
  return absl::FailedPreconditionError(
      absl::StrCat(key, " is cuda:", index, " but zerorl was built without CUDA (configure with -DZERORL_CUDA=ON)"));
#endif
}

}  // namespace zerorl::model
