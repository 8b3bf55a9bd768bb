// The subcommands of the `zerorl` binary. Each takes the arguments after the
// subcommand name (argv[0] is the subcommand) and returns the process exit
// code: 0 ok, 1 failure, 2 usage error or not available.
#pragma once

namespace zerorl {

int RunCommand(int argc, char** argv);       // orchestrator/run_command.cc
int ServeCommand(int argc, char** argv);     // cli/serve_command.cc
int ScoreCommand(int argc, char** argv);     // reward/score_command.cc
int GenerateCommand(int argc, char** argv);  // model/generate_command.cc
int PretrainCommand(int argc, char** argv);  // learner/pretrain_command.cc
int BenchCommand(int argc, char** argv);     // bench/bench_command.cc
int PlotCommand(int argc, char** argv);      // orchestrator/plot_command.cc
int K8sCommand(int argc, char** argv);       // cli/k8s_command.cc

// Prints "zerorl NAME: not available yet (ISSUE)" and returns 2.
int NotYetAvailable(const char* name, const char* issue);

}  // namespace zerorl
