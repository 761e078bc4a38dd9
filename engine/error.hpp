// Errors: library code throws, never aborts. Messages say the op, the shapes and what was expected.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace quench {

// Thrown for every invalid call: shape or dtype mismatch, bad argument, bad file.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
template <class... Args>
std::string cat_str(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace quench

// QUENCH_CHECK(cond, "matmul: ", ...) throws quench::Error with the concatenated message.
#define QUENCH_CHECK(cond, ...)                                    \
  do {                                                             \
    if (!(cond)) throw ::quench::Error(::quench::detail::cat_str(__VA_ARGS__)); \
  } while (0)
