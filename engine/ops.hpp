// Every op of the engine.
#pragma once
#include "engine/ops/creation.hpp"
#include "engine/ops/linalg.hpp"
#include "engine/ops/nn_ops.hpp"
#include "engine/ops/pointwise.hpp"
#include "engine/ops/reduce.hpp"
#include "engine/ops/shape_ops.hpp"
