// Modulated deformable convolution on CPU: the column gather and its backward.
//
// The compiled kernel of geomrobust.models._deform_native (built on first use by
// geomrobust.models._deform_ext). Python does the matrix products; this file does the
// per-sample work that is slow as separate tensor operations:
//
//   deform_columns:           cols[b, l, k, c] = m · Σ_q a_q · x[b, corner_q, c]
//   deform_columns_backward:  from grad_cols, the input, offset and modulation gradients
//
// Layouts (all contiguous):
//   x          (B, H, W, C)               the input, channels last
//   offset     (B, G·K·2, Ho, Wo)         torchvision's layout: (dy, dx) per group and tap
//   mask       (B, G·K, Ho, Wo) or None   the modulation (DCNv2); None is DCNv1
//   cols       (B, Ho·Wo, K, C)           columns, one row of K·C per output pixel
//
// Sampling follows torchvision's kernel: a position at or beyond -1 / H (-1 / W) samples 0,
// and has zero offset and modulation gradient; corners outside the image contribute nothing,
// corners inside always contribute (also with weight 0, so a non-finite input propagates as
// in torchvision). One output pixel's samples are independent, so the forward runs in parallel
// over blocks of output pixels; the backward runs in parallel over images, so that no two
// threads add into the same input-gradient pixel.

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <type_traits>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

struct Geometry {
  int64_t batch, channels, height, width;  // input
  int64_t groups, group_channels;          // offset groups, channels per offset group
  int64_t kh, kw, taps;                    // kernel
  int64_t out_h, out_w, pixels;            // output
  int64_t sh, sw, ph, pw, dh, dw;          // stride, padding, dilation
};

// Output pixels per block: the samples of one tap and offset group for a block of output
// pixels are set up together, in loops over contiguous rows of the offset and the mask that the
// compiler vectorises, and kept in L1 for the channel loops.
constexpr int64_t kBlock = 256;

// The samples of one tap k and offset group of image b, for output pixels [l0, l0 + n): the
// element offset of each bilinear corner (y0, x0), (y0, x0+1), (y0+1, x0), (y0+1, x0+1) in the
// (H, W, C) image, -1 for a corner outside it; the bilinear weights a and the fractional parts
// ly, lx. A position outside (-1, H) × (-1, W) (or not finite) has every corner -1; one inside
// has at least one corner inside the image (see inside()).
template <typename T>
struct Samples {
  int64_t at[4][kBlock];
  T a[4][kBlock];
  T ly[kBlock], lx[kBlock];

  bool inside(int64_t i) const { return (at[0][i] & at[1][i] & at[2][i] & at[3][i]) >= 0; }

  // y_base/x_base: the tap's position without offset, per pixel of the block; dy, dx: the
  // offset rows of (image, group, tap) from pixel l0; channel: the group's first channel.
  void set(const T* __restrict y_base, const T* __restrict x_base, const T* __restrict dy,
           const T* __restrict dx, int64_t n, int64_t channel, const Geometry& g) {
    // Written so that the compiler vectorises it: locals, not g's fields (the stores could
    // alias those); bitwise operators and arithmetic selects, no branches; floor as a
    // truncation corrected by one (positions are clamped to [-1, H] × [-1, W] first, which
    // also maps NaN to -1).
    const int64_t height = g.height, width = g.width, c = g.channels, row = width * c;
    const T h = T(height), w = T(width);
    for (int64_t i = 0; i < n; ++i) {
      const T y_in = y_base[i] + dy[i], x_in = x_base[i] + dx[i];
      const int64_t in = (y_in > T(-1)) & (y_in < h) & (x_in > T(-1)) & (x_in < w);
      const T y = std::min(h, std::max(T(-1), y_in)), x = std::min(w, std::max(T(-1), x_in));
      const int64_t ty = static_cast<int64_t>(y), tx = static_cast<int64_t>(x);
      const int64_t y0 = ty - int64_t(T(ty) > y), x0 = tx - int64_t(T(tx) > x);
      const T fy = y - T(y0), fx = x - T(x0), hy = T(1) - fy, hx = T(1) - fx;
      const int64_t top = in & (y0 >= 0), bottom = in & (y0 + 1 < height);
      const int64_t left = x0 >= 0, right = x0 + 1 < width;
      const int64_t base = y0 * row + x0 * c + channel;
      // (flag - 1) is 0 for a corner inside, -1 (all bits) for one outside
      at[0][i] = base | ((top & left) - 1);
      at[1][i] = (base + c) | ((top & right) - 1);
      at[2][i] = (base + row) | ((bottom & left) - 1);
      at[3][i] = (base + row + c) | ((bottom & right) - 1);
      a[0][i] = hy * hx;
      a[1][i] = hy * fx;
      a[2][i] = fy * hx;
      a[3][i] = fy * fx;
      ly[i] = fy;
      lx[i] = fx;
    }
  }
};

