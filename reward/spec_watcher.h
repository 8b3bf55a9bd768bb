// SpecFileWatcher: reloads a RewardSpec YAML file when its content changes
// (e.g. a Kubernetes ConfigMap mount, where the file is swapped via symlinks).
// Polls the file every `interval_ms`; a changed file goes through
// SpecRegistry::Set (full validation); an invalid or unreadable file is refused
// with a logged reason and the active spec stays. The thread stops in the
// destructor.
#pragma once

#include <atomic>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "reward/spec_registry.h"

namespace zerorl::reward {

class SpecFileWatcher {
 public:
  // `loaded_content` is the file text the registry already holds (no reload for it).
  SpecFileWatcher(SpecRegistry* registry, std::string path, std::string loaded_content, int interval_ms = 1000);
  ~SpecFileWatcher();

  int reloads() const { return reloads_.load(); }   // successful reloads
  int refusals() const { return refusals_.load(); } // invalid files refused

 private:
  void Loop();

  SpecRegistry* registry_;
  std::string path_;
  std::string last_content_;
  int interval_ms_;
  std::atomic<int> reloads_{0}, refusals_{0};
  absl::Mutex mu_;
  absl::CondVar cv_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace zerorl::reward
