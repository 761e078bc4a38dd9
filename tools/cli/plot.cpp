#include "tools/cli/plot.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include <stb_image_write.h>

#include "engine/error.hpp"

namespace quench::cli {

namespace {

// 3x5 glyphs: 5 rows of 3 bits (bit 2 = left column), one table entry per character.
struct Glyph {
  char c;
  uint8_t rows[5];
};
constexpr Glyph kFont[] = {
    {'0', {7, 5, 5, 5, 7}}, {'1', {2, 6, 2, 2, 7}}, {'2', {7, 1, 7, 4, 7}}, {'3', {7, 1, 7, 1, 7}},
    {'4', {5, 5, 7, 1, 1}}, {'5', {7, 4, 7, 1, 7}}, {'6', {7, 4, 7, 5, 7}}, {'7', {7, 1, 1, 1, 1}},
    {'8', {7, 5, 7, 5, 7}}, {'9', {7, 5, 7, 1, 7}}, {'A', {2, 5, 7, 5, 5}}, {'B', {6, 5, 6, 5, 6}},
    {'C', {7, 4, 4, 4, 7}}, {'D', {6, 5, 5, 5, 6}}, {'E', {7, 4, 6, 4, 7}}, {'F', {7, 4, 6, 4, 4}},
    {'G', {7, 4, 5, 5, 7}}, {'H', {5, 5, 7, 5, 5}}, {'I', {7, 2, 2, 2, 7}}, {'J', {1, 1, 1, 5, 7}},
    {'K', {5, 5, 6, 5, 5}}, {'L', {4, 4, 4, 4, 7}}, {'M', {5, 7, 7, 5, 5}}, {'N', {6, 5, 5, 5, 5}},
    {'O', {7, 5, 5, 5, 7}}, {'P', {7, 5, 7, 4, 4}}, {'Q', {2, 5, 5, 6, 3}}, {'R', {7, 5, 6, 5, 5}},
    {'S', {7, 4, 7, 1, 7}}, {'T', {7, 2, 2, 2, 2}}, {'U', {5, 5, 5, 5, 7}}, {'V', {5, 5, 5, 5, 2}},
    {'W', {5, 5, 7, 7, 5}}, {'X', {5, 5, 2, 5, 5}}, {'Y', {5, 5, 2, 2, 2}}, {'Z', {7, 1, 2, 4, 7}},
    {'+', {0, 2, 7, 2, 0}}, {'-', {0, 0, 7, 0, 0}}, {'.', {0, 0, 0, 0, 2}}, {':', {0, 2, 0, 2, 0}},
    {'/', {1, 1, 2, 4, 4}}, {'%', {5, 1, 2, 4, 5}}, {'(', {2, 4, 4, 4, 2}}, {')', {2, 1, 1, 1, 2}},
    {' ', {0, 0, 0, 0, 0}},
};

const Glyph* glyph(char c) {
  c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (const Glyph& g : kFont)
    if (g.c == c) return &g;
  return nullptr;
}

void fill_rect(Image& img, int x, int y, int w, int h, Rgb c) {
  for (int j = y; j < y + h; ++j)
    for (int i = x; i < x + w; ++i) img.set(i, j, c);
}

// Bresenham, `thick` pixels wide (a square brush).
void draw_line(Image& img, int x0, int y0, int x1, int y1, Rgb c, int thick = 1) {
  int dx = std::abs(x1 - x0), sx = x0 < x1 ? 1 : -1, dy = -std::abs(y1 - y0), sy = y0 < y1 ? 1 : -1;
  int err = dx + dy;
  for (;;) {
    fill_rect(img, x0 - thick / 2, y0 - thick / 2, thick, thick, c);
    if (x0 == x1 && y0 == y1) break;
    const int e2 = 2 * err;
    if (e2 >= dy) err += dy, x0 += sx;
    if (e2 <= dx) err += dx, y0 += sy;
  }
}

std::string fmt(double v) {
  char buf[32];
  if (v == std::round(v) && std::fabs(v) < 1e9) {  // epochs and other whole numbers
    std::snprintf(buf, sizeof buf, "%.0f", v);
    return buf;
  }
  std::snprintf(buf, sizeof buf, std::fabs(v) >= 100 ? "%.1f" : std::fabs(v) >= 10 ? "%.2f" : "%.3f", v);
  return buf;
}

}  // namespace

Image::Image(int w, int h, Rgb fill) : width(w), height(h), pixels(static_cast<size_t>(w) * h * 3) {
  QUENCH_CHECK(w > 0 && h > 0, "Image: size must be positive, got ", w, "x", h);
  for (size_t i = 0; i < pixels.size(); i += 3) pixels[i] = fill.r, pixels[i + 1] = fill.g, pixels[i + 2] = fill.b;
}

Rgb Image::at(int x, int y) const {
  const size_t i = (static_cast<size_t>(y) * width + x) * 3;
  return {pixels[i], pixels[i + 1], pixels[i + 2]};
}

void Image::set(int x, int y, Rgb c) {
  if (x < 0 || y < 0 || x >= width || y >= height) return;
  const size_t i = (static_cast<size_t>(y) * width + x) * 3;
  pixels[i] = c.r, pixels[i + 1] = c.g, pixels[i + 2] = c.b;
}

bool Image::contains_color(Rgb c) const {
  for (size_t i = 0; i < pixels.size(); i += 3)
    if (pixels[i] == c.r && pixels[i + 1] == c.g && pixels[i + 2] == c.b) return true;
  return false;
}

void draw_text(Image& img, int x, int y, const std::string& text, Rgb color, int scale) {
  for (char ch : text) {
    if (const Glyph* g = glyph(ch))
      for (int r = 0; r < 5; ++r)
        for (int col = 0; col < 3; ++col)
          if (g->rows[r] & (4 >> col)) fill_rect(img, x + col * scale, y + r * scale, scale, scale, color);
    x += 4 * scale;
  }
}

void draw_panel(Image& img, int x0, int y0, int w, int h, const std::string& title,
                const std::vector<Series>& series) {
  const Rgb black{0, 0, 0}, grey{200, 200, 200};
  const int s = 2;  // font scale
  draw_text(img, x0 + 60, y0 + 6, title, black, s);
  // Plot area: room for y labels on the left, x labels below, legend at the top.
  const int px = x0 + 70, py = y0 + 50, pw = w - 90, ph = h - 90;
  double xmin = 1e300, xmax = -1e300, ymin = 1e300, ymax = -1e300;
  for (const Series& se : series) {
    QUENCH_CHECK(se.x.size() == se.y.size(), "draw_panel: series '", se.name, "' has ", se.x.size(),
                 " x values but ", se.y.size(), " y values");
    for (size_t i = 0; i < se.x.size(); ++i) {
      xmin = std::min(xmin, se.x[i]), xmax = std::max(xmax, se.x[i]);
      ymin = std::min(ymin, se.y[i]), ymax = std::max(ymax, se.y[i]);
    }
  }
  if (xmin > xmax) xmin = 0, xmax = 1, ymin = 0, ymax = 1;  // no points: empty axes
  if (xmax - xmin < 1e-12) xmin -= 0.5, xmax += 0.5;
  const double pad = std::max(ymax - ymin, 1e-6) * 0.05;
  ymin -= pad, ymax += pad;
  auto X = [&](double v) { return px + static_cast<int>(std::lround((v - xmin) / (xmax - xmin) * (pw - 1))); };
  auto Y = [&](double v) {
    return py + ph - 1 - static_cast<int>(std::lround((v - ymin) / (ymax - ymin) * (ph - 1)));
  };
  // Grid at quarters, axes, tick labels.
  for (int k = 1; k < 4; ++k) {
    draw_line(img, px, py + ph * k / 4, px + pw - 1, py + ph * k / 4, grey);
    draw_line(img, px + pw * k / 4, py, px + pw * k / 4, py + ph - 1, grey);
  }
  draw_line(img, px, py, px, py + ph - 1, black, 2);
  draw_line(img, px, py + ph - 1, px + pw - 1, py + ph - 1, black, 2);
  for (int k = 0; k <= 4; ++k) {
    const double v = ymin + (ymax - ymin) * k / 4;
    draw_text(img, x0 + 4, Y(v) - 5, fmt(v), black, s);
  }
  draw_text(img, px - 4, py + ph + 8, fmt(xmin), black, s);
  draw_text(img, px + pw - 24, py + ph + 8, fmt(xmax), black, s);
  draw_text(img, px + pw / 2 - 20, py + ph + 22, "EPOCH", black, s);
  // Lines, then a dot on each point.
  for (const Series& se : series) {
    for (size_t i = 1; i < se.x.size(); ++i)
      draw_line(img, X(se.x[i - 1]), Y(se.y[i - 1]), X(se.x[i]), Y(se.y[i]), se.color, 3);
    for (size_t i = 0; i < se.x.size(); ++i) fill_rect(img, X(se.x[i]) - 3, Y(se.y[i]) - 3, 7, 7, se.color);
  }
  // Legend: a swatch and the name per series.
  int ly = y0 + 26;
  for (const Series& se : series) {
    fill_rect(img, px + 10, ly, 20, 10, se.color);
    draw_text(img, px + 36, ly, se.name, black, s);
    ly += 14;
  }
}

void write_png(const std::string& path, const Image& img) {
  const int ok = stbi_write_png(path.c_str(), img.width, img.height, 3, img.pixels.data(), img.width * 3);
  QUENCH_CHECK(ok != 0, "write_png: cannot write ", path, " (", img.width, "x", img.height, ")");
}

}  // namespace quench::cli
