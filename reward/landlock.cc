// Landlock rulesets for the sandbox (see landlock.h). The kernel headers of
// Debian 12 stop at ABI 3, so the constants of later ABIs are spelled out here
// (values from include/uapi/linux/landlock.h, Linux 6.12).
#include "reward/landlock.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace zerorl::reward {
namespace {

#ifndef SYS_landlock_create_ruleset
constexpr long SYS_landlock_create_ruleset = 444;
constexpr long SYS_landlock_add_rule = 445;
constexpr long SYS_landlock_restrict_self = 446;
#endif

constexpr uint32_t kCreateRulesetVersion = 1u << 0;
constexpr int kRulePathBeneath = 1;

// File system rights (ABI 1 unless noted).
constexpr uint64_t kExecute = 1ull << 0;
constexpr uint64_t kWriteFile = 1ull << 1;
constexpr uint64_t kReadFile = 1ull << 2;
constexpr uint64_t kReadDir = 1ull << 3;
constexpr uint64_t kAbi1Fs = (1ull << 13) - 1;  // EXECUTE .. MAKE_SYM
constexpr uint64_t kRefer = 1ull << 13;         // ABI 2
constexpr uint64_t kTruncate = 1ull << 14;      // ABI 3
constexpr uint64_t kIoctlDev = 1ull << 15;      // ABI 5
// Rights that apply to a file (a rule on a non-directory may only hold these).
constexpr uint64_t kFileRights = kExecute | kWriteFile | kReadFile | kTruncate | kIoctlDev;
// Network (ABI 4) and scopes (ABI 6).
constexpr uint64_t kBindTcp = 1ull << 0;
constexpr uint64_t kConnectTcp = 1ull << 1;
constexpr uint64_t kScopeAbstractUnixSocket = 1ull << 0;
constexpr uint64_t kScopeSignal = 1ull << 1;

struct RulesetAttr {
  uint64_t handled_access_fs;
  uint64_t handled_access_net;  // ABI 4; the kernel ignores trailing zero fields it does not know
  uint64_t scoped;              // ABI 6
};

struct __attribute__((packed)) PathBeneathAttr {
  uint64_t allowed_access;
  int32_t parent_fd;
};

long CreateRuleset(const RulesetAttr* attr, size_t size, uint32_t flags) {
  return syscall(SYS_landlock_create_ruleset, attr, size, flags);
}
long AddPathRule(int ruleset_fd, int fd, uint64_t access) {
  PathBeneathAttr a = {access, fd};
  return syscall(SYS_landlock_add_rule, ruleset_fd, kRulePathBeneath, &a, 0);
}

}  // namespace

absl::StatusOr<int> LandlockAbi() {
  long abi = CreateRuleset(nullptr, 0, kCreateRulesetVersion);
  if (abi >= 1) return static_cast<int>(abi);
  const int e = errno;
  if (e == ENOSYS) return absl::FailedPreconditionError("no Landlock: the kernel lacks it or seccomp blocks it (ENOSYS)");
  if (e == EOPNOTSUPP) return absl::FailedPreconditionError("no Landlock: disabled at boot (lsm= without landlock)");
  return absl::FailedPreconditionError(absl::StrCat("no Landlock: ", strerror(e)));
}

