#include "dist/process_group.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <thread>

#include "engine/error.hpp"

#if QUENCH_HAVE_MPI
#include <mpi.h>
#endif

namespace quench::dist {

namespace {

double timeout_from_env() {
  const char* s = std::getenv("QUENCH_DIST_TIMEOUT");
  if (!s || !*s) return 1800;
  char* end = nullptr;
  const double v = std::strtod(s, &end);
  QUENCH_CHECK(end != s && *end == '\0' && v > 0, "dist: QUENCH_DIST_TIMEOUT must be a positive number of "
               "seconds, got '", s, "'");
  return v;
}

#if QUENCH_HAVE_MPI
// MPI counts are int: long buffers go in pieces.
constexpr int64_t kChunk = std::numeric_limits<int>::max() / 8;

static_assert(sizeof(MPI_Comm) <= sizeof(void*), "an MPI_Comm must fit the opaque handle");
MPI_Comm to_comm(void* p) {
  MPI_Comm c;
  std::memcpy(&c, &p, sizeof c);
  return c;
}
void* from_comm(MPI_Comm c) {
  void* p = nullptr;
  std::memcpy(&p, &c, sizeof c);
  return p;
}

template <class T> MPI_Datatype mpi_type();
template <> MPI_Datatype mpi_type<float>() { return MPI_FLOAT; }
template <> MPI_Datatype mpi_type<double>() { return MPI_DOUBLE; }
template <> MPI_Datatype mpi_type<int64_t>() { return MPI_INT64_T; }

// Waits for a non-blocking collective, at most `pg.timeout()` seconds. Each poll drives MPI's
// progress (moving the data over shared memory or the network) and then yields the core, so that a
// rank waiting for a slower one, or a communication thread waiting during backward, leaves the
// core to compute threads that need it rather than spinning against them.
void wait_for(MPI_Request& req, ProcessGroup& pg, const char* op, int64_t count) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  for (int64_t polls = 1;; ++polls) {
    int done = 0;
    const int rc = MPI_Test(&req, &done, MPI_STATUS_IGNORE);
    QUENCH_CHECK(rc == MPI_SUCCESS, op, " of ", count, " values failed (MPI error ", rc, ")");
    if (done) return;
    std::this_thread::yield();
    if (polls % 4096) continue;
    const double waited = std::chrono::duration<double>(Clock::now() - start).count();
    if (waited > pg.timeout()) {
      char why[256];
      std::snprintf(why, sizeof why, "%s of %lld values waited %.0f s for the other processes (timeout %g s, "
                    "QUENCH_DIST_TIMEOUT): a rank has stopped, hangs or skipped it; stopping the job",
                    op, static_cast<long long>(count), waited, pg.timeout());
      pg.abort(why);
    }
  }
}

void finalize_at_exit() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}
#endif

}  // namespace

ProcessGroup::ProcessGroup(bool join_world) : timeout_s_(timeout_from_env()) {
#if QUENCH_HAVE_MPI
  // Only a process an MPI launcher started joins MPI: a plain run stays a world of one, with no
  // MPI start-up cost and no MPI messages.
  const bool launched = std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMIX_RANK") || std::getenv("PMI_SIZE");
  if (!join_world || !launched) return;
  int inited = 0, provided = MPI_THREAD_SINGLE;
  MPI_Initialized(&inited);
  if (!inited) {
    // Multiple: DataParallel's gradient thread all-reduces while the main thread computes.
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
    std::atexit(finalize_at_exit);
  } else {
    MPI_Query_thread(&provided);
  }
  thread_multiple_ = provided == MPI_THREAD_MULTIPLE;
  comm_ = from_comm(MPI_COMM_WORLD);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
#else
  (void)join_world;
#endif
}

ProcessGroup::ProcessGroup(void* comm, int rank, int size, double timeout_s)
    : rank_(rank), size_(size), timeout_s_(timeout_s), comm_(comm), owns_comm_(true), thread_multiple_(true) {}

ProcessGroup::~ProcessGroup() {
#if QUENCH_HAVE_MPI
  int finalized = 1;
  if (owns_comm_) MPI_Finalized(&finalized);
  if (!finalized) {
    MPI_Comm c = to_comm(comm_);
    MPI_Comm_free(&c);
  }
#endif
}

