// Sandbox tests: normal runs, limits, and the hostile-code battery (each
// contained, the test process alive, canaries intact, no stray processes).
//
// The suite runs with whatever layer "auto" picks where it runs: as root on the
// host (namespaces), as an unprivileged uid on the host (reward_sandbox_nonroot:
// Landlock on kernels with ABI >= 6), and inside the reward container of the
// container test, with the pod's restrictions (tests/container). Environment:
//   ZERORL_TEST_EXPECT_ISOLATION  fail unless "auto" picked this layer
//   ZERORL_TEST_SECRET_FILE       a secret the code must not read (the mounted admin token)
//   ZERORL_TEST_SERVER_PID        a process the code must not signal (the reward server)
//   ZERORL_TEST_CONNECT           host:port,... the code must not reach (the other actors)
#include "reward/sandbox.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <cstddef>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "absl/strings/str_split.h"

namespace zerorl::reward {
namespace {

class SandboxTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    Sandbox::Options o;
    auto sb = Sandbox::Create(o);
    ASSERT_TRUE(sb.ok()) << sb.status();
    sandbox_ = sb->release();
    std::cerr << "isolation: " << sandbox_->Describe() << "\n";
    if (const char* want = getenv("ZERORL_TEST_EXPECT_ISOLATION")) {
      ASSERT_STREQ(IsolationName(sandbox_->isolation()), want) << sandbox_->why_not_stronger();
    }
  }
  static void TearDownTestSuite() {
    delete sandbox_;
    sandbox_ = nullptr;
  }
  SandboxResult Py(const std::string& code, const std::string& stdin_data = "", int64_t memory = 512 << 20,
                   int64_t wall_ms = 2000) {
    SandboxLimits l;
    l.memory_bytes = memory;
    l.cpu_seconds = std::max<double>(1, wall_ms / 2000.0);
    l.wall_ms = wall_ms;
    l.max_output_bytes = 1 << 16;
    auto r = sandbox_->Run({sandbox_->python(), "-I", "main.py"}, stdin_data, l, {{"main.py", code}});
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : SandboxResult{};
  }
  static Isolation iso() { return sandbox_->isolation(); }
  // The program runs under our own uid (no uid drop): only Landlock keeps our files and signals from it.
  static bool SharesOurUid() { return geteuid() != 0 && iso() != Isolation::kNamespaces; }
  // Processes still owned by this sandbox's uids.
  static int StrayProcesses() {
    uid_t lo = sandbox_->uid_base(), hi = lo + 64;
    int n = 0;
    for (const auto& e : std::filesystem::directory_iterator("/proc")) {
      struct stat st;
      if (stat(e.path().c_str(), &st) == 0 && st.st_uid >= lo && st.st_uid < hi) ++n;
    }
    return n;
  }
  static Sandbox* sandbox_;
};
Sandbox* SandboxTest::sandbox_ = nullptr;

TEST_F(SandboxTest, RunsProgramWithStdin) {
  auto r = Py("import sys\nprint(int(sys.stdin.read()) * 2)", "21\n");
  EXPECT_EQ(r.verdict, SandboxVerdict::kOk) << r.stderr_data;
  EXPECT_EQ(r.stdout_data, "42\n");
  std::cerr << "isolation: " << sandbox_->Describe() << "\n";
}

TEST_F(SandboxTest, ThreadsWorkInEveryLayer) {
  auto r = Py("import threading\nout = []\nts = [threading.Thread(target=out.append, args=(i,)) for i in range(4)]\n"
              "[t.start() for t in ts]\n[t.join() for t in ts]\nprint(sorted(out))");
  EXPECT_EQ(r.stdout_data, "[0, 1, 2, 3]\n") << r.stderr_data;
}

TEST_F(SandboxTest, NonZeroExitIsRuntimeError) {
  auto r = Py("raise ValueError('boom')");
  EXPECT_EQ(r.verdict, SandboxVerdict::kRuntimeError);
  EXPECT_NE(r.stderr_data.find("boom"), std::string::npos);
}

