// quench: quantization-aware training with distillation. The one header applications include.
#pragma once
#include "engine/autograd.hpp"
#include "engine/ops.hpp"
#include "engine/tensor.hpp"
#include "kernels/parallel.hpp"
