// NcclComm: unique-id exchange, ncclCommInitRank, in-place fp32 all-reduce
// and broadcast on the communicator's stream, errors with NCCL's own text.
#include "weights/nccl_comm.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "model/ops/cuda/cuda_backend.h"
#include "model/ops/cuda/cuda_status.h"

namespace zerorl::weights {
namespace {
constexpr char kMagic[] = "zerorl-nccl-id-v1\n";
constexpr size_t kMagicLen = sizeof(kMagic) - 1;

absl::Status NcclError(ncclResult_t r, const char* what, ncclComm_t comm) {
  std::string detail = ncclGetErrorString(r);
  if (comm) {
    const char* last = ncclGetLastError(comm);
    if (last && *last) absl::StrAppend(&detail, ": ", last);
  }
  return absl::InternalError(absl::StrCat(what, " failed: ", detail));
}
}  // namespace

absl::StatusOr<std::string> NcclNewUniqueId() {
  ncclUniqueId id;
  ncclResult_t r = ncclGetUniqueId(&id);
  if (r != ncclSuccess) return NcclError(r, "ncclGetUniqueId", nullptr);
  return std::string(id.internal, NCCL_UNIQUE_ID_BYTES);
}

absl::Status WriteNcclIdFile(const std::string& path, const std::string& id) {
  if (id.size() != NCCL_UNIQUE_ID_BYTES)
    return absl::InvalidArgumentError(
        absl::StrCat("NCCL id must be ", NCCL_UNIQUE_ID_BYTES, " bytes, got ", id.size()));
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << kMagic << id;
    f.flush();
    if (!f) return absl::InternalError(absl::StrCat("cannot write NCCL id file ", tmp));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    return absl::InternalError(absl::StrCat("cannot rename ", tmp, " to ", path));
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadNcclIdFile(const std::string& path, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    std::ifstream f(path, std::ios::binary);
    if (f) {
      std::stringstream ss;
      ss << f.rdbuf();
      const std::string s = ss.str();
      if (s.size() != kMagicLen + NCCL_UNIQUE_ID_BYTES || s.compare(0, kMagicLen, kMagic) != 0)
        return absl::InvalidArgumentError(absl::StrCat(path, " is not a zerorl NCCL id file (", s.size(),
                                                       " bytes; expected the header and ", NCCL_UNIQUE_ID_BYTES,
                                                       " id bytes)"));
      return s.substr(kMagicLen);
    }
    if (absl::Now() >= deadline)
      return absl::DeadlineExceededError(absl::StrCat("no NCCL id file at ", path, " after ",
                                                      absl::FormatDuration(timeout), " (is rank 0 running?)"));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

absl::StatusOr<std::unique_ptr<NcclComm>> NcclComm::Create(const std::string& unique_id, int nranks, int rank,
                                                           int device) {
  if (unique_id.size() != NCCL_UNIQUE_ID_BYTES)
    return absl::InvalidArgumentError(
        absl::StrCat("NCCL unique id must be ", NCCL_UNIQUE_ID_BYTES, " bytes, got ", unique_id.size()));
  if (nranks < 1 || rank < 0 || rank >= nranks)
    return absl::InvalidArgumentError(absl::StrCat("NCCL rank ", rank, " of ", nranks, " is out of range"));
  if (auto st = model::ops::CudaDeviceStatus(device); !st.ok()) return st;
  ZRL_CUDA_RETURN_IF_ERROR(cudaSetDevice(device));
  ncclUniqueId id;
  std::copy(unique_id.begin(), unique_id.end(), id.internal);
  ncclComm_t comm = nullptr;
  ncclResult_t r = ncclCommInitRank(&comm, nranks, id, rank);
  if (r != ncclSuccess) return NcclError(r, "ncclCommInitRank", nullptr);
  cudaStream_t stream = nullptr;
  cudaError_t e = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
  if (e != cudaSuccess) {
    ncclCommDestroy(comm);
    ZRL_CUDA_RETURN_IF_ERROR(e);
  }
  return std::unique_ptr<NcclComm>(new NcclComm(comm, stream, nranks, rank, device));
}

NcclComm::~NcclComm() {
  cudaSetDevice(device_);
  ncclCommDestroy(static_cast<ncclComm_t>(comm_));
  cudaStreamDestroy(static_cast<cudaStream_t>(stream_));
}

absl::Status NcclComm::Finish(int nccl_result, const char* what) {
  auto r = static_cast<ncclResult_t>(nccl_result);
  if (r != ncclSuccess) return NcclError(r, what, static_cast<ncclComm_t>(comm_));
  ZRL_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(static_cast<cudaStream_t>(stream_)));
  return absl::OkStatus();
}

absl::Status NcclComm::AllReduce(float* buf, int64_t n, bool average) {
  if (n < 0) return absl::InvalidArgumentError(absl::StrCat("NCCL all-reduce of ", n, " elements"));
  ZRL_CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
  // Work the caller queued on the default stream must land before the reduce reads buf.
  ZRL_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(nullptr));
  auto* stream = static_cast<cudaStream_t>(stream_);
  const ncclRedOp_t op = average ? ncclAvg : ncclSum;
  ncclResult_t r = ncclAllReduce(buf, buf, static_cast<size_t>(n), ncclFloat32, op, static_cast<ncclComm_t>(comm_),
                                 stream);
  return Finish(r, "ncclAllReduce");
}

absl::Status NcclComm::Broadcast(float* buf, int64_t n, int root) {
  if (n < 0) return absl::InvalidArgumentError(absl::StrCat("NCCL broadcast of ", n, " elements"));
  if (root < 0 || root >= nranks_)
    return absl::InvalidArgumentError(absl::StrCat("NCCL broadcast root ", root, " of ", nranks_, " ranks"));
  ZRL_CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
  ZRL_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(nullptr));
  ncclResult_t r = ncclBroadcast(buf, buf, static_cast<size_t>(n), ncclFloat32, root,
                                 static_cast<ncclComm_t>(comm_), static_cast<cudaStream_t>(stream_));
  return Finish(r, "ncclBroadcast");
}

}  // namespace zerorl::weights