TEST_F(SandboxTest, WorkDirIsWritablePrivateTmpToo) {
  // /tmp is private (namespaces, bwrap) or out of reach (landlock); tempfile works in every layer.
  auto r = Py("import tempfile\nopen('a.txt','w').write('x')\n"
              "try:\n  open('/tmp/b','w').write('y')\nexcept OSError:\n  pass\n"
              "with tempfile.TemporaryFile() as f:\n  f.write(b'z')\n"
              "print(open('a.txt').read())");
  EXPECT_EQ(r.verdict, SandboxVerdict::kOk) << r.stderr_data;
  EXPECT_EQ(r.stdout_data, "x\n");
  if (iso() != Isolation::kRlimits) {
    EXPECT_FALSE(std::filesystem::exists("/tmp/b") && std::ifstream("/tmp/b").get() == 'y');
  }
}

TEST_F(SandboxTest, HostileForkBomb) {
  auto r = Py("import os\nwhile True:\n  try:\n    os.fork()\n  except Exception:\n    pass");
  EXPECT_NE(r.verdict, SandboxVerdict::kOk);
  EXPECT_EQ(StrayProcesses(), 0);
}

TEST_F(SandboxTest, HostileMemoryBomb) {
  // (A generous wall limit: on a loaded machine a 2 s limit can end it as a timeout before memory runs out.)
  auto r = Py("x = []\nwhile True:\n  x.append(bytearray(16 * 1024 * 1024))", "", 128 << 20, 10000);
  EXPECT_EQ(r.verdict, SandboxVerdict::kKilledByLimit) << SandboxVerdictName(r.verdict) << r.stderr_data;
}

TEST_F(SandboxTest, HostileInfiniteLoopAndSleep) {
  auto loop = Py("while True:\n  pass");
  EXPECT_EQ(loop.verdict, SandboxVerdict::kTimeout);
  EXPECT_LT(loop.wall_ms, 2500);
  auto sleep = Py("import time\ntime.sleep(60)");
  EXPECT_EQ(sleep.verdict, SandboxVerdict::kTimeout);
  EXPECT_LT(sleep.wall_ms, 2500);
  // (Layers without a uid of their own refuse fork: then the parent is done at once.)
  auto bg = Py("import os, time\ntry:\n  pid = os.fork()\nexcept OSError:\n  pid = -1\n"
               "if pid == 0:\n  time.sleep(60)\nprint('parent done')");
  EXPECT_EQ(bg.verdict, SandboxVerdict::kOk);
  EXPECT_LT(bg.wall_ms, 2500);
  EXPECT_EQ(StrayProcesses(), 0);
}

TEST_F(SandboxTest, HostileNetworkConnect) {
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(listener, 4), 0);
  socklen_t len = sizeof addr;
  getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);
  auto r = Py("import socket\ns = socket.socket()\ns.settimeout(1)\ns.connect(('127.0.0.1', " + std::to_string(port) +
              "))\nprint('connected')");
  EXPECT_EQ(r.stdout_data.find("connected"), std::string::npos);
  EXPECT_NE(r.verdict, SandboxVerdict::kOk);
  // Nothing reached the listener.
  fcntl(listener, F_SETFL, O_NONBLOCK);
  EXPECT_LT(accept(listener, nullptr, nullptr), 0);
  close(listener);
}

