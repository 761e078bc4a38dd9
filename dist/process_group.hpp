// The processes of a data-parallel job and the collectives training needs. Under `mpirun -np N` it
// is MPI_COMM_WORLD (Open MPI from Debian: libopenmpi-dev, openmpi-bin); started on its own (no MPI
// launcher in the environment), or built without MPI (meson -Dmpi=disabled), it is a world of one
// process whose collectives copy nothing.
//
//   auto& pg = dist::ProcessGroup::world();   // MPI_Init_thread on first use, finalized at exit
//   if (pg.is_main()) save(...);              // rank 0 alone writes files and logs
//
// Collectives run on the calling thread. Sums are MPI_Allreduce with MPI_SUM: Open MPI picks its
// algorithm from the world size and the message size alone, so for a given world size the order of
// the additions, and so every bit of the result, is the same from run to run.
#pragma once
#include <cstdint>
#include <string>

namespace quench::dist {

class ProcessGroup {
 public:
  // The job's processes (MPI_COMM_WORLD), or a world of one.
  static ProcessGroup& world();
  // A world of this process alone, whatever the job (e.g. a single-process reference inside an MPI
  // job); its collectives touch nothing.
  static ProcessGroup& self();

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool is_main() const { return rank_ == 0; }
  // Whether this build talks MPI and the process was started by an MPI launcher with others.
  bool distributed() const { return size_ > 1; }

  // Element-wise sums over every process, in place; every process gets the result.
  void all_reduce_sum(float* data, int64_t n);
  void all_reduce_sum(double* data, int64_t n);
  void all_reduce_sum(int64_t* data, int64_t n);
  // Rank root's bytes to every process.
  void broadcast(void* data, int64_t bytes, int root = 0);
  void barrier();
  // Stops every process of the job: rank `rank()` failed with `why` (printed), so no rank waits
  // forever on a collective the failed one will never join.
  [[noreturn]] void abort(const std::string& why, int code = 1);

 private:
  explicit ProcessGroup(bool join_world);
  int rank_ = 0, size_ = 1;
};

}  // namespace quench::dist
