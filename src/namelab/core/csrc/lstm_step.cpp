// The LSTM step's elementwise work in one pass over a step's rows (engine.py's C++ path).
//
// torch splits an elementwise call across threads only above 32,768 elements, and a
// step's (n_t, H) calls never reach that at batch 128, hidden 256: each ran on one
// thread. Here one call per step does all of a step's gate math, its rows shared out
// by at::parallel_for (torch's own thread pool, so torch.set_num_threads holds) with a
// small grain. Built with -ffast-math so that gcc vectorizes expf/tanhf through glibc's
// libmvec (math-vector.h declares them SIMD only under __FAST_MATH__); every value
// stays finite or saturates as IEEE arithmetic says (1 / (1 + inf) = 0).

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <optional>

namespace {

inline float exp_(float x) { return expf(x); }
inline double exp_(double x) { return exp(x); }
inline float tanh_(float x) { return tanhf(x); }
inline double tanh_(double x) { return tanh(x); }

template <typename T>
inline T sigmoid(T x) {
  return T(1) / (T(1) + exp_(-x));
}

// Rows per task: about 8k values each, so a full step (128 rows of 4 * 256 gates) is
// shared by up to 16 tasks and a short tail step (a few names left) stays on one thread.
int64_t grain_rows(int64_t values_per_row) { return std::max<int64_t>(1, 8192 / values_per_row); }

void check(const at::Tensor& t, const char* name, int64_t rows, int64_t cols, const at::Tensor& like) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == like.scalar_type() && t.dim() == 2 &&
                  t.size(0) == rows && t.size(1) == cols && t.is_contiguous(),
              "lstm step: ", name, " must be a contiguous CPU (", rows, ", ", cols, ") tensor of ",
              like.scalar_type(), ", got ", t.sizes(), " ", t.scalar_type(), " on ", t.device(),
              t.is_contiguous() ? "" : " (not contiguous)");
}

// One row: gates hold i, f, 2g, o pre-activations (the g quarter pre-doubled, as the
// torch path's weights are) and become sigmoid(i), sigmoid(f), tanh(g), sigmoid(o).
template <typename T>
void forward_row(T* gates, const T* c_prev, T* c, T* tanh_c, T* h, int64_t H) {
  T* gi = gates;
  T* gf = gates + H;
  T* gg = gates + 2 * H;
  T* go = gates + 3 * H;
  if (c_prev == nullptr) {
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) {
      const T i = sigmoid(gi[j]), f = sigmoid(gf[j]), g = T(2) * sigmoid(gg[j]) - T(1), o = sigmoid(go[j]);
      gi[j] = i, gf[j] = f, gg[j] = g, go[j] = o;
      const T cj = i * g, tc = tanh_(cj);
      c[j] = cj, tanh_c[j] = tc, h[j] = o * tc;
    }
  } else {
    // c may be c_prev itself (inference updates the state in place): each j reads before it writes.
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) {
      const T i = sigmoid(gi[j]), f = sigmoid(gf[j]), g = T(2) * sigmoid(gg[j]) - T(1), o = sigmoid(go[j]);
      gi[j] = i, gf[j] = f, gg[j] = g, go[j] = o;
      const T cj = f * c_prev[j] + i * g, tc = tanh_(cj);
      c[j] = cj, tanh_c[j] = tc, h[j] = o * tc;
    }
  }
}

// One row of the backward step. In: the activated gates, tanh(c_t), c_{t-1} (null at
// step 0), dh_t (plus this step's own incoming gradient, if any) and dc_t. Out: the
// gradients of the four pre-activations, and dc_{t-1} in place of dc_t.
template <typename T>
void backward_row(const T* gates, const T* tanh_c, const T* c_prev, const T* dh, const T* step_grad, T* dc,
                  T* dgates, int64_t H) {
  const T* gi = gates;
  const T* gf = gates + H;
  const T* gg = gates + 2 * H;
  const T* go = gates + 3 * H;
  T* di = dgates;
  T* df = dgates + H;
  T* dg = dgates + 2 * H;
  T* d_o = dgates + 3 * H;
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    const T dhj = step_grad == nullptr ? dh[j] : dh[j] + step_grad[j];
    const T i = gi[j], f = gf[j], g = gg[j], o = go[j], tc = tanh_c[j];
    const T dcj = dc[j] + dhj * o * (T(1) - tc * tc);
    const T cp = c_prev == nullptr ? T(0) : c_prev[j];
    di[j] = dcj * g * (i - i * i);
    df[j] = dcj * cp * (f - f * f);
    dg[j] = dcj * i * (T(1) - g * g);
    d_o[j] = dhj * tc * (o - o * o);
    dc[j] = dcj * f;
  }
}

