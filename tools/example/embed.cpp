// An application that embeds quench through the installed library: fits y = 3x - 1 with an
// nn::Linear and AdamW, then fake-quantizes the fitted weight to int8.
#include <quench/quench.hpp>

#include <cmath>
#include <cstdio>
#include <memory>

int main() {
  using namespace quench;
  Generator gen(42);
  Tensor x = randn({256, 1}, gen);
  Tensor y = x * 3.0 - 1.0;
  auto model = std::make_shared<nn::Linear>(1, 1);
  optim::AdamW opt(model->parameters(), optim::AdamWOptions(0.05).weight_decay(0.0));
  float loss_value = 0.f;
  for (int step = 0; step < 600; ++step) {
    opt.zero_grad();
    Tensor loss = mse_loss((*model)(x), y);
    loss_value = loss.item<float>();
    loss.backward();
    opt.step();
  }
  auto params = model->named_parameters();  // [("weight", w), ("bias", b)]
  Tensor w = params.at(0).second, b = params.at(1).second;
  float wv = w.item<float>(), bv = b.item<float>();
  quant::MinMaxObserver obs(quant::QuantSpec::int8_symmetric_per_tensor());
  obs.observe(w);
  quant::QParams qp = obs.calculate_qparams();
  float wq = quant::fake_quantize(w, qp.scale, qp.zero_point, obs.spec()).item<float>();
  std::printf("embed: fitted w=%.4f b=%.4f loss=%.2e (int8 w=%.4f) with %d threads\n", wv, bv,
              loss_value, wq, get_num_threads());
  return (std::abs(wv - 3.f) < 1e-2f && std::abs(bv + 1.f) < 1e-2f && std::abs(wq - wv) < 0.02f) ? 0 : 1;
}
