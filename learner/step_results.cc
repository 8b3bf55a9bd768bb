// StepResults (see step_results.h).
#include "learner/step_results.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace zerorl::learner {
namespace fs = std::filesystem;

std::string StepResults::PathOf(int64_t step) const {
  return absl::StrFormat("%s/step-%08d.pb", root_, step);
}

absl::Status StepResults::Put(int64_t step, const zerorl::v1::TrainResponse& response) {
  std::error_code ec;
  fs::create_directories(root_, ec);
  if (ec) return absl::PermissionDeniedError(absl::StrCat("cannot create ", root_, ": ", ec.message()));
  const std::string path = PathOf(step), tmp = path + ".tmp";
  const std::string bytes = response.SerializeAsString();
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return absl::PermissionDeniedError(absl::StrCat("cannot write ", tmp, ": ", std::strerror(errno)));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n <= 0) {
      const int err = errno;
      ::close(fd);
      return absl::InternalError(absl::StrCat("writing ", tmp, ": ", std::strerror(err)));
    }
    done += static_cast<size_t>(n);
  }
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  if (!synced) return absl::InternalError(absl::StrCat("fsync of ", tmp, " failed"));
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    return absl::InternalError(absl::StrCat("renaming ", tmp, " to ", path, ": ", std::strerror(errno)));
  Prune();
  return absl::OkStatus();
}

std::optional<zerorl::v1::TrainResponse> StepResults::Get(int64_t step) const {
  std::ifstream in(PathOf(step), std::ios::binary);
  if (!in) return std::nullopt;
  zerorl::v1::TrainResponse r;
  if (!r.ParseFromIstream(&in)) return std::nullopt;
  return r;
}

void StepResults::Prune() const {
  if (keep_last_ <= 0) return;
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root_, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("step-", 0) == 0 && name.size() > 3 && name.substr(name.size() - 3) == ".pb") files.push_back(name);
  }
  std::sort(files.begin(), files.end());
  for (size_t i = 0; i + keep_last_ < files.size(); ++i) fs::remove(root_ + "/" + files[i], ec);
}

}  // namespace zerorl::learner