// The positions of tap (ky, kx) without offsets, for output pixels [l0, l0 + n).
template <typename T>
void base_positions(const Geometry& g, int64_t ky, int64_t kx, int64_t l0, int64_t n, T* y_base,
                    T* x_base) {
  int64_t oy = l0 / g.out_w, ox = l0 % g.out_w;
  for (int64_t i = 0; i < n; ++i) {
    y_base[i] = T(oy * g.sh - g.ph + ky * g.dh);
    x_base[i] = T(ox * g.sw - g.pw + kx * g.dw);
    if (++ox == g.out_w) {
      ox = 0;
      ++oy;
    }
  }
}

// The channel loops of one sample (one offset group's channels), over its four corners p with
// weights w. N > 0: a compile-time channel count, for the 1-3 channels of a first layer, where a
// vector loop and its reductions cost more than they save; N == 0: cg channels, vectorised.
template <int N, typename T>
inline void interpolate(T* __restrict dst, const T* const* p, const T* w, int64_t cg) {
  const int64_t n = N > 0 ? N : cg;
  const T *p0 = p[0], *p1 = p[1], *p2 = p[2], *p3 = p[3];
  const T w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
#pragma omp simd if (N == 0)
  for (int64_t c = 0; c < n; ++c) {
    dst[c] = w0 * p0[c] + w1 * p1[c] + w2 * p2[c] + w3 * p3[c];
  }
}

// The backward's channel loop of one sample: v[q] = gc · p[q] (Dots) and gp[q] += w[q] · gc
// (Scatter, the input gradient); each part compiled in only where asked for.
template <int N, bool Dots, bool Scatter, typename T>
inline void backward_channels(const T* __restrict gc, const T* const* p, T* const* gp,
                              const T* w, T* v, int64_t cg) {
  const int64_t n = N > 0 ? N : cg;
  const T *p0 = Dots ? p[0] : nullptr, *p1 = Dots ? p[1] : nullptr;
  const T *p2 = Dots ? p[2] : nullptr, *p3 = Dots ? p[3] : nullptr;
  T *g0 = Scatter ? gp[0] : nullptr, *g1 = Scatter ? gp[1] : nullptr;
  T *g2 = Scatter ? gp[2] : nullptr, *g3 = Scatter ? gp[3] : nullptr;
  const T w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
  T v0 = 0, v1 = 0, v2 = 0, v3 = 0;
#pragma omp simd reduction(+ : v0, v1, v2, v3) if (N == 0)
  for (int64_t c = 0; c < n; ++c) {
    const T t = gc[c];
    if constexpr (Dots) {
      v0 += t * p0[c];
      v1 += t * p1[c];
      v2 += t * p2[c];
      v3 += t * p3[c];
    }
    if constexpr (Scatter) {
      g0[c] += w0 * t;
      g1[c] += w1 * t;
      g2[c] += w2 * t;
      g3[c] += w3 * t;
    }
  }
  if constexpr (Dots) {
    v[0] = v0;
    v[1] = v1;
    v[2] = v2;
    v[3] = v3;
  }
}