TEST_F(SandboxTest, HostileFileSystemEscape) {
  std::string dir = ::testing::TempDir() + "/sbx_canary";
  std::filesystem::create_directories(dir);
  std::string canary = dir + "/canary.txt";
  std::ofstream(canary) << "alive";
  std::string open_dir = dir + "/world_writable";
  std::filesystem::create_directories(open_dir);
  chmod(open_dir.c_str(), 0777);
  std::string secret_dir = dir + "/private";
  std::filesystem::create_directories(secret_dir);
  chmod(secret_dir.c_str(), 0700);
  std::ofstream(secret_dir + "/expected.txt") << "SECRET-EXPECTED-OUTPUT";
  auto r = Py("import os\n"
              "for f in [" "'" + canary + "', '" + open_dir + "/x', '/etc/zerorl_pwned']:\n"
              "  try:\n    open(f, 'w').write('pwned')\n    print('wrote', f)\n  except Exception as e:\n    pass\n"
              "try:\n  os.remove('" + canary + "')\n  print('deleted')\nexcept Exception:\n  pass\n"
              "try:\n  print(open('" + secret_dir + "/expected.txt').read())\nexcept Exception:\n  pass\n");
  EXPECT_EQ(r.stdout_data.find("wrote"), std::string::npos) << r.stdout_data;
  EXPECT_EQ(r.stdout_data.find("deleted"), std::string::npos);
  EXPECT_EQ(r.stdout_data.find("SECRET-EXPECTED-OUTPUT"), std::string::npos);
  std::string content;
  std::getline(std::ifstream(canary), content);
  EXPECT_EQ(content, "alive");
  EXPECT_FALSE(std::filesystem::exists(open_dir + "/x"));
  EXPECT_FALSE(std::filesystem::exists("/etc/zerorl_pwned"));
}

TEST_F(SandboxTest, HostileKillParentAndGroup) {
  auto r = Py("import os, signal\n"
              "for target in [os.getppid(), " + std::to_string(getpid()) + ", 1]:\n"
              "  try:\n    os.kill(target, signal.SIGKILL)\n  except Exception:\n    pass\n"
              "try:\n  os.kill(-1, signal.SIGKILL)\nexcept Exception:\n  pass\n"
              "try:\n  os.killpg(" + std::to_string(getpgrp()) + ", signal.SIGKILL)\nexcept Exception:\n  pass\n"
              "print('survived')");
  // We are alive to check; the sandbox still works afterwards.
  EXPECT_EQ(kill(getpid(), 0), 0);
  EXPECT_EQ(Py("print(1)").stdout_data, "1\n");
  (void)r;
}

TEST_F(SandboxTest, HostileReadsEnvironment) {
  setenv("ZERORL_TEST_SECRET", "hunter2", 1);
  auto r = Py("import os\nprint(dict(os.environ))\nprint(open('/proc/1/environ','rb').read())");
  EXPECT_EQ(r.stdout_data.find("hunter2"), std::string::npos);
  unsetenv("ZERORL_TEST_SECRET");
}

TEST_F(SandboxTest, HostileStdoutFlood) {
  auto r = Py("import sys\nwhile True:\n  sys.stdout.write('x' * 65536)");
  EXPECT_EQ(r.verdict, SandboxVerdict::kOutputLimit);
  EXPECT_LE(r.stdout_data.size(), 1u << 16);
  EXPECT_LT(r.wall_ms, 2500);
}

TEST_F(SandboxTest, InputFilesLiveInThePrivateWorkDir) {
  SandboxLimits l;
  l.max_file_bytes = 1 << 20;  // the 2 MiB input is ours, not the program's writing: RLIMIT_FSIZE must not cut it
  std::string big(2 << 20, 'z');
  auto r = sandbox_->Run({sandbox_->python(), "-I", "main.py"}, "", l,
                         {{"main.py", "import os\nprint(os.getcwd(), os.stat('main.py').st_uid == os.getuid(), "
                                      "len(open('big.txt').read()), sorted(os.listdir('.')))"},
                          {"big.txt", big}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->verdict, SandboxVerdict::kOk) << r->stderr_data;
  std::string cwd = r->stdout_data.substr(0, r->stdout_data.find(' '));
  if (sandbox_->isolation() == Isolation::kNamespaces) {
    EXPECT_EQ(cwd, "/tmp/work");
  }
  EXPECT_EQ(r->stdout_data, cwd + " True 2097152 ['big.txt', 'main.py']\n");
  for (const char* bad : {"", ".", "..", "a/b"}) {
    auto e = sandbox_->Run({"/bin/true"}, "", l, {{bad, "x"}});
    EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument) << "\"" << bad << "\"";
  }
}

TEST_F(SandboxTest, ProgramStartsWithNoSignalBlocked) {
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGINT);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  auto r = Py("print([l for l in open('/proc/self/status') if l.startswith('SigBlk')][0].split()[1])");
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  EXPECT_EQ(r.stdout_data, "0000000000000000\n") << r.stderr_data;
}

