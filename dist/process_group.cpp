#include "dist/process_group.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "engine/error.hpp"

#if QUENCH_HAVE_MPI
#include <mpi.h>
#endif

namespace quench::dist {

namespace {

#if QUENCH_HAVE_MPI
// MPI counts are int: long buffers go in pieces.
constexpr int64_t kChunk = std::numeric_limits<int>::max() / 8;

template <class T>
void all_reduce_chunks(T* data, int64_t n, MPI_Datatype type) {
  for (int64_t i = 0; i < n; i += kChunk) {
    const int count = static_cast<int>(std::min(kChunk, n - i));
    const int rc = MPI_Allreduce(MPI_IN_PLACE, data + i, count, type, MPI_SUM, MPI_COMM_WORLD);
    QUENCH_CHECK(rc == MPI_SUCCESS, "dist::all_reduce_sum: MPI_Allreduce of ", count, " values failed (", rc, ")");
  }
}

void finalize_at_exit() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}
#endif

}  // namespace

ProcessGroup::ProcessGroup(bool join_world) {
#if QUENCH_HAVE_MPI
  // Only a process an MPI launcher started joins MPI: a plain run stays a world of one, with no
  // MPI start-up cost and no MPI messages.
  const bool launched = std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMIX_RANK") || std::getenv("PMI_SIZE");
  if (!join_world || !launched) return;
  int inited = 0;
  MPI_Initialized(&inited);
  if (!inited) {
    int provided = 0;
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
    std::atexit(finalize_at_exit);
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
#else
  (void)join_world;
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

void ProcessGroup::all_reduce_sum(float* data, int64_t n) {
#if QUENCH_HAVE_MPI
  if (size_ > 1) all_reduce_chunks(data, n, MPI_FLOAT);
#else
  (void)data, (void)n;
#endif
}

void ProcessGroup::all_reduce_sum(double* data, int64_t n) {
#if QUENCH_HAVE_MPI
  if (size_ > 1) all_reduce_chunks(data, n, MPI_DOUBLE);
#else
  (void)data, (void)n;
#endif
}

void ProcessGroup::all_reduce_sum(int64_t* data, int64_t n) {
#if QUENCH_HAVE_MPI
  if (size_ > 1) all_reduce_chunks(data, n, MPI_INT64_T);
#else
  (void)data, (void)n;
#endif
}

void ProcessGroup::broadcast(void* data, int64_t bytes, int root) {
  QUENCH_CHECK(root >= 0 && root < size_, "dist::broadcast: root ", root, " is not a rank of a world of ", size_);
#if QUENCH_HAVE_MPI
  if (size_ == 1) return;
  auto* p = static_cast<char*>(data);
  for (int64_t i = 0; i < bytes; i += kChunk) {
    const int count = static_cast<int>(std::min(kChunk, bytes - i));
    const int rc = MPI_Bcast(p + i, count, MPI_BYTE, root, MPI_COMM_WORLD);
    QUENCH_CHECK(rc == MPI_SUCCESS, "dist::broadcast: MPI_Bcast of ", count, " bytes failed (", rc, ")");
  }
#else
  (void)data, (void)bytes;
#endif
}

void ProcessGroup::barrier() {
#if QUENCH_HAVE_MPI
  if (size_ > 1) MPI_Barrier(MPI_COMM_WORLD);
#endif
}

void ProcessGroup::abort(const std::string& why, int code) {
  std::fprintf(stderr, "quench: rank %d of %d: %s\n", rank_, size_, why.c_str());
  std::fflush(stderr);
#if QUENCH_HAVE_MPI
  if (size_ > 1) MPI_Abort(MPI_COMM_WORLD, code);
#endif
  std::exit(code);
}

}  // namespace quench::dist
