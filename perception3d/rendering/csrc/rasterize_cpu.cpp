// Compiled CPU compositor of 3D Gaussian splatting: forward and backward over per-tile depth-sorted lists.
// Built on first use by perception3d/rendering/rasterize_cpu.py (g++ -O3 -march=native -fopenmp-simd, no
// torch headers) and called through ctypes; threads are Python threads (each call handles a list of tiles and
// runs without the GIL). See that module's docstring for the maths and the design.
//
// Layouts (row-major, contiguous): means2d [G, 2], conics [G, 3] (a, b, c of Σ'⁻¹), opac [G], feats [G, D],
// boxr [G, 2] int32 (pixel-box half-sizes), flatten_ids [P] int64 into G = C·N, offsets [n_tiles + 1] int64;
// images [C, H, W, D], transmittance / last-contributor maps [C, H, W].
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace {

constexpr int LANES = 16;  // pixels per SIMD chunk; tile rows are padded to a multiple of this

template <typename F>
struct Consts {
  static constexpr F alpha_min = F(1.0 / 255.0);  // skip fainter Gaussians (3DGS forward.cu)
  static constexpr F alpha_max = F(0.999);        // clamp of one Gaussian's alpha
  static constexpr F t_min = F(1e-4);             // a pixel stops before T would fall to <= this
  static constexpr F sigma_cut = F(6.0);          // e^-6 < 1/255: exp is only needed on [0, 6]
};

// e^{-s} for s in [0, 6]: degree-11 Taylor polynomial at s/16 (truncation < 2e-14), squared four times.
// Plain arithmetic so that the pixel loops vectorise.
template <typename F>
inline F exp_neg(F s) {
  const F x = s * F(0.0625);
  F p = F(1.0 / 39916800.0);
  p = F(1.0 / 3628800.0) - x * p;
  p = F(1.0 / 362880.0) - x * p;
  p = F(1.0 / 40320.0) - x * p;
  p = F(1.0 / 5040.0) - x * p;
  p = F(1.0 / 720.0) - x * p;
  p = F(1.0 / 120.0) - x * p;
  p = F(1.0 / 24.0) - x * p;
  p = F(1.0 / 6.0) - x * p;
  p = F(0.5) - x * p;
  p = F(1.0) - x * p;
  p = F(1.0) - x * p;
  p = p * p;
  p = p * p;
  p = p * p;
  return p * p;
}

struct Tile {
  int64_t cam, x0, y0, x1, y1, pw;
};

inline Tile tile_geom(int64_t t, int64_t tile_size, int64_t tiles_w, int64_t tiles_h, int64_t width,
                      int64_t height) {
  Tile g;
  const int64_t tpc = tiles_w * tiles_h;
  g.cam = t / tpc;
  g.x0 = (t % tiles_w) * tile_size;
  g.y0 = ((t % tpc) / tiles_w) * tile_size;
  g.x1 = std::min(g.x0 + tile_size, width);
  g.y1 = std::min(g.y0 + tile_size, height);
  g.pw = (tile_size + LANES - 1) / LANES * LANES;
  return g;
}

// One (tile, Gaussian) pair: the projected Gaussian and the pixels of the tile whose centre (x + 1/2) lies within
// its box |x + 1/2 - mx| <= rx, |y + 1/2 - my| <= ry (rows by0..by1, columns bx1 end, SIMD chunks from c_lo).
template <typename F>
struct Splat {
  F mx, my, ca, cb, cc, o;
  int64_t bx1, by0, by1, c_lo;
};

template <typename F>
inline Splat<F> load_splat(int64_t gi, const F* means2d, const F* conics, const F* opac, const int32_t* boxr,
                           const Tile& g) {
  Splat<F> s{means2d[2 * gi], means2d[2 * gi + 1], conics[3 * gi], conics[3 * gi + 1], conics[3 * gi + 2],
             opac[gi], 0, 0, 0, 0};
  const double rx = boxr[2 * gi], ry = boxr[2 * gi + 1];
  const int64_t bx0 = std::max<int64_t>(g.x0, (int64_t)std::ceil(double(s.mx) - rx - 0.5));
  s.bx1 = std::min<int64_t>(g.x1, (int64_t)std::floor(double(s.mx) + rx - 0.5) + 1);
  s.by0 = std::max<int64_t>(g.y0, (int64_t)std::ceil(double(s.my) - ry - 0.5));
  s.by1 = std::min<int64_t>(g.y1, (int64_t)std::floor(double(s.my) + ry - 0.5) + 1);
  s.c_lo = (bx0 - g.x0) / LANES * LANES;
  return s;
}

// 3DGS Eq. 3, front to back, Gaussian outer / pixel inner; T < 0 marks a finished pixel (and padding).
template <typename F>
void forward_tile(int64_t t, const F* means2d, const F* conics, const F* opac, const F* feats, int64_t D,
                  const int32_t* boxr, const int64_t* flatten_ids, const int64_t* offsets, int64_t tile_size,
                  int64_t tiles_w, int64_t tiles_h, int64_t width, int64_t height, F* out_img, F* out_T,
                  int32_t* out_last) {
  using K = Consts<F>;
  const Tile g = tile_geom(t, tile_size, tiles_w, tiles_h, width, height);
  const int64_t npx = tile_size * g.pw;
  std::vector<F> T(npx), acc(D * npx, F(0)), wbuf(LANES);
  std::vector<int32_t> last(npx, -1);
  for (int64_t r = 0; r < tile_size; ++r)
    for (int64_t q = 0; q < g.pw; ++q)
      T[r * g.pw + q] = (r < g.y1 - g.y0 && q < g.x1 - g.x0) ? F(1) : F(-1);
  int64_t n_live = (g.x1 - g.x0) * (g.y1 - g.y0);
  const int64_t start = offsets[t], end = offsets[t + 1];
  for (int64_t j = start; j < end && n_live > 0; ++j) {
    const int32_t jj = int32_t(j - start);
    const int64_t gi = flatten_ids[j];
    const auto [mx, my, ca, cb, cc, o, bx1, by0, by1, c_lo] = load_splat(gi, means2d, conics, opac, boxr, g);
    for (int64_t py = by0; py < by1; ++py) {
      const F dy = F(py) + F(0.5) - my;
      for (int64_t cs = c_lo; cs < bx1 - g.x0; cs += LANES) {
        F* Tv = T.data() + (py - g.y0) * g.pw + cs;
        int32_t* lv = last.data() + (py - g.y0) * g.pw + cs;
        F* wb = wbuf.data();
        const F xs = F(g.x0 + cs) + F(0.5) - mx;
        int32_t n_stop = 0;
#pragma omp simd reduction(+ : n_stop)
        for (int ln = 0; ln < LANES; ++ln) {
          const F dx = xs + F(ln);
          const F sigma = F(0.5) * (ca * dx * dx + cc * dy * dy) + cb * dx * dy;
          const F s = std::min(std::max(sigma, F(0)), K::sigma_cut);
          const F alpha = std::min(K::alpha_max, o * exp_neg(s));
          const F Tk = Tv[ln];
          const F nT = Tk * (F(1) - alpha);
          // branch-free masks (1 / 0): contributes; or stops before the Gaussian that makes the pixel opaque
          const F ok = F(alpha >= K::alpha_min) * F(Tk > F(0));
          const F c = ok * F(nT > K::t_min);
          const F st = ok - c;
          wb[ln] = c * alpha * Tk;
          Tv[ln] = (Tk + c * (nT - Tk)) * (F(1) - F(2) * st);
          lv[ln] += int32_t(c) * (jj - lv[ln]);
          n_stop += int32_t(st);
        }
        for (int64_t d = 0; d < D; ++d) {
          const F f = feats[gi * D + d];
          F* a = acc.data() + d * npx + (py - g.y0) * g.pw + cs;
#pragma omp simd
          for (int ln = 0; ln < LANES; ++ln) a[ln] += wb[ln] * f;
        }
        n_live -= n_stop;
      }
    }
  }
  for (int64_t py = g.y0; py < g.y1; ++py)
    for (int64_t px = g.x0; px < g.x1; ++px) {
      const int64_t k = (py - g.y0) * g.pw + (px - g.x0);
      const int64_t o = (g.cam * height + py) * width + px;
      out_T[o] = std::abs(T[k]);
      out_last[o] = last[k];
      for (int64_t d = 0; d < D; ++d) out_img[o * D + d] = acc[d * npx + k];
    }
}

// gsplat's rasterize_to_pixels backward: back to front from each pixel's last contributor. With w_i = α_i T_i
// and S_i = Σ_{j>i} w_j c_j:  ∂L/∂c_i = w_i g,  ∂L/∂α_i = T_i c_i·g − (S_i·g + g_T T_N) / (1 − α_i);
// α = o e^{−σ} when unclamped: ∂α/∂o = e^{−σ}, ∂α/∂σ = −α;  σ = ½(a dx² + c dy²) + b dx dy.
// Sums over the tile's pixels are kept per SIMD lane and reduced once per pair; each pair is written once.
template <typename F>
void backward_tile(int64_t t, const F* means2d, const F* conics, const F* opac, const F* feats, int64_t D,
                   const int32_t* boxr, const int64_t* flatten_ids, const int64_t* offsets, int64_t tile_size,
                   int64_t tiles_w, int64_t tiles_h, int64_t width, int64_t height, const F* T_final,
                   const int32_t* last_ids, const F* g_img, const F* g_T, F* v_means2d, F* v_conics, F* v_opac,
                   F* v_feats) {
  using K = Consts<F>;
  const int64_t start = offsets[t];
  if (offsets[t + 1] == start) return;
  const Tile g = tile_geom(t, tile_size, tiles_w, tiles_h, width, height);
  const int64_t npx = tile_size * g.pw;
  std::vector<F> T(npx, F(0)), tail(npx, F(0)), S(D * npx, F(0)), G(D * npx, F(0));
  std::vector<int32_t> last(npx, -1);
  int32_t max_last = -1;
  for (int64_t py = g.y0; py < g.y1; ++py)
    for (int64_t px = g.x0; px < g.x1; ++px) {
      const int64_t k = (py - g.y0) * g.pw + (px - g.x0);
      const int64_t o = (g.cam * height + py) * width + px;
      T[k] = T_final[o];
      tail[k] = g_T[o] * T_final[o];
      last[k] = last_ids[o];
      max_last = std::max(max_last, last[k]);
      for (int64_t d = 0; d < D; ++d) G[d * npx + k] = g_img[o * D + d];
    }
  alignas(64) F w_l[LANES], T_l[LANES], ra_l[LANES], va_l[LANES], vis_l[LANES];
  std::vector<F> acc((6 + D) * LANES);  // per-lane sums: mx, my, a, b, c, o, colours
  for (int32_t jj = max_last; jj >= 0; --jj) {
    const int64_t j = start + jj;
    const int64_t gi = flatten_ids[j];
    const auto [mx, my, ca, cb, cc, o, bx1, by0, by1, c_lo] = load_splat(gi, means2d, conics, opac, boxr, g);
    std::fill(acc.begin(), acc.end(), F(0));
    F* am = acc.data();
    for (int64_t py = by0; py < by1; ++py) {
      const F dy = F(py) + F(0.5) - my;
      for (int64_t cs = c_lo; cs < bx1 - g.x0; cs += LANES) {
        const int64_t k0 = (py - g.y0) * g.pw + cs;
        F* Tv = T.data() + k0;
        const int32_t* lv = last.data() + k0;
        const F* tv = tail.data() + k0;
        const F xs = F(g.x0 + cs) + F(0.5) - mx;
#pragma omp simd
        for (int ln = 0; ln < LANES; ++ln) {
          const F dx = xs + F(ln);
          const F sigma = F(0.5) * (ca * dx * dx + cc * dy * dy) + cb * dx * dy;
          const F vis = exp_neg(std::min(std::max(sigma, F(0)), K::sigma_cut));
          const F alpha = std::min(K::alpha_max, o * vis);
          const F m = F(alpha >= K::alpha_min) * F(lv[ln] >= jj);  // 1 when this Gaussian contributed
          const F ra = m / (F(1) - alpha);  // 1 / (1 − α), or 0
          const F Tk = Tv[ln] * (ra + (F(1) - m));  // transmittance in front of this Gaussian
          Tv[ln] = Tk;
          vis_l[ln] = vis;
          w_l[ln] = m * alpha * Tk;
          T_l[ln] = m * Tk;
          ra_l[ln] = ra;
          va_l[ln] = F(0);
        }
        for (int64_t d = 0; d < D; ++d) {
          const F f = feats[gi * D + d];
          const F* Gd = G.data() + d * npx + k0;
          F* Sd = S.data() + d * npx + k0;
          F* ad = am + (6 + d) * LANES;
#pragma omp simd
          for (int ln = 0; ln < LANES; ++ln) {
            const F gd = Gd[ln];
            ad[ln] += w_l[ln] * gd;
            va_l[ln] += (f * T_l[ln] - Sd[ln] * ra_l[ln]) * gd;
            Sd[ln] += f * w_l[ln];
          }
        }
#pragma omp simd
        for (int ln = 0; ln < LANES; ++ln) {
          const F dx = xs + F(ln);
          const F raw = o * vis_l[ln];
          F v_alpha = va_l[ln] - tv[ln] * ra_l[ln];
          v_alpha *= F(raw < K::alpha_max) * F(ra_l[ln] > F(0));  // clamped or cut: no gradient
          const F v_sigma = -raw * v_alpha;
          am[5 * LANES + ln] += vis_l[ln] * v_alpha;
          am[2 * LANES + ln] += F(0.5) * dx * dx * v_sigma;
          am[3 * LANES + ln] += dx * dy * v_sigma;
          am[4 * LANES + ln] += F(0.5) * dy * dy * v_sigma;
          am[0 * LANES + ln] -= (ca * dx + cb * dy) * v_sigma;
          am[1 * LANES + ln] -= (cb * dx + cc * dy) * v_sigma;
        }
      }
    }
    F tot[64];
    const int64_t nacc = 6 + D;
    for (int64_t i = 0; i < nacc; ++i) {
      double s = 0.0;
      for (int ln = 0; ln < LANES; ++ln) s += am[i * LANES + ln];
      if (i < 6) tot[i] = F(s);
      else v_feats[j * D + (i - 6)] = F(s);
    }
    v_means2d[2 * j] = tot[0];
    v_means2d[2 * j + 1] = tot[1];
    v_conics[3 * j] = tot[2];
    v_conics[3 * j + 1] = tot[3];
    v_conics[3 * j + 2] = tot[4];
    v_opac[j] = tot[5];
  }
}

}  // namespace

