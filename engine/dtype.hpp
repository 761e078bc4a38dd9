// Element types: f32 for training, i32 / i8 / u8 for quantized data and indices.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace quench {

enum class DType : uint8_t { f32, i32, i8, u8 };
inline constexpr int kNumDTypes = 4;

struct DTypeInfo {
  std::string_view name;  // as in error messages and printing
  std::string_view safetensors_name;
  size_t size;
};
inline constexpr DTypeInfo kDTypeInfo[kNumDTypes] = {
    {"float32", "F32", 4},
    {"int32", "I32", 4},
    {"int8", "I8", 1},
    {"uint8", "U8", 1},
};

constexpr const DTypeInfo& info(DType t) { return kDTypeInfo[static_cast<int>(t)]; }
constexpr size_t element_size(DType t) { return info(t).size; }
constexpr std::string_view dtype_name(DType t) { return info(t).name; }

template <class T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::f32; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::i32; };
template <> struct dtype_of<int8_t> { static constexpr DType value = DType::i8; };
template <> struct dtype_of<uint8_t> { static constexpr DType value = DType::u8; };
template <class T> inline constexpr DType dtype_v = dtype_of<T>::value;

// Calls f(T{}) with T the C++ type of `t`.
template <class F>
decltype(auto) dispatch_dtype(DType t, F&& f) {
  switch (t) {
    case DType::f32: return f(float{});
    case DType::i32: return f(int32_t{});
    case DType::i8: return f(int8_t{});
    case DType::u8: return f(uint8_t{});
  }
  return f(float{});
}

}  // namespace quench
