#include "nn/data/loader.hpp"