#define P3D_EXPORT(F, SUFFIX)                                                                                    \
  extern "C" void forward_tiles_##SUFFIX(const int64_t* tiles, int64_t n, const F* means2d, const F* conics,    \
                                         const F* opac, const F* feats, int64_t D, const int32_t* boxr,          \
                                         const int64_t* flatten_ids, const int64_t* offsets, int64_t tile_size,  \
                                         int64_t tiles_w, int64_t tiles_h, int64_t width, int64_t height,        \
                                         F* out_img, F* out_T, int32_t* out_last) {                              \
    for (int64_t i = 0; i < n; ++i)                                                                              \
      forward_tile<F>(tiles[i], means2d, conics, opac, feats, D, boxr, flatten_ids, offsets, tile_size, tiles_w, \
                      tiles_h, width, height, out_img, out_T, out_last);                                         \
  }                                                                                                              \
  extern "C" void backward_tiles_##SUFFIX(                                                                       \
      const int64_t* tiles, int64_t n, const F* means2d, const F* conics, const F* opac, const F* feats,         \
      int64_t D, const int32_t* boxr, const int64_t* flatten_ids, const int64_t* offsets, int64_t tile_size,     \
      int64_t tiles_w, int64_t tiles_h, int64_t width, int64_t height, const F* T_final,                         \
      const int32_t* last_ids, const F* g_img, const F* g_T, F* v_means2d, F* v_conics, F* v_opac,               \
      F* v_feats) {                                                                                              \
    for (int64_t i = 0; i < n; ++i)                                                                              \
      backward_tile<F>(tiles[i], means2d, conics, opac, feats, D, boxr, flatten_ids, offsets, tile_size,         \
                       tiles_w, tiles_h, width, height, T_final, last_ids, g_img, g_T, v_means2d, v_conics,      \
                       v_opac, v_feats);                                                                         \
  }

P3D_EXPORT(float, f32)
P3D_EXPORT(double, f64)