template <int N, typename T>
void columns_kernel(const T* x, const T* offset, const T* mask, T* cols, const Geometry& g) {
  const int64_t cg = g.group_channels, blocks = (g.pixels + kBlock - 1) / kBlock;
  // one unit: a block of output pixels of one image
  at::parallel_for(0, g.batch * blocks, 1, [&](int64_t begin, int64_t end) {
    const std::vector<T> zeros(cg, T(0));
    auto s = std::make_unique<Samples<T>>();
    T y_base[kBlock], x_base[kBlock];
    for (int64_t unit = begin; unit < end; ++unit) {
      const int64_t b = unit / blocks, l0 = (unit % blocks) * kBlock;
      const int64_t n = std::min(kBlock, g.pixels - l0);
      const T* image = x + b * g.height * g.width * g.channels;
      for (int64_t k = 0; k < g.taps; ++k) {
        base_positions(g, k / g.kw, k % g.kw, l0, n, y_base, x_base);
        for (int64_t grp = 0; grp < g.groups; ++grp) {
          const int64_t gk = (b * g.groups + grp) * g.taps + k;
          const T* dy = offset + 2 * gk * g.pixels + l0;
          s->set(y_base, x_base, dy, dy + g.pixels, n, grp * cg, g);
          const T* m = mask ? mask + gk * g.pixels + l0 : nullptr;
          T* dst = cols + ((b * g.pixels + l0) * g.taps + k) * g.channels + grp * cg;
          for (int64_t i = 0; i < n; ++i, dst += g.taps * g.channels) {
            const T mi = m ? m[i] : T(1);
            const T* p[4];
            T w[4];
            for (int q = 0; q < 4; ++q) {
              const bool on = s->at[q][i] >= 0;
              p[q] = on ? image + s->at[q][i] : zeros.data();
              w[q] = on ? mi * s->a[q][i] : T(0);
            }
            interpolate<N>(dst, p, w, cg);
          }
        }
      }
    }
  });
}

template <int N, typename T>
void columns_backward_kernel(const T* grad_cols, const T* x, const T* offset, const T* mask,
                             T* grad_x, T* grad_offset, T* grad_mask, const Geometry& g) {
  const int64_t cg = g.group_channels;
  const bool corners = grad_offset || grad_mask;
  // one unit: an image (no two threads add into the same input-gradient pixel)
  at::parallel_for(0, g.batch, 1, [&](int64_t begin, int64_t end) {
    const std::vector<T> zeros(cg, T(0));
    std::vector<T> sink(cg);  // input-gradient writes of corners outside the image
    auto s = std::make_unique<Samples<T>>();
    T y_base[kBlock], x_base[kBlock];
    T v[4][kBlock];  // grad_cols · corner, per corner and sample
    for (int64_t b = begin; b < end; ++b) {
      const int64_t image_at = b * g.height * g.width * g.channels;
      for (int64_t l0 = 0; l0 < g.pixels; l0 += kBlock) {
        const int64_t n = std::min(kBlock, g.pixels - l0);
        for (int64_t k = 0; k < g.taps; ++k) {
          base_positions(g, k / g.kw, k % g.kw, l0, n, y_base, x_base);
          for (int64_t grp = 0; grp < g.groups; ++grp) {
            const int64_t gk = (b * g.groups + grp) * g.taps + k;
            const T* dy = offset + 2 * gk * g.pixels + l0;
            s->set(y_base, x_base, dy, dy + g.pixels, n, grp * cg, g);
            const T* m = mask ? mask + gk * g.pixels + l0 : nullptr;
            const T* gc = grad_cols + ((b * g.pixels + l0) * g.taps + k) * g.channels + grp * cg;
            for (int64_t i = 0; i < n; ++i, gc += g.taps * g.channels) {
              const T mi = m ? m[i] : T(1);
              const T* p[4];
              T* gp[4];
              T w[4], vi[4];
              for (int q = 0; q < 4; ++q) {
                const bool on = s->at[q][i] >= 0;
                p[q] = on ? x + image_at + s->at[q][i] : zeros.data();
                gp[q] = on && grad_x ? grad_x + image_at + s->at[q][i] : sink.data();
                w[q] = on ? mi * s->a[q][i] : T(0);
              }
              if (!corners) {
                backward_channels<N, false, true>(gc, p, gp, w, vi, cg);
                continue;
              }
              if (grad_x) {
                backward_channels<N, true, true>(gc, p, gp, w, vi, cg);
              } else {
                backward_channels<N, true, false>(gc, p, gp, w, vi, cg);
              }
              for (int q = 0; q < 4; ++q) v[q][i] = vi[q];
            }
            if (!corners) continue;
            if (grad_mask) {
              T* out = grad_mask + gk * g.pixels + l0;
              for (int64_t i = 0; i < n; ++i) {
                const T value = s->a[0][i] * v[0][i] + s->a[1][i] * v[1][i] +
                                s->a[2][i] * v[2][i] + s->a[3][i] * v[3][i];
                out[i] = s->inside(i) ? value : T(0);
              }
            }
            if (grad_offset) {
              T* out_y = grad_offset + 2 * gk * g.pixels + l0;
              T* out_x = out_y + g.pixels;
              for (int64_t i = 0; i < n; ++i) {
                const T mi = m ? m[i] : T(1);
                const T ly = s->ly[i], lx = s->lx[i], hy = T(1) - ly, hx = T(1) - lx;
                const T gy = mi * (hx * (v[2][i] - v[0][i]) + lx * (v[3][i] - v[1][i]));
                const T gx = mi * (hy * (v[1][i] - v[0][i]) + ly * (v[3][i] - v[2][i]));
                const bool in = s->inside(i);
                out_y[i] = in ? gy : T(0);
                out_x[i] = in ? gx : T(0);
              }
            }
          }
        }
      }
    }
  });
}

