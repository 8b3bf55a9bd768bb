// The subcommands of the `zerorl` binary. Each takes the arguments after the
// subcommand name (argv[0] is the subcommand) and returns the process exit
// code: 0 ok, 1 failure, 2 usage error.
#pragma once

namespace zerorl {

int RunCommand(int argc, char** argv);       // cli/run_command.cc
int ServeCommand(int argc, char** argv);     // cli/serve_command.cc
int ScoreCommand(int argc, char** argv);     // cli/score_command.cc
int GenerateCommand(int argc, char** argv);  // cli/generate_command.cc
int PretrainCommand(int argc, char** argv);  // cli/pretrain_command.cc
int BenchCommand(int argc, char** argv);     // cli/bench_command.cc
int PlotCommand(int argc, char** argv);      // cli/plot_command.cc
int K8sCommand(int argc, char** argv);       // cli/k8s_command.cc

}  // namespace zerorl
