// `zerorlctl`: inspect and steer zerorl deployments over gRPC (issue 8).
#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  const char* kHelp =
      "zerorlctl — inspect and steer zerorl runs\n\n"
      "usage: zerorlctl [--addr HOST:PORT] [--token-file F] [--output table|json|jsonl] COMMAND\n\n"
      "commands:\n"
      "  runs list | show RUN | pause RUN | resume RUN | stop RUN\n"
      "  traj list | show ID | tail | export\n"
      "  reward get | set SPEC.yaml | history | rollback VERSION | test SPEC.yaml --traj ID\n"
      "  metrics --run RUN [--last N]\n"
      "  workers list\n"
      "  completion bash|zsh\n";
  if (argc >= 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
    std::fputs(kHelp, stdout);
    return 0;
  }
  std::fputs(kHelp, stderr);
  std::fputs("\nzerorlctl: not available yet (issue 8 has not landed)\n", stderr);
  return 2;
}