void lstm_forward_step(at::Tensor gates, std::optional<at::Tensor> c_prev, at::Tensor c, at::Tensor tanh_c,
                       at::Tensor h) {
  TORCH_CHECK(gates.dim() == 2 && gates.size(1) % 4 == 0, "lstm step: gates must be (n, 4H), got ", gates.sizes());
  const int64_t n = gates.size(0), H = gates.size(1) / 4;
  check(gates, "gates", n, 4 * H, gates);
  check(c, "c", n, H, gates);
  check(tanh_c, "tanh_c", n, H, gates);
  check(h, "h", n, H, gates);
  if (c_prev) check(*c_prev, "c_prev", n, H, gates);
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "lstm_forward_step", [&] {
    scalar_t* g = gates.data_ptr<scalar_t>();
    const scalar_t* cp = c_prev ? c_prev->data_ptr<scalar_t>() : nullptr;
    scalar_t *cc = c.data_ptr<scalar_t>(), *tc = tanh_c.data_ptr<scalar_t>(), *hh = h.data_ptr<scalar_t>();
    at::parallel_for(0, n, grain_rows(4 * H), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        forward_row(g + r * 4 * H, cp ? cp + r * H : nullptr, cc + r * H, tc + r * H, hh + r * H, H);
      }
    });
  });
}

void lstm_backward_step(at::Tensor gates, at::Tensor tanh_c, std::optional<at::Tensor> c_prev, at::Tensor dh,
                        std::optional<at::Tensor> step_grad, at::Tensor dc, at::Tensor dgates) {
  TORCH_CHECK(gates.dim() == 2 && gates.size(1) % 4 == 0, "lstm step: gates must be (n, 4H), got ", gates.sizes());
  const int64_t n = gates.size(0), H = gates.size(1) / 4;
  check(gates, "gates", n, 4 * H, gates);
  check(tanh_c, "tanh_c", n, H, gates);
  check(dh, "dh", n, H, gates);
  check(dc, "dc", n, H, gates);
  check(dgates, "dgates", n, 4 * H, gates);
  if (c_prev) check(*c_prev, "c_prev", n, H, gates);
  if (step_grad) check(*step_grad, "step_grad", n, H, gates);
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "lstm_backward_step", [&] {
    const scalar_t *g = gates.data_ptr<scalar_t>(), *tc = tanh_c.data_ptr<scalar_t>();
    const scalar_t* cp = c_prev ? c_prev->data_ptr<scalar_t>() : nullptr;
    const scalar_t* sg = step_grad ? step_grad->data_ptr<scalar_t>() : nullptr;
    const scalar_t* dhp = dh.data_ptr<scalar_t>();
    scalar_t *dcp = dc.data_ptr<scalar_t>(), *dg = dgates.data_ptr<scalar_t>();
    at::parallel_for(0, n, grain_rows(4 * H), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        backward_row(g + r * 4 * H, tc + r * H, cp ? cp + r * H : nullptr, dhp + r * H, sg ? sg + r * H : nullptr,
                     dcp + r * H, dg + r * 4 * H, H);
      }
    });
  });
}

}  // namespace

TORCH_LIBRARY(namelab, m) {
  m.def("lstm_forward_step(Tensor(a!) gates, Tensor? c_prev, Tensor(b!) c, Tensor(c!) tanh_c, Tensor(d!) h) -> ()");
  m.def(
      "lstm_backward_step(Tensor gates, Tensor tanh_c, Tensor? c_prev, Tensor dh, Tensor? step_grad, "
      "Tensor(a!) dc, Tensor(b!) dgates) -> ()");
}

TORCH_LIBRARY_IMPL(namelab, CPU, m) {
  m.impl("lstm_forward_step", &lstm_forward_step);
  m.impl("lstm_backward_step", &lstm_backward_step);
}
