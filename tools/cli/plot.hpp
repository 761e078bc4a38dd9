// A small line-plot rasterizer for the training curves in report.md: axes with min/max tick labels,
// one polyline per series, a legend; text in a built-in 3x5 pixel font (scaled). Written as PNG with
// stb_image_write.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace quench::cli {

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
  bool operator==(const Rgb& o) const { return r == o.r && g == o.g && b == o.b; }
};

// An RGB image, row-major, 3 bytes per pixel.
struct Image {
  int width = 0, height = 0;
  std::vector<uint8_t> pixels;  // [height][width][3]
  Image(int w, int h, Rgb fill = {255, 255, 255});
  Rgb at(int x, int y) const;
  void set(int x, int y, Rgb c);  // ignores points outside
  bool contains_color(Rgb c) const;
};

struct Series {
  std::string name;  // legend text (letters, digits, space, + - . : / %)
  std::vector<double> x, y;
  Rgb color;
};

// Draws one panel into `img` at [x0, x0 + w) x [y0, y0 + h): title, axes, lines, legend.
void draw_panel(Image& img, int x0, int y0, int w, int h, const std::string& title,
                const std::vector<Series>& series);
// A text line at (x, y) (top left), `scale` pixels per font pixel.
void draw_text(Image& img, int x, int y, const std::string& text, Rgb color, int scale = 2);
// Writes a PNG; throws quench::Error naming the path on failure.
void write_png(const std::string& path, const Image& img);

// The palette of the report's curves.
inline constexpr Rgb kBlue{31, 119, 180}, kOrange{255, 127, 14}, kGreen{44, 160, 44}, kRed{214, 39, 40};

}  // namespace quench::cli
