// `zerorl bench WHAT`: benchmarks that print a ratio against a peer measured in
// the same run, plus machine-readable lines "name value". Each returns an exit code.
#pragma once

namespace zerorl::bench {

int BenchModel(int argc, char** argv);    // bench/bench_model.cc   (issue 3)
int BenchReward(int argc, char** argv);   // bench/bench_reward.cc  (issue 4)
int BenchBuffer(int argc, char** argv);   // bench/bench_buffer.cc  (issue 5)
int BenchWeights(int argc, char** argv);  // bench/bench_weights.cc (issue 6)
int BenchPipeline(int argc, char** argv); // bench/bench_pipeline.cc (issue 18)

}  // namespace zerorl::bench