absl::StatusOr<std::unique_ptr<LandlockPolicy>> LandlockPolicy::Create(const std::vector<std::string>& extra_read_only) {
  auto abi = LandlockAbi();
  if (!abi.ok()) return abi.status();
  std::unique_ptr<LandlockPolicy> p(new LandlockPolicy());
  p->abi_ = *abi;
  p->handled_fs_ = kAbi1Fs;
  if (p->abi_ >= 2) p->handled_fs_ |= kRefer;
  if (p->abi_ >= 3) p->handled_fs_ |= kTruncate;
  if (p->abi_ >= 5) p->handled_fs_ |= kIoctlDev;
  if (p->abi_ >= 4) p->handled_net_ = kBindTcp | kConnectTcp;  // no net rules: every TCP bind and connect denied
  if (p->abi_ >= 6) p->scoped_ = kScopeAbstractUnixSocket | kScopeSignal;

  const uint64_t ro = kReadFile | kReadDir | kExecute;
  std::vector<std::pair<std::string, uint64_t>> paths = {
      {"/usr", ro},           {"/lib", ro},          {"/lib32", ro},          {"/lib64", ro},
      {"/libx32", ro},        {"/bin", ro},          {"/sbin", ro},           {"/etc/ld.so.cache", ro},
      {"/etc/localtime", ro}, {"/etc/passwd", ro},   {"/etc/group", ro},      {"/etc/nsswitch.conf", ro},
      {"/dev/null", kReadFile | kWriteFile | kTruncate}, {"/dev/zero", kReadFile}, {"/dev/full", kReadFile | kWriteFile},
      {"/dev/random", kReadFile}, {"/dev/urandom", kReadFile},
  };
  // Debian's Python reads /etc/python3.X/sitecustomize.py at start-up.
  if (DIR* d = opendir("/etc")) {
    while (struct dirent* e = readdir(d)) {
      if (std::strncmp(e->d_name, "python3", 7) == 0) paths.push_back({std::string("/etc/") + e->d_name, ro});
    }
    closedir(d);
  }
  for (const auto& x : extra_read_only) paths.push_back({x, ro});
  for (const auto& [path, access] : paths) {
    int fd = open(path.c_str(), O_PATH | O_CLOEXEC);
    if (fd < 0) continue;  // not on this system
    struct stat st;
    if (fstat(fd, &st) != 0) {
      close(fd);
      continue;
    }
    uint64_t a = access & p->handled_fs_;
    if (!S_ISDIR(st.st_mode)) a &= kFileRights;
    p->rules_.push_back({path, fd, a});
  }
  // Check once that the rules are accepted, so a per-execution failure means something changed.
  auto probe = p->MakeRuleset("/");
  if (!probe.ok()) return probe.status();
  close(*probe);
  return p;
}

LandlockPolicy::~LandlockPolicy() {
  for (const auto& r : rules_) close(r.fd);
}

std::string LandlockPolicy::Describe() const {
  std::string s = absl::StrCat("Landlock ABI ", abi_, ": fs (read-only system paths, own work dir)");
  s += restricts_tcp() ? ", TCP bind/connect denied" : ", no TCP rules (ABI < 4)";
  s += scopes_signals() ? ", signals and abstract unix sockets scoped" : ", signals NOT scoped (ABI < 6)";
  return s;
}

absl::StatusOr<int> LandlockPolicy::MakeRuleset(const std::string& workdir) const {
  RulesetAttr attr = {handled_fs_, handled_net_, scoped_};
  // Older kernels reject fields they do not know unless zero; pass only what this ABI has.
  size_t size = abi_ >= 6 ? sizeof attr : abi_ >= 4 ? 2 * sizeof(uint64_t) : sizeof(uint64_t);
  int rs = static_cast<int>(CreateRuleset(&attr, size, 0));
  if (rs < 0) return absl::InternalError(absl::StrCat("landlock_create_ruleset: ", strerror(errno)));
  for (const auto& r : rules_) {
    if (AddPathRule(rs, r.fd, r.access) < 0) {
      int e = errno;
      close(rs);
      return absl::InternalError(absl::StrCat("landlock_add_rule ", r.path, ": ", strerror(e)));
    }
  }
  int wd = open(workdir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (wd < 0 || AddPathRule(rs, wd, handled_fs_) < 0) {
    int e = errno;
    if (wd >= 0) close(wd);
    close(rs);
    return absl::InternalError(absl::StrCat("landlock rule for the work dir ", workdir, ": ", strerror(e)));
  }
  close(wd);
  return rs;
}

int LandlockPolicy::RestrictSelfInChild(int ruleset_fd) {
  // /proc/self resolves to this child's own /proc/PID (the pid survives exec).
  int self = static_cast<int>(syscall(SYS_openat, AT_FDCWD, "/proc/self", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (self >= 0) {
    AddPathRule(ruleset_fd, self, kReadFile | kReadDir);  // best effort: a program without /proc still runs
    syscall(SYS_close, self);
  }
  if (syscall(SYS_landlock_restrict_self, ruleset_fd, 0) < 0) return -1;
  return 0;
}

}  // namespace zerorl::reward