// Calls f with std::integral_constant<int, N>: the channel count per offset group when it is
// 1-3, else 0 (any count).
template <typename F>
void with_group_channels(int64_t cg, const F& f) {
  switch (cg) {
    case 1:
      return f(std::integral_constant<int, 1>{});
    case 2:
      return f(std::integral_constant<int, 2>{});
    case 3:
      return f(std::integral_constant<int, 3>{});
    default:
      return f(std::integral_constant<int, 0>{});
  }
}

Geometry geometry(const at::Tensor& x, const at::Tensor& offset, int64_t kh, int64_t kw,
                  int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw) {
#ifdef _OPENMP
  // torch's thread count, also if this library bound to another OpenMP runtime than torch's
  omp_set_num_threads(static_cast<int>(at::get_num_threads()));
#endif
  TORCH_CHECK(x.dim() == 4 && offset.dim() == 4, "x and offset must be 4-d");
  Geometry g{};
  g.batch = x.size(0);
  g.height = x.size(1);
  g.width = x.size(2);
  g.channels = x.size(3);
  g.kh = kh;
  g.kw = kw;
  g.taps = kh * kw;
  TORCH_CHECK(offset.size(0) == g.batch && offset.size(1) % (2 * g.taps) == 0,
              "offset must be (B, 2·G·kh·kw, Ho, Wo)");
  g.groups = offset.size(1) / (2 * g.taps);
  TORCH_CHECK(g.groups > 0 && g.channels % g.groups == 0,
              "the offset groups must divide the channels");
  g.group_channels = g.channels / g.groups;
  g.out_h = offset.size(2);
  g.out_w = offset.size(3);
  g.pixels = g.out_h * g.out_w;
  g.sh = sh;
  g.sw = sw;
  g.ph = ph;
  g.pw = pw;
  g.dh = dh;
  g.dw = dw;
  return g;
}