// Regression: the child used glibc's setresuid & co, which in a multi-threaded
// parent try to sync every thread and could hang forever in the child.
TEST_F(SandboxTest, RunsWhileOtherThreadsComeAndGo) {
  std::atomic<bool> stop{false};
  std::thread churn([&] {
    while (!stop) std::thread([] {}).join();
  });
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  int ok = 0;
  std::thread runner([&] {
    SandboxLimits l;
    for (int i = 0; i < 40; ++i) {
      auto r = sandbox_->Run({"/bin/true"}, "", l);
      if (r.ok() && r->verdict == SandboxVerdict::kOk) ++ok;
    }
    std::lock_guard<std::mutex> lock(mu);
    done = true;
    cv.notify_all();
  });
  std::unique_lock<std::mutex> lock(mu);
  if (!cv.wait_for(lock, std::chrono::seconds(30), [&] { return done; })) {
    std::cerr << "sandbox runs hung while other threads were created and joined\n";
    std::_Exit(1);  // a hung child cannot be joined; fail the binary instead of hanging it
  }
  lock.unlock();
  runner.join();
  stop = true;
  churn.join();
  EXPECT_EQ(ok, 40);
}

TEST_F(SandboxTest, UnknownIsolationIsAnError) {
  Sandbox::Options o;
  o.isolation = "chroot";
  auto sb = Sandbox::Create(o);
  EXPECT_EQ(sb.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(SandboxTest, EveryIsolationLayerContainsWrites) {
  for (const char* iso : {"bwrap", "landlock", "rlimits"}) {
    Sandbox::Options o;
    o.isolation = iso;
    auto sb = Sandbox::Create(o);
    if (!sb.ok()) {
      std::cerr << iso << " unavailable: " << sb.status() << "\n";
      continue;
    }
    SandboxLimits l;
    l.wall_ms = 3000;
    auto r = (*sb)->Run({(*sb)->python(), "-I", "main.py"}, "", l,
                        {{"main.py", "open('out.txt','w').write('ok')\nprint(open('out.txt').read())\n"
                                     "try:\n  open('/etc/zerorl_pwned','w')\nexcept Exception:\n  print('denied')"}});
    ASSERT_TRUE(r.ok()) << iso << ": " << r.status();
    EXPECT_EQ(r->stdout_data, "ok\ndenied\n") << iso << ": " << r->stderr_data;
  }
}


// A secret the program must not read: a file of ours that only our uid may read,
// and, inside the reward container, the mounted admin token (world-readable by
// the pod's uid, as Kubernetes mounts Secrets with mode 0644).
TEST_F(SandboxTest, HostileReadsSecretFiles) {
  const std::string own = ::testing::TempDir() + "/sbx_secret_token";
  std::ofstream(own) << "TOKEN-" << getpid() << "-own\n";
  chmod(own.c_str(), 0600);
  std::vector<std::string> files = {own};
  if (const char* f = getenv("ZERORL_TEST_SECRET_FILE")) files.push_back(f);
  for (const std::string& f : files) {
    std::string secret;
    std::getline(std::ifstream(f), secret);
    ASSERT_FALSE(secret.empty()) << "cannot read the secret " << f << " ourselves";
    // Directly, through our /proc/PID/root, and by listing its directory.
    auto r = Py("import os\nfor p in ['" + f + "', '/proc/" + std::to_string(getpid()) + "/root" + f + "']:\n"
                "  try:\n    print(open(p).read())\n  except Exception as e:\n    print('denied', type(e).__name__)\n"
                "try:\n  print(os.listdir(os.path.dirname('" + f + "')))\nexcept Exception as e:\n  print('denied')\n");
    const bool leaked = r.stdout_data.find(secret) != std::string::npos;
    // Landlock hides every file outside the system paths; the namespaces layer's uid drop hides files only
    // our uid may read. bwrap and rlimits run the program with our own (or root's) reach.
    if (iso() == Isolation::kLandlock || (iso() == Isolation::kNamespaces && f == own)) {
      EXPECT_FALSE(leaked) << f << " leaked: " << r.stdout_data;
    } else if (leaked) {
      std::cerr << "note: the " << IsolationName(iso()) << " layer lets the program read " << f << "\n";
    }
  }
  std::filesystem::remove(own);
}

// One execution must not see another's work dir (inputs, expected outputs, what it wrote).
TEST_F(SandboxTest, HostileReadsAnotherExecutionsWorkDir) {
  SandboxLimits l;
  l.cpu_seconds = 5;
  const std::string secret = "WORKDIR-SECRET-" + std::to_string(getpid());
  auto a = sandbox_->Spawn({sandbox_->python(), "-I", "-c",
                            "import os, sys\nopen('secret.txt', 'w').write('" + secret +
                                "')\nprint(os.getcwd(), flush=True)\nsys.stdin.read()\n"},
                           l, {{"expected.txt", secret}});
  ASSERT_TRUE(a.ok()) << a.status();
  std::string line;
  char c;
  while (read(a->stdout_fd, &c, 1) == 1 && c != '\n') line += c;
  ASSERT_FALSE(line.empty()) << "the first execution did not start";
  const std::string dir = a->workdir.empty() ? line : a->workdir;  // its work dir as the host sees it
  auto b = Py("import os\nhits = []\n"
              "for top in ['" + dir + "', os.path.dirname('" + dir + "'), os.path.dirname(os.getcwd())]:\n"
              "  for root, dirs, files in os.walk(top):\n"
              "    for f in files:\n"
              "      try:\n        hits.append(open(os.path.join(root, f)).read())\n      except Exception:\n        pass\n"
              "for f in ['secret.txt', 'expected.txt']:\n"
              "  try:\n    hits.append(open(os.path.join('" + dir + "', f)).read())\n"
              "  except Exception as e:\n    hits.append('denied ' + type(e).__name__)\n"
              "print(hits)");
  sandbox_->Kill(&*a);
  const bool leaked = b.stdout_data.find(secret) != std::string::npos;
  if (iso() == Isolation::kRlimits && SharesOurUid()) {
    if (leaked) std::cerr << "note: rlimits under our own uid shares work dirs between executions\n";
  } else {
    EXPECT_FALSE(leaked) << b.stdout_data;
  }
}

// Signals at the test process (the "server" that owns the sandbox), its process
// group, every thread of it, pid 1, -1, and ZERORL_TEST_SERVER_PID (the reward
// server of the container): none may arrive. SIGTERM/SIGINT/SIGHUP/SIGUSR1
// reaching us would end this binary.
TEST_F(SandboxTest, HostileSignalsTheServer) {
  std::vector<pid_t> targets = {getpid()};
  if (const char* s = getenv("ZERORL_TEST_SERVER_PID")) targets.push_back(static_cast<pid_t>(std::atoi(s)));
  std::string list;
  for (pid_t t : targets) list += std::to_string(t) + ", ";
  // Counts the signals delivered outside the program's own process group (pid 1 and the parent are the
  // program itself or nothing in the namespaces layer's pid namespace: those are skipped).
  // Each attempt is logged to stderr first, so a signal that comes back to the program shows which one.
  auto r = Py("import ctypes, os, signal, sys\nlibc = ctypes.CDLL(None, use_errno=True)\nsent = []\n"
              "def log(*a):\n  print(*a, file=sys.stderr, flush=True)\n"
              "def mine(pid):\n"
              "  try:\n    return pid <= 0 or pid == os.getpid() or os.getpgid(pid) == os.getpgrp()\n"
              "  except Exception:\n    return False\n"
              "for pid in [" + list + "os.getppid(), 1]:\n"
              "  if mine(pid): continue\n"
              "  try:\n    tids = [int(t) for t in os.listdir('/proc/%d/task' % pid)]\n  except Exception:\n"
              "    tids = [pid]\n"
              "  for sig in [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGKILL]:\n"
              // (killpg(0) would be the program's own group: a pid 1 started without a group has pgid 0.)
              "    fns = [('kill', lambda: os.kill(pid, sig))]\n"
              "    try:\n      pg = os.getpgid(pid)\n    except Exception:\n      pg = 0\n"
              "    if pg > 0:\n      fns.append(('killpg', lambda: os.killpg(pg, sig)))\n"
              "    for name, f in fns:\n"
              "      log(name, pid, int(sig))\n"
              "      try:\n        f()\n        sent.append((name, pid))\n      except Exception:\n        pass\n"
              "    for tid in tids:\n"
              "      log('tkill/tgkill', pid, tid, int(sig))\n"
              "      if libc.syscall(200, tid, sig) == 0: sent.append(('tkill', tid))\n"
              "      if libc.syscall(234, pid, tid, sig) == 0: sent.append(('tgkill', tid))\n"
              "log('kill -1')\n"
              "try:\n  os.kill(-1, signal.SIGTERM)\n  sent.append(('kill', -1))\nexcept Exception:\n  pass\n"
              "print('sent', len(sent), sent)", "", 512 << 20, 10000);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(r.stdout_data.substr(0, 7), "sent 0 ")
      << SandboxVerdictName(r.verdict) << " signal " << r.signal << ": " << r.stdout_data << r.stderr_data;
  for (pid_t t : targets) {
    ASSERT_EQ(kill(t, 0), 0) << "pid " << t << " is gone";
    std::string stat;
    std::getline(std::ifstream("/proc/" + std::to_string(t) + "/stat"), stat);
    const size_t paren = stat.rfind(')');
    ASSERT_TRUE(paren != std::string::npos && paren + 2 < stat.size()) << stat;
    EXPECT_EQ(std::string("TtZX").find(stat[paren + 2]), std::string::npos) << "pid " << t << ": " << stat;
  }
  EXPECT_EQ(Py("print(1)").stdout_data, "1\n");
}

// Filling the disk: bounded by the private tmpfs (namespaces) or by the file
// size and time limits, and gone when the execution ends, so the next one runs.
TEST_F(SandboxTest, HostileFillsTheDisk) {
  // 256 MiB at most on a host's disk; the container test lets it fill the pod's bounded /tmp.
  const char* cap = getenv("ZERORL_TEST_FILL_MIB");
  auto r = Py("import os, tempfile\nn = 0\n"
              "for k, d in enumerate(['.', tempfile.gettempdir(), '/tmp', '/var/tmp', '/dev/shm']):\n"
              "  for i in range(1024):\n"
              "    if n >= " + std::string(cap != nullptr ? cap : "256") + ": break\n"
              "    try:\n"
              "      with open(os.path.join(d, 'fill%d-%d' % (k, i)), 'wb') as f:\n"
              "        f.write(b'x' * (8 << 20))\n"
              "      n += 8\n"
              "    except OSError:\n      break\n"
              "print(n)", "", 512 << 20, 10000);  // generous: a loaded machine is slow to write
  const int mib = std::atoi(r.stdout_data.c_str());
  std::cerr << "the program wrote " << mib << " MiB (" << SandboxVerdictName(r.verdict) << ")\n";
  if (iso() == Isolation::kNamespaces) {
    EXPECT_LE(mib, 48) << "the private /tmp is bounded";
  }
  // Nothing of it is left: the sandbox's base dir holds no work dir.
  int left = 0;
  for (const auto& e : std::filesystem::directory_iterator(sandbox_->base_dir())) {
    ++left;
    std::cerr << "left over: " << e.path() << "\n";
  }
  EXPECT_EQ(left, 0);
  auto next = Py("open('x', 'wb').write(b'y' * (8 << 20))\nprint('ok')", "", 512 << 20, 10000);
  EXPECT_EQ(next.stdout_data, "ok\n") << next.stderr_data;
}

// Reaching anything over the network or local sockets: TCP and UDP on loopback,
// an abstract and a pathname unix socket of ours, netlink, and the addresses in
// ZERORL_TEST_CONNECT (the other actors, in the container test).
TEST_F(SandboxTest, HostileConnectsAnywhere) {
  auto listen_on = [](int type) {
    int fd = socket(AF_INET, type, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    if (type == SOCK_STREAM) listen(fd, 4);
    socklen_t len = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return std::make_pair(fd, static_cast<int>(ntohs(addr.sin_port)));
  };
  auto [tcp, tcp_port] = listen_on(SOCK_STREAM);
  auto [udp, udp_port] = listen_on(SOCK_DGRAM);
  ASSERT_GE(tcp, 0);
  ASSERT_GE(udp, 0);
  const std::string abstract_name = "zerorl-sandbox-test-" + std::to_string(getpid());
  int abs_fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un ua{};
  ua.sun_family = AF_UNIX;
  std::memcpy(ua.sun_path + 1, abstract_name.data(), abstract_name.size());
  ASSERT_EQ(bind(abs_fd, reinterpret_cast<sockaddr*>(&ua), offsetof(sockaddr_un, sun_path) + 1 + abstract_name.size()),
            0);
  listen(abs_fd, 4);
  fcntl(abs_fd, F_SETFL, O_NONBLOCK);
  const std::string sock_dir = ::testing::TempDir() + "/sbx_sock";
  std::filesystem::create_directories(sock_dir);
  chmod(sock_dir.c_str(), 0700);
  const std::string sock_path = sock_dir + "/s";
  unlink(sock_path.c_str());
  int path_fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un up{};
  up.sun_family = AF_UNIX;
  std::snprintf(up.sun_path, sizeof up.sun_path, "%s", sock_path.c_str());
  ASSERT_EQ(bind(path_fd, reinterpret_cast<sockaddr*>(&up), sizeof up), 0);
  listen(path_fd, 4);
  fcntl(path_fd, F_SETFL, O_NONBLOCK);

  std::string tcp_targets = "'127.0.0.1:" + std::to_string(tcp_port) + "', ";
  if (const char* c = getenv("ZERORL_TEST_CONNECT")) {
    for (absl::string_view a : absl::StrSplit(c, ',', absl::SkipEmpty())) tcp_targets += "'" + std::string(a) + "', ";
  }
  auto r = Py("import socket\n"
              "for hp in [" + tcp_targets + "]:\n"
              "  h, p = hp.rsplit(':', 1)\n"
              "  try:\n    socket.create_connection((h, int(p)), timeout=0.5)\n    print('connected tcp', hp)\n"
              "  except Exception as e:\n    print('no tcp', hp, type(e).__name__)\n"
              "for name, addr in [('abstract', '\\0" + abstract_name + "'), ('path', '" + sock_path + "')]:\n"
              "  try:\n    s = socket.socket(socket.AF_UNIX)\n    s.settimeout(0.5)\n    s.connect(addr)\n"
              "    print('connected unix', name)\n"
              "  except Exception as e:\n    print('no unix', name, type(e).__name__)\n"
              "try:\n  socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', " +
              std::to_string(udp_port) + "))\n  print('sent udp')\nexcept Exception as e:\n  print('no udp')\n"
              "try:\n  socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)\n  print('opened netlink')\n"
              "except Exception as e:\n  print('no netlink')\n");
  std::cerr << r.stdout_data;
  EXPECT_EQ(r.stdout_data.find("connected tcp"), std::string::npos) << r.stdout_data;
  EXPECT_EQ(r.stdout_data.find("connected unix abstract"), std::string::npos) << r.stdout_data;
  EXPECT_EQ(r.stdout_data.find("sent udp"), std::string::npos) << r.stdout_data;
  EXPECT_EQ(r.stdout_data.find("opened netlink"), std::string::npos) << r.stdout_data;
  if (iso() != Isolation::kBwrap) {
    EXPECT_EQ(r.stdout_data.find("connected unix path"), std::string::npos) << r.stdout_data;
  }
  EXPECT_NE(r.stdout_data.find("no tcp"), std::string::npos) << "the program did not run: " << r.stderr_data;
  EXPECT_LT(accept(tcp, nullptr, nullptr), 0);
  EXPECT_LT(accept(abs_fd, nullptr, nullptr), 0);
  char buf[4];
  EXPECT_LT(recv(udp, buf, sizeof buf, 0), 0);
  for (int fd : {tcp, udp, abs_fd, path_fd}) close(fd);
  std::filesystem::remove_all(sock_dir);
}

}  // namespace
}  // namespace zerorl::reward
