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
// over output pixels; the backward runs in parallel over images, so that no two threads add
// into the same input-gradient pixel.

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include <cmath>
#include <cstdint>
#include <optional>
#include <type_traits>
#include <vector>

namespace {

struct Geometry {
  int64_t batch, channels, height, width;  // input
  int64_t groups, group_channels;          // offset groups, channels per offset group
  int64_t kh, kw, taps;                    // kernel
  int64_t out_h, out_w, pixels;            // output
  int64_t sh, sw, ph, pw, dh, dw;          // stride, padding, dilation
};

// One sampling position: the element offsets of its four corners in an (H, W, C) image,
// whether each lies inside, and the bilinear weights (y0, x0), (y0, x0+1), (y0+1, x0),
// (y0+1, x0+1). Returns false when the position itself is outside (or not finite).
template <typename T>
struct Sample {
  int64_t at[4];
  bool inside[4];
  T a[4];
  T ly, lx;

  bool set(T y, T x, const Geometry& g) {
    if (!(y > T(-1) && y < T(g.height) && x > T(-1) && x < T(g.width))) {
      return false;
    }
    const T fy = std::floor(y), fx = std::floor(x);
    const int64_t y0 = static_cast<int64_t>(fy), x0 = static_cast<int64_t>(fx);
    ly = y - fy;
    lx = x - fx;
    const T hy = T(1) - ly, hx = T(1) - lx;
    a[0] = hy * hx;
    a[1] = hy * lx;
    a[2] = ly * hx;
    a[3] = ly * lx;
    const bool top = y0 >= 0, bottom = y0 + 1 < g.height;
    const bool left = x0 >= 0, right = x0 + 1 < g.width;
    inside[0] = top && left;
    inside[1] = top && right;
    inside[2] = bottom && left;
    inside[3] = bottom && right;
    const int64_t row = g.width * g.channels;
    at[0] = (y0 * g.width + x0) * g.channels;
    at[1] = at[0] + g.channels;
    at[2] = at[0] + row;
    at[3] = at[2] + g.channels;
    return true;
  }
};

// Walks the samples of output pixels [begin, end) of image b in memory order (pixel, tap,
// offset group), without integer divisions in the inner loops: f(l, k, grp, gk, y, x), with
// gk = (b·G + grp)·K + k the (group, tap) row of the offset and mask of image b.
template <typename T, typename F>
inline void for_each_sample(const T* offset, const Geometry& g, int64_t b, int64_t begin,
                            int64_t end, const F& f) {
  int64_t oy = begin / g.out_w, ox = begin % g.out_w;
  for (int64_t l = begin; l < end; ++l) {
    const int64_t y_base = oy * g.sh - g.ph, x_base = ox * g.sw - g.pw;
    int64_t k = 0;
    for (int64_t ky = 0; ky < g.kh; ++ky) {
      for (int64_t kx = 0; kx < g.kw; ++kx, ++k) {
        for (int64_t grp = 0; grp < g.groups; ++grp) {
          const int64_t gk = (b * g.groups + grp) * g.taps + k;
          const T y = T(y_base + ky * g.dh) + offset[(2 * gk) * g.pixels + l];
          const T x = T(x_base + kx * g.dw) + offset[(2 * gk + 1) * g.pixels + l];
          f(l, k, grp, gk, y, x);
        }
      }
    }
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

// v[q] = gc · p[q], and, when gp is given, gp[q] += w[q] · gc.
template <int N, typename T>
inline void dots_and_scatter(const T* __restrict gc, const T* const* p, T* const* gp,
                             const T* w, T* v, int64_t cg) {
  const int64_t n = N > 0 ? N : cg;
  const T *p0 = p[0], *p1 = p[1], *p2 = p[2], *p3 = p[3];
  T v0 = 0, v1 = 0, v2 = 0, v3 = 0;
  if (gp) {
    T *g0 = gp[0], *g1 = gp[1], *g2 = gp[2], *g3 = gp[3];
    const T w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
#pragma omp simd reduction(+ : v0, v1, v2, v3) if (N == 0)
    for (int64_t c = 0; c < n; ++c) {
      const T t = gc[c];
      v0 += t * p0[c];
      v1 += t * p1[c];
      v2 += t * p2[c];
      v3 += t * p3[c];
      g0[c] += w0 * t;
      g1[c] += w1 * t;
      g2[c] += w2 * t;
      g3[c] += w3 * t;
    }
  } else {
#pragma omp simd reduction(+ : v0, v1, v2, v3) if (N == 0)
    for (int64_t c = 0; c < n; ++c) {
      const T t = gc[c];
      v0 += t * p0[c];
      v1 += t * p1[c];
      v2 += t * p2[c];
      v3 += t * p3[c];
    }
  }
  v[0] = v0;
  v[1] = v1;
  v[2] = v2;
  v[3] = v3;
}

// gp[q] += w[q] · gc (the input gradient alone).
template <int N, typename T>
inline void scatter(const T* __restrict gc, T* const* gp, const T* w, int64_t cg) {
  const int64_t n = N > 0 ? N : cg;
  T *g0 = gp[0], *g1 = gp[1], *g2 = gp[2], *g3 = gp[3];
  const T w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
#pragma omp simd if (N == 0)
  for (int64_t c = 0; c < n; ++c) {
    const T t = gc[c];
    g0[c] += w0 * t;
    g1[c] += w1 * t;
    g2[c] += w2 * t;
    g3[c] += w3 * t;
  }
}

template <int N, typename T>
void columns_kernel(const T* x, const T* offset, const T* mask, T* cols, const Geometry& g) {
  const int64_t cg = g.group_channels;
  const int64_t grain = std::max<int64_t>(1, 4096 / (g.taps * g.channels + 1));
  at::parallel_for(0, g.batch * g.pixels, grain, [&](int64_t begin, int64_t end) {
    const std::vector<T> zeros(cg, T(0));
    Sample<T> s;
    // the range may span images: one run of pixels per image
    for (int64_t run = begin; run < end;) {
      const int64_t b = run / g.pixels, first = run % g.pixels;
      const int64_t last = std::min(g.pixels, first + (end - run));
      const T* image = x + b * g.height * g.width * g.channels;
      T* image_cols = cols + b * g.pixels * g.taps * g.channels;
      for_each_sample(offset, g, b, first, last,
                      [&](int64_t l, int64_t k, int64_t grp, int64_t gk, T y, T xx) {
                        T* dst = image_cols + (l * g.taps + k) * g.channels + grp * cg;
                        if (!s.set(y, xx, g)) {
                          for (int64_t c = 0; c < cg; ++c) dst[c] = T(0);
                          return;
                        }
                        const T m = mask ? mask[gk * g.pixels + l] : T(1);
                        const T* p[4];
                        T w[4];
                        for (int q = 0; q < 4; ++q) {
                          p[q] = s.inside[q] ? image + s.at[q] + grp * cg : zeros.data();
                          w[q] = s.inside[q] ? m * s.a[q] : T(0);
                        }
                        interpolate<N>(dst, p, w, cg);
                      });
      run += last - first;
    }
  });
}

template <int N, typename T>
void columns_backward_kernel(const T* grad_cols, const T* x, const T* offset, const T* mask,
                             T* grad_x, T* grad_offset, T* grad_mask, const Geometry& g) {
  const int64_t cg = g.group_channels;
  const bool corners = grad_offset || grad_mask;
  at::parallel_for(0, g.batch, 1, [&](int64_t begin, int64_t end) {
    const std::vector<T> zeros(cg, T(0));
    std::vector<T> sink(cg);  // input-gradient writes of corners outside the image
    Sample<T> s;
    for (int64_t b = begin; b < end; ++b) {
      const int64_t image_at = b * g.height * g.width * g.channels;
      for_each_sample(
          offset, g, b, 0, g.pixels, [&](int64_t l, int64_t k, int64_t grp, int64_t gk, T y, T xx) {
            const int64_t dy_at = (2 * gk) * g.pixels + l, dx_at = dy_at + g.pixels;
            if (!s.set(y, xx, g)) {
              if (grad_offset) grad_offset[dy_at] = grad_offset[dx_at] = T(0);
              if (grad_mask) grad_mask[gk * g.pixels + l] = T(0);
              return;
            }
            const T m = mask ? mask[gk * g.pixels + l] : T(1);
            const T* gc = grad_cols + ((b * g.pixels + l) * g.taps + k) * g.channels + grp * cg;
            const T* p[4];
            T* gp[4];
            T w[4], v[4];
            for (int q = 0; q < 4; ++q) {
              p[q] = s.inside[q] ? x + image_at + s.at[q] + grp * cg : zeros.data();
              gp[q] = s.inside[q] && grad_x ? grad_x + image_at + s.at[q] + grp * cg : sink.data();
              w[q] = s.inside[q] ? m * s.a[q] : T(0);
            }
            if (!corners) {
              scatter<N>(gc, gp, w, cg);
              return;
            }
            dots_and_scatter<N>(gc, p, grad_x ? gp : nullptr, w, v, cg);
            if (grad_mask) {
              grad_mask[gk * g.pixels + l] = s.a[0] * v[0] + s.a[1] * v[1] + s.a[2] * v[2] +
                                             s.a[3] * v[3];
            }
            if (grad_offset) {
              const T hy = T(1) - s.ly, hx = T(1) - s.lx;
              grad_offset[dy_at] = m * (hx * (v[2] - v[0]) + s.lx * (v[3] - v[1]));
              grad_offset[dx_at] = m * (hy * (v[1] - v[0]) + s.ly * (v[3] - v[2]));
            }
          });
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