ProcessGroup& ProcessGroup::world() {
  static ProcessGroup pg(true);
  return pg;
}

ProcessGroup& ProcessGroup::self() {
  static ProcessGroup pg(false);
  return pg;
}

std::unique_ptr<ProcessGroup> ProcessGroup::duplicate() {
  if (size_ == 1) return std::unique_ptr<ProcessGroup>(new ProcessGroup(nullptr, 0, 1, timeout_s_));
#if QUENCH_HAVE_MPI
  if (!thread_multiple_) return nullptr;
  MPI_Comm c;
  const int rc = MPI_Comm_dup(to_comm(comm_), &c);
  QUENCH_CHECK(rc == MPI_SUCCESS, "dist::ProcessGroup::duplicate: MPI_Comm_dup failed (MPI error ", rc, ")");
  return std::unique_ptr<ProcessGroup>(new ProcessGroup(from_comm(c), rank_, size_, timeout_s_));
#else
  return nullptr;
#endif
}

void ProcessGroup::set_timeout(double seconds) {
  QUENCH_CHECK(seconds > 0, "dist::ProcessGroup::set_timeout: the timeout must be positive, got ", seconds, " s");
  timeout_s_ = seconds;
}

template <class T>
void ProcessGroup::all_reduce(T* data, int64_t n, const char* op) {
#if QUENCH_HAVE_MPI
  if (size_ == 1) return;
  for (int64_t i = 0; i < n; i += kChunk) {
    const int count = static_cast<int>(std::min(kChunk, n - i));
    MPI_Request req;
    const int rc = MPI_Iallreduce(MPI_IN_PLACE, data + i, count, mpi_type<T>(), MPI_SUM, to_comm(comm_), &req);
    QUENCH_CHECK(rc == MPI_SUCCESS, op, ": MPI_Iallreduce of ", count, " values failed (MPI error ", rc, ")");
    wait_for(req, *this, op, count);
  }
#else
  (void)data, (void)n, (void)op;
#endif
}

void ProcessGroup::all_reduce_sum(float* data, int64_t n) { all_reduce(data, n, "dist::all_reduce_sum"); }
void ProcessGroup::all_reduce_sum(double* data, int64_t n) { all_reduce(data, n, "dist::all_reduce_sum"); }
void ProcessGroup::all_reduce_sum(int64_t* data, int64_t n) { all_reduce(data, n, "dist::all_reduce_sum"); }

void ProcessGroup::broadcast(void* data, int64_t bytes, int root) {
  QUENCH_CHECK(root >= 0 && root < size_, "dist::broadcast: root ", root, " is not a rank of a world of ", size_);
#if QUENCH_HAVE_MPI
  if (size_ == 1) return;
  auto* p = static_cast<char*>(data);
  for (int64_t i = 0; i < bytes; i += kChunk) {
    const int count = static_cast<int>(std::min(kChunk, bytes - i));
    MPI_Request req;
    const int rc = MPI_Ibcast(p + i, count, MPI_BYTE, root, to_comm(comm_), &req);
    QUENCH_CHECK(rc == MPI_SUCCESS, "dist::broadcast: MPI_Ibcast of ", count, " bytes failed (MPI error ", rc, ")");
    wait_for(req, *this, "dist::broadcast", count);
  }
#else
  (void)data, (void)bytes;
#endif
}

void ProcessGroup::barrier() {
#if QUENCH_HAVE_MPI
  if (size_ == 1) return;
  MPI_Request req;
  const int rc = MPI_Ibarrier(to_comm(comm_), &req);
  QUENCH_CHECK(rc == MPI_SUCCESS, "dist::barrier: MPI_Ibarrier failed (MPI error ", rc, ")");
  wait_for(req, *this, "dist::barrier", 0);
#endif
}

void ProcessGroup::abort(const std::string& why, int code) {
  std::fprintf(stderr, "quench: rank %d of %d: %s\n", rank_, size_, why.c_str());
  std::fflush(stderr);
#if QUENCH_HAVE_MPI
  if (size_ > 1) MPI_Abort(to_comm(comm_), code);
#endif
  std::exit(code);
}

}  // namespace quench::dist
