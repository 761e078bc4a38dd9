// The processes of a data-parallel job and the collectives training needs. Under `mpirun -np N` it
// is MPI_COMM_WORLD (Open MPI from Debian: libopenmpi-dev, openmpi-bin); started on its own (no MPI
// launcher in the environment), or built without MPI (meson -Dmpi=disabled), it is a world of one
// process whose collectives copy nothing.
//
//   auto& pg = dist::ProcessGroup::world();   // MPI_Init_thread on first use, finalized at exit
//   if (pg.is_main()) save(...);              // rank 0 alone writes files and logs
//
// Collectives block the calling thread until every process has joined, for at most timeout()
// seconds: a process that waits longer (another rank died, hangs or skipped the collective) stops
// the whole job with a message naming the collective, instead of hanging it. Sums use MPI_SUM: Open
// MPI picks its algorithm from the world size and the message size alone, so for a given world size
// the order of the additions, and so every bit of the result, is the same from run to run.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

namespace quench::dist {

class ProcessGroup {
 public:
  // The job's processes (MPI_COMM_WORLD), or a world of one.
  static ProcessGroup& world();
  // A world of this process alone, whatever the job (e.g. a single-process reference inside an MPI
  // job); its collectives touch nothing.
  static ProcessGroup& self();
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool is_main() const { return rank_ == 0; }
  // Whether this build talks MPI and the process was started by an MPI launcher with others.
  bool distributed() const { return size_ > 1; }

  // The same processes on a communicator of their own (MPI_Comm_dup, as PyTorch's new_group): its
  // collectives never pair with this group's, so a second thread can run them while this one runs
  // others. Call it on every process, in the same order. Null when the MPI library cannot serve two
  // threads at once (it did not grant MPI_THREAD_MULTIPLE).
  std::unique_ptr<ProcessGroup> duplicate();

  // Element-wise sums over every process, in place; every process gets the result.
  void all_reduce_sum(float* data, int64_t n);
  void all_reduce_sum(double* data, int64_t n);
  void all_reduce_sum(int64_t* data, int64_t n);
  // Rank root's bytes to every process.
  void broadcast(void* data, int64_t bytes, int root = 0);
  void barrier();

  // How long a collective waits for the other processes before stopping the job: the environment's
  // QUENCH_DIST_TIMEOUT (seconds) when set, else 1800 (PyTorch's default). Groups made by duplicate()
  // start with their parent's.
  double timeout() const { return timeout_s_; }
  void set_timeout(double seconds);

  // Stops every process of the job: rank `rank()` failed with `why` (printed), so no rank waits
  // forever on a collective the failed one will never join.
  [[noreturn]] void abort(const std::string& why, int code = 1);

 private:
  explicit ProcessGroup(bool join_world);
  ProcessGroup(void* comm, int rank, int size, double timeout_s);
  template <class T>
  void all_reduce(T* data, int64_t n, const char* op);

  int rank_ = 0, size_ = 1;
  double timeout_s_ = 1800;
  void* comm_ = nullptr;  // the MPI communicator (opaque here, so users need no mpi.h)
  bool owns_comm_ = false;
  bool thread_multiple_ = false;
};

}  // namespace quench::dist