void check(const at::Tensor& t, const at::Tensor& like, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be on the CPU");
  TORCH_CHECK(t.scalar_type() == like.scalar_type(), name, " must have the input's dtype");
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

void check_mask(const std::optional<at::Tensor>& mask, const at::Tensor& x, const Geometry& g) {
  if (!mask) return;
  check(*mask, x, "mask");
  TORCH_CHECK(mask->numel() == g.batch * g.groups * g.taps * g.pixels,
              "mask must be (B, G·kh·kw, Ho, Wo)");
}

void deform_columns(const at::Tensor& x, const at::Tensor& offset,
                    const std::optional<at::Tensor>& mask, at::Tensor cols, int64_t kh, int64_t kw,
                    int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw) {
  const Geometry g = geometry(x, offset, kh, kw, sh, sw, ph, pw, dh, dw);
  check(x, x, "x");
  check(offset, x, "offset");
  check(cols, x, "cols");
  check_mask(mask, x, g);
  TORCH_CHECK(cols.numel() == g.batch * g.pixels * g.taps * g.channels,
              "cols must be (B, Ho·Wo, kh·kw, C)");
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "deform_columns", [&] {
    with_group_channels(g.group_channels, [&](auto n) {
      columns_kernel<decltype(n)::value>(
          x.const_data_ptr<scalar_t>(), offset.const_data_ptr<scalar_t>(),
          mask ? mask->const_data_ptr<scalar_t>() : nullptr, cols.mutable_data_ptr<scalar_t>(),
          g);
    });
  });
}

void deform_columns_backward(const at::Tensor& grad_cols, const at::Tensor& x,
                             const at::Tensor& offset, const std::optional<at::Tensor>& mask,
                             const std::optional<at::Tensor>& grad_x,
                             const std::optional<at::Tensor>& grad_offset,
                             const std::optional<at::Tensor>& grad_mask, int64_t kh, int64_t kw,
                             int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh,
                             int64_t dw) {
  const Geometry g = geometry(x, offset, kh, kw, sh, sw, ph, pw, dh, dw);
  check(x, x, "x");
  check(offset, x, "offset");
  check(grad_cols, x, "grad_cols");
  check_mask(mask, x, g);
  TORCH_CHECK(grad_cols.numel() == g.batch * g.pixels * g.taps * g.channels,
              "grad_cols must be (B, Ho·Wo, kh·kw, C)");
  if (grad_x) {
    check(*grad_x, x, "grad_x");
    TORCH_CHECK(grad_x->numel() == x.numel(), "grad_x must be shaped like x");
  }
  if (grad_offset) {
    check(*grad_offset, x, "grad_offset");
    TORCH_CHECK(grad_offset->numel() == offset.numel(), "grad_offset must be shaped like offset");
  }
  if (grad_mask) {
    TORCH_CHECK(mask, "grad_mask needs a mask");
    check(*grad_mask, x, "grad_mask");
    TORCH_CHECK(grad_mask->numel() == mask->numel(), "grad_mask must be shaped like mask");
  }
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "deform_columns_backward", [&] {
    with_group_channels(g.group_channels, [&](auto n) {
      columns_backward_kernel<decltype(n)::value>(
          grad_cols.const_data_ptr<scalar_t>(), x.const_data_ptr<scalar_t>(),
          offset.const_data_ptr<scalar_t>(), mask ? mask->const_data_ptr<scalar_t>() : nullptr,
          grad_x ? grad_x->mutable_data_ptr<scalar_t>() : nullptr,
          grad_offset ? grad_offset->mutable_data_ptr<scalar_t>() : nullptr,
          grad_mask ? grad_mask->mutable_data_ptr<scalar_t>() : nullptr, g);
    });
  });
}

}  // namespace

TORCH_LIBRARY(geomrobust, m) {
  m.def(
      "deform_columns(Tensor x, Tensor offset, Tensor? mask, Tensor(a!) cols, int kh, int kw, "
      "int sh, int sw, int ph, int pw, int dh, int dw) -> ()");
  m.def(
      "deform_columns_backward(Tensor grad_cols, Tensor x, Tensor offset, Tensor? mask, "
      "Tensor(a!)? grad_x, Tensor(b!)? grad_offset, Tensor(c!)? grad_mask, int kh, int kw, "
      "int sh, int sw, int ph, int pw, int dh, int dw) -> ()");
}

TORCH_LIBRARY_IMPL(geomrobust, CPU, m) {
  m.impl("deform_columns", &deform_columns);
  m.impl("deform_columns_backward", &deform_columns_backward);
}
