#include "nn/data/image_folder.hpp"
