// An application that embeds quench through the installed library: fits y = 3x - 1 with autograd.
#include <quench/quench.hpp>

#include <cmath>
#include <cstdio>

int main() {
  using namespace quench;
  Generator gen(42);
  Tensor x = randn({256, 1}, gen);
  Tensor y = x * 3.0 - 1.0;
  Tensor w = zeros({1, 1}).requires_grad_();
  Tensor b = zeros({1}).requires_grad_();
  float loss_value = 0.f;
  for (int step = 0; step < 200; ++step) {
    Tensor err = linear(x, w, b) - y;
    Tensor loss = (err * err).mean();
    loss_value = loss.item<float>();
    loss.backward();
    NoGradGuard no_grad;
    w.copy_(w - w.grad() * 0.1);
    b.copy_(b - b.grad() * 0.1);
    w.grad().zero_();
    b.grad().zero_();
  }
  float wv = w.item<float>(), bv = b.item<float>();
  std::printf("embed: fitted w=%.4f b=%.4f loss=%.2e with %d threads\n", wv, bv, loss_value,
              get_num_threads());
  return (std::abs(wv - 3.f) < 1e-3f && std::abs(bv + 1.f) < 1e-3f) ? 0 : 1;
}
