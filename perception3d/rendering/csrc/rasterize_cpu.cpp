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

// LANES: pixels per SIMD chunk (16, or 8 for tiles of at most 8 pixels: no half-empty chunks); tile rows are
// padded to a multiple of it.

template <typename F>
struct Consts {
  static constexpr F alpha_min = F(1.0 / 255.0);  // skip fainter Gaussians (3DGS forward.cu)
  static constexpr F alpha_max = F(0.999);        // clamp of one Gaussian's alpha
  static constexpr F t_min = F(1e-4);             // a pixel stops before T would fall to <= this
  static constexpr F sigma_cut = F(6.0);          // e^-6 < 1/255: exp is only needed on [0, 6]
};

// e^{-s} for s in [0, 6]: Taylor polynomial of e^{-x} at x = s/16 (degree 8 in float, 11 in double: truncation
// < 1e-8 / 2e-14 relative), squared four times. The polynomial is evaluated by Estrin's scheme (a dependency
// chain of ~7 operations instead of Horner's 2 x degree: the pixel loops are latency-bound), plain arithmetic
// so that they vectorise. perception3d.rendering.rasterize_torch.exp_neg is the same function operation for
// operation (keep the two in step): both backends get bitwise the same alpha and take the same branch at every
// cut-off. Relative error on [0, 6]: <= 2.9e-6 in float (<= 42 ulp), <= 3.7e-13 in double.
inline float exp_neg_poly(float x) {
  const float x2 = x * x, x4 = x2 * x2, x8 = x4 * x4;
  const float p01 = 1.0f - x, p23 = 0.5f - x * (1.0f / 6.0f);
  const float p45 = (1.0f / 24.0f) - x * (1.0f / 120.0f), p67 = (1.0f / 720.0f) - x * (1.0f / 5040.0f);
  const float p03 = p01 + x2 * p23, p47 = p45 + x2 * p67;
  return (p03 + x4 * p47) + x8 * (1.0f / 40320.0f);
}

inline double exp_neg_poly(double x) {
  const double x2 = x * x, x4 = x2 * x2, x8 = x4 * x4;
  const double p01 = 1.0 - x, p23 = 0.5 - x * (1.0 / 6.0);
  const double p45 = (1.0 / 24.0) - x * (1.0 / 120.0), p67 = (1.0 / 720.0) - x * (1.0 / 5040.0);
  const double p89 = (1.0 / 40320.0) - x * (1.0 / 362880.0), pab = (1.0 / 3628800.0) - x * (1.0 / 39916800.0);
  const double p03 = p01 + x2 * p23, p47 = p45 + x2 * p67, p8b = p89 + x2 * pab;
  return (p03 + x4 * p47) + x8 * p8b;
}

template <typename F>
inline F exp_neg(F s) {
  F p = exp_neg_poly(s * F(0.0625));
  p = p * p;
  p = p * p;
  p = p * p;
  return p * p;
}

// The per-Gaussian data of pair j + PREFETCH is fetched while pair j is composited: the Gaussians of a tile
// are scattered in memory (depth order), and a miss on each pair's first load otherwise stalls the pixel loops.
constexpr int64_t PREFETCH = 4;

template <typename F>
inline void prefetch_gauss(int64_t gi, const F* means2d, const F* conics, const F* opac, const F* feats, int64_t D,
                           const int32_t* boxr) {
  __builtin_prefetch(means2d + 2 * gi);
  __builtin_prefetch(conics + 3 * gi);
  __builtin_prefetch(opac + gi);
  __builtin_prefetch(feats + gi * D);
  __builtin_prefetch(boxr + 2 * gi);
}

struct Tile {
  int64_t cam, x0, y0, x1, y1, pw;
};

template <int LANES>
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

template <typename F, int LANES>
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
template <typename F, int LANES>
void forward_tile(int64_t t, const F* means2d, const F* conics, const F* opac, const F* feats, int64_t D,
                  const int32_t* boxr, const int64_t* flatten_ids, const int64_t* offsets, int64_t tile_size,
                  int64_t tiles_w, int64_t tiles_h, int64_t width, int64_t height, F* out_img, F* out_T,
                  int32_t* out_last) {
  using K = Consts<F>;
  const Tile g = tile_geom<LANES>(t, tile_size, tiles_w, tiles_h, width, height);
  const int64_t npx = tile_size * g.pw;
  std::vector<F> T(npx), acc(D * npx, F(0)), wbuf(LANES);
  std::vector<int32_t> last(npx, -1);
  for (int64_t r = 0; r < tile_size; ++r)
    for (int64_t q = 0; q < g.pw; ++q)
      T[r * g.pw + q] = (r < g.y1 - g.y0 && q < g.x1 - g.x0) ? F(1) : F(-1);
  int64_t n_live = (g.x1 - g.x0) * (g.y1 - g.y0);
  std::vector<int64_t> row_live(tile_size, 0);  // live pixels per row: rows whose pixels all stopped are skipped
  for (int64_t r = 0; r < g.y1 - g.y0; ++r) row_live[r] = g.x1 - g.x0;
  const int64_t start = offsets[t], end = offsets[t + 1];
  for (int64_t j = start; j < end && n_live > 0; ++j) {
    const int32_t jj = int32_t(j - start);
    const int64_t gi = flatten_ids[j];
    if (j + PREFETCH < end) prefetch_gauss(flatten_ids[j + PREFETCH], means2d, conics, opac, feats, D, boxr);
    const auto [mx, my, ca, cb, cc, o, bx1, by0, by1, c_lo] = load_splat<F, LANES>(gi, means2d, conics, opac, boxr, g);
    for (int64_t py = by0; py < by1; ++py) {
      if (row_live[py - g.y0] == 0) continue;
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
          // T becomes exactly nT (a select, not Tk + c (nT − Tk), which rounds): T is the plain running product
          // rounded after every factor, which the torch reference reproduces bit for bit
          Tv[ln] = (c != F(0) ? nT : Tk) * (F(1) - F(2) * st);
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
        row_live[py - g.y0] -= n_stop;
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
template <typename F, int LANES>
void backward_tile(int64_t t, const F* means2d, const F* conics, const F* opac, const F* feats, int64_t D,
                   const int32_t* boxr, const int64_t* flatten_ids, const int64_t* offsets, int64_t tile_size,
                   int64_t tiles_w, int64_t tiles_h, int64_t width, int64_t height, const F* T_final,
                   const int32_t* last_ids, const F* g_img, const F* g_T, F* v_means2d, F* v_conics, F* v_opac,
                   F* v_feats) {
  using K = Consts<F>;
  const int64_t start = offsets[t];
  if (offsets[t + 1] == start) return;
  const Tile g = tile_geom<LANES>(t, tile_size, tiles_w, tiles_h, width, height);
  const int64_t npx = tile_size * g.pw;
  std::vector<F> T(npx, F(0)), tail(npx, F(0)), S(D * npx, F(0)), G(D * npx, F(0));
  std::vector<int32_t> last(npx, -1);
  int32_t max_last = -1;
  std::vector<int32_t> row_last(tile_size, -1);  // per row: the deepest last contributor (rows past it are skipped)
  for (int64_t py = g.y0; py < g.y1; ++py)
    for (int64_t px = g.x0; px < g.x1; ++px) {
      const int64_t k = (py - g.y0) * g.pw + (px - g.x0);
      const int64_t o = (g.cam * height + py) * width + px;
      T[k] = T_final[o];
      tail[k] = g_T[o] * T_final[o];
      last[k] = last_ids[o];
      max_last = std::max(max_last, last[k]);
      row_last[py - g.y0] = std::max(row_last[py - g.y0], last[k]);
      for (int64_t d = 0; d < D; ++d) G[d * npx + k] = g_img[o * D + d];
    }
  alignas(64) F w_l[LANES], T_l[LANES], ra_l[LANES], va_l[LANES], vis_l[LANES];
  std::vector<F> acc((6 + D) * LANES);  // per-lane sums: mx, my, a, b, c, o, colours
  for (int32_t jj = max_last; jj >= 0; --jj) {
    const int64_t j = start + jj;
    const int64_t gi = flatten_ids[j];
    if (jj >= PREFETCH) prefetch_gauss(flatten_ids[j - PREFETCH], means2d, conics, opac, feats, D, boxr);
    const auto [mx, my, ca, cb, cc, o, bx1, by0, by1, c_lo] = load_splat<F, LANES>(gi, means2d, conics, opac, boxr, g);
    std::fill(acc.begin(), acc.end(), F(0));
    F* am = acc.data();
    for (int64_t py = by0; py < by1; ++py) {
      if (row_last[py - g.y0] < jj) continue;  // no pixel of this row reached Gaussian jj: nothing to add
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


// ------------------------------------------------------------------------------------------------------------
// Projection (EWA splatting, 3DGS Eq. 5-6; gsplat's fully_fused_projection) and its backward. Per (camera c,
// Gaussian n) independent; computed in double, stored in F. A call handles Gaussians [n0, n1) of every camera
// (the backward sums the cameras of a Gaussian in camera order: deterministic for any thread split).
struct ProjParams {
  int64_t C, N, width, height;
  double eps2d, near_plane, far_plane, radius_clip;
};

inline void quat_rotmat(const double q[4], double R[9]) {
  const double w = q[0], x = q[1], y = q[2], z = q[3];
  R[0] = 1 - 2 * (y * y + z * z); R[1] = 2 * (x * y - w * z);     R[2] = 2 * (x * z + w * y);
  R[3] = 2 * (x * y + w * z);     R[4] = 1 - 2 * (x * x + z * z); R[5] = 2 * (y * z - w * x);
  R[6] = 2 * (x * z - w * y);     R[7] = 2 * (y * z + w * x);     R[8] = 1 - 2 * (x * x + y * y);
}

// The per-Gaussian world covariance factor M = R(q/|q|) diag(s) (Σ = M Mᵀ) and the normalised quaternion.
template <typename F>
inline void gauss_M(const F* quats, const F* scales, int64_t n, double qn[4], double& qnorm, double M[9]) {
  double q[4] = {double(quats[4 * n]), double(quats[4 * n + 1]), double(quats[4 * n + 2]), double(quats[4 * n + 3])};
  qnorm = std::max(std::sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]), 1e-12);
  for (int i = 0; i < 4; ++i) qn[i] = q[i] / qnorm;
  double R[9];
  quat_rotmat(qn, R);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) M[3 * i + j] = R[3 * i + j] * double(scales[3 * n + j]);
}

// Camera-space quantities of one (c, n): p = W m + t, Σc = W Σ Wᵀ, the clipped Jacobian and the 2D covariance.
struct ProjLocal {
  double p[3], Sc[9], J[6], cov[3], txc, tyc;  // cov = (a, b, c) with eps2d added
  bool clip_x, clip_y;
};

template <typename F>
inline void proj_local(const F* means, const double M[9], int64_t n, const F* viewmat, const F* K,
                       const ProjParams& P, ProjLocal& L) {
  double W[9], t[3];
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 3; ++j) W[3 * i + j] = double(viewmat[4 * i + j]);
    t[i] = double(viewmat[4 * i + 3]);
  }
  for (int i = 0; i < 3; ++i)
    L.p[i] = W[3 * i] * means[3 * n] + W[3 * i + 1] * means[3 * n + 1] + W[3 * i + 2] * means[3 * n + 2] + t[i];
  double WM[9];  // W M, Σc = (W M)(W M)ᵀ
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) WM[3 * i + j] = W[3 * i] * M[j] + W[3 * i + 1] * M[3 + j] + W[3 * i + 2] * M[6 + j];
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      L.Sc[3 * i + j] = WM[3 * i] * WM[3 * j] + WM[3 * i + 1] * WM[3 * j + 1] + WM[3 * i + 2] * WM[3 * j + 2];
  const double fx = K[0], fy = K[4], cx = K[2], cy = K[5];
  const double tx = L.p[0], ty = L.p[1], tz = L.p[2];
  const double tfx = 0.5 * P.width / fx, tfy = 0.5 * P.height / fy;
  const double lxp = (P.width - cx) / fx + 0.3 * tfx, lxn = cx / fx + 0.3 * tfx;
  const double lyp = (P.height - cy) / fy + 0.3 * tfy, lyn = cy / fy + 0.3 * tfy;
  const double u = tx / tz, v = ty / tz;
  L.clip_x = u < -lxn || u > lxp;
  L.clip_y = v < -lyn || v > lyp;
  L.txc = tz * std::min(std::max(u, -lxn), lxp);
  L.tyc = tz * std::min(std::max(v, -lyn), lyp);
  L.J[0] = fx / tz; L.J[1] = 0; L.J[2] = -fx * L.txc / (tz * tz);
  L.J[3] = 0; L.J[4] = fy / tz; L.J[5] = -fy * L.tyc / (tz * tz);
  double JS[6];  // J Σc
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      JS[3 * i + j] = L.J[3 * i] * L.Sc[j] + L.J[3 * i + 1] * L.Sc[3 + j] + L.J[3 * i + 2] * L.Sc[6 + j];
  L.cov[0] = JS[0] * L.J[0] + JS[1] * L.J[1] + JS[2] * L.J[2] + P.eps2d;
  L.cov[1] = JS[0] * L.J[3] + JS[1] * L.J[4] + JS[2] * L.J[5];
  L.cov[2] = JS[3] * L.J[3] + JS[4] * L.J[4] + JS[5] * L.J[5] + P.eps2d;
}

template <typename F>
void project_fwd(int64_t n0, int64_t n1, const F* means, const F* quats, const F* scales, const F* opac,
                 const F* viewmats, const F* Ks, const ProjParams& P, F* means2d, F* depths, F* conics,
                 int32_t* radii, int32_t* binr) {
  for (int64_t n = n0; n < n1; ++n) {
    double qn[4], qnorm, M[9];
    gauss_M(quats, scales, n, qn, qnorm, M);
    for (int64_t c = 0; c < P.C; ++c) {
      ProjLocal L;
      const F* K = Ks + 9 * c;
      proj_local(means, M, n, viewmats + 16 * c, K, P, L);
      const int64_t g = c * P.N + n;
      const double a = L.cov[0], b = L.cov[1], cc = L.cov[2], tz = L.p[2];
      const double det = std::max(a * cc - b * b, 1e-10);
      const F mx = F(K[0] * L.p[0] / tz + K[2]), my = F(K[4] * L.p[1] / tz + K[5]);
      means2d[2 * g] = mx;
      means2d[2 * g + 1] = my;
      depths[g] = F(tz);
      conics[3 * g] = F(cc / det);
      conics[3 * g + 1] = F(-b / det);
      conics[3 * g + 2] = F(a / det);
      // radius = ceil(3.33 √Σ'_ii) per axis (float, as the torch reference); culling as project_gaussians
      const F ra = F(a), rc = F(cc);
      const F rx = std::ceil(F(3.33) * std::sqrt(ra)), ry = std::ceil(F(3.33) * std::sqrt(rc));
      const F tzf = F(tz);  // the culling tests on the stored (rounded) values, as the torch reference
      bool valid = tzf > P.near_plane && tzf < P.far_plane && std::isfinite(rx) && std::isfinite(ry);
      if (P.radius_clip > 0 && rx <= P.radius_clip && ry <= P.radius_clip) valid = false;
      valid = valid && mx + rx > 0 && mx - rx < F(P.width) && my + ry > 0 && my - ry < F(P.height);
      const int32_t ix = valid ? int32_t(rx) : 0, iy = valid ? int32_t(ry) : 0;
      radii[2 * g] = ix;
      radii[2 * g + 1] = iy;
      // opacity-aware binning box √(2 ln(255 o) Σ'_ii) (gsplat), never larger than the radius box
      const F o = opac[n];
      const F ext = std::sqrt(F(2) * std::log(std::max(F(255) * o, F(1))));
      const F bx = std::min(rx, std::ceil(ext * std::sqrt(ra) + F(0.01)));
      const F by = std::min(ry, std::ceil(ext * std::sqrt(rc) + F(0.01)));
      const bool keep = ext > 0;
      binr[2 * g] = (keep && ix > 0) ? int32_t(bx) : 0;
      binr[2 * g + 1] = (keep && iy > 0) ? int32_t(by) : 0;
    }
  }
}

// Backward of project_fwd for means, quats, scales (viewmats / Ks are constants here). Upstream gradients
// v_means2d [C, N, 2], v_depths [C, N], v_conics [C, N, 3]; outputs are written (not accumulated).
template <typename F>
void project_bwd(int64_t n0, int64_t n1, const F* means, const F* quats, const F* scales, const F* viewmats,
                 const F* Ks, const ProjParams& P, const F* v_means2d, const F* v_depths, const F* v_conics,
                 F* v_means, F* v_quats, F* v_scales) {
  for (int64_t n = n0; n < n1; ++n) {
    double qn[4], qnorm, M[9];
    gauss_M(quats, scales, n, qn, qnorm, M);
    double vm[3] = {0, 0, 0}, vM[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
    bool any = false;
    for (int64_t c = 0; c < P.C; ++c) {
      const int64_t g = c * P.N + n;
      const double vmx = v_means2d[2 * g], vmy = v_means2d[2 * g + 1], vdz = v_depths ? double(v_depths[g]) : 0.0;
      const double vA = v_conics[3 * g], vB = v_conics[3 * g + 1], vC = v_conics[3 * g + 2];
      if (vmx == 0 && vmy == 0 && vdz == 0 && vA == 0 && vB == 0 && vC == 0) continue;
      any = true;
      ProjLocal L;
      const F* K = Ks + 9 * c;
      const F* vmat = viewmats + 16 * c;
      proj_local(means, M, n, vmat, K, P, L);
      const double fx = K[0], fy = K[4];
      const double tx = L.p[0], ty = L.p[1], tz = L.p[2];
      const double a = L.cov[0], b = L.cov[1], cc = L.cov[2];
      const double det_raw = a * cc - b * b;
      // conic = Σ'⁻¹ = [[c, −b], [−b, a]] / det (det clamped at 1e-10 as the reference: no gradient there)
      double va, vb, vc;
      if (det_raw > 1e-10) {
        const double det = det_raw;
        const double I00 = cc / det, I01 = -b / det, I11 = a / det;
        // G = [[vA, vB/2], [vB/2, vC]];  v_Σ' = −Σ'⁻¹ G Σ'⁻¹
        const double G00 = vA, G01 = 0.5 * vB, G11 = vC;
        const double X00 = I00 * G00 + I01 * G01, X01 = I00 * G01 + I01 * G11;
        const double X10 = I01 * G00 + I11 * G01, X11 = I01 * G01 + I11 * G11;
        va = -(X00 * I00 + X01 * I01);
        vc = -(X10 * I01 + X11 * I11);
        vb = -2.0 * (X00 * I01 + X01 * I11);  // b sits in both off-diagonal entries
      } else {
        va = vC / 1e-10;
        vc = vA / 1e-10;
        vb = -vB / 1e-10;
      }
      // cov = J Σc Jᵀ: V = [[va, vb/2], [vb/2, vc]];  v_Σc = Jᵀ V J,  v_J = 2 V J Σc
      const double V[4] = {va, 0.5 * vb, 0.5 * vb, vc};
      double VJ[6];
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 3; ++j) VJ[3 * i + j] = V[2 * i] * L.J[j] + V[2 * i + 1] * L.J[3 + j];
      double vSc[9];
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) vSc[3 * i + j] = L.J[i] * VJ[j] + L.J[3 + i] * VJ[3 + j];
      double vJ[6];
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 3; ++j)
          vJ[3 * i + j] = 2.0 * (VJ[3 * i] * L.Sc[j] + VJ[3 * i + 1] * L.Sc[3 + j] + VJ[3 * i + 2] * L.Sc[6 + j]);
      double vtx = 0, vty = 0, vtz = vdz;
      const double tz2 = tz * tz, tz3 = tz2 * tz;
      vtz += -fx / tz2 * vJ[0] + 2.0 * fx * L.txc / tz3 * vJ[2] - fy / tz2 * vJ[4] + 2.0 * fy * L.tyc / tz3 * vJ[5];
      const double vtxc = -fx / tz2 * vJ[2], vtyc = -fy / tz2 * vJ[5];
      // txc = tz · clamp(tx / tz): unclipped → tx; clipped → tz · limit
      if (L.clip_x) vtz += (L.txc / tz) * vtxc; else vtx += vtxc;
      if (L.clip_y) vtz += (L.tyc / tz) * vtyc; else vty += vtyc;
      // means2d = (fx tx / tz + cx, fy ty / tz + cy)
      vtx += fx / tz * vmx;
      vty += fy / tz * vmy;
      vtz -= (fx * tx * vmx + fy * ty * vmy) / tz2;
      double W[9];
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) W[3 * i + j] = double(vmat[4 * i + j]);
      const double vp[3] = {vtx, vty, vtz};
      for (int j = 0; j < 3; ++j) vm[j] += W[j] * vp[0] + W[3 + j] * vp[1] + W[6 + j] * vp[2];
      // Σc = W Σ Wᵀ → v_Σ = Wᵀ v_Σc W;  Σ = M Mᵀ → v_M += 2 v_Σ M (v_Σ symmetric)
      double T1[9], vS[9];
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j)
          T1[3 * i + j] = vSc[3 * i] * W[j] + vSc[3 * i + 1] * W[3 + j] + vSc[3 * i + 2] * W[6 + j];
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) vS[3 * i + j] = W[i] * T1[j] + W[3 + i] * T1[3 + j] + W[6 + i] * T1[6 + j];
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j)
          vM[3 * i + j] += (vS[3 * i] + vS[i]) * M[j] + (vS[3 * i + 1] + vS[3 + i]) * M[3 + j] +
                           (vS[3 * i + 2] + vS[6 + i]) * M[6 + j];
    }
    if (!any) {
      for (int i = 0; i < 3; ++i) v_means[3 * n + i] = F(0), v_scales[3 * n + i] = F(0);
      for (int i = 0; i < 4; ++i) v_quats[4 * n + i] = F(0);
      continue;
    }
    for (int i = 0; i < 3; ++i) v_means[3 * n + i] = F(vm[i]);
    // M = R diag(s)
    double R[9], vR[9];
    quat_rotmat(qn, R);
    for (int j = 0; j < 3; ++j) {
      const double s = scales[3 * n + j];
      v_scales[3 * n + j] = F(R[j] * vM[j] + R[3 + j] * vM[3 + j] + R[6 + j] * vM[6 + j]);
      for (int i = 0; i < 3; ++i) vR[3 * i + j] = vM[3 * i + j] * s;
    }
    const double w = qn[0], x = qn[1], y = qn[2], z = qn[3];
    double vq[4];
    vq[0] = 2 * (-z * vR[1] + y * vR[2] + z * vR[3] - x * vR[5] - y * vR[6] + x * vR[7]);
    vq[1] = 2 * (y * vR[1] + z * vR[2] + y * vR[3] - 2 * x * vR[4] - w * vR[5] + z * vR[6] + w * vR[7] - 2 * x * vR[8]);
    vq[2] = 2 * (-2 * y * vR[0] + x * vR[1] + w * vR[2] + x * vR[3] + z * vR[5] - w * vR[6] + z * vR[7] -
                 2 * y * vR[8]);
    vq[3] = 2 * (-2 * z * vR[0] - w * vR[1] + x * vR[2] + w * vR[3] - 2 * z * vR[4] + y * vR[5] + x * vR[6] +
                 y * vR[7]);
    // q̂ = q / max(|q|, eps): v_q = (v_q̂ − q̂ (q̂·v_q̂)) / |q|
    const double dot = w * vq[0] + x * vq[1] + y * vq[2] + z * vq[3];
    const bool clamped = qnorm <= 1e-12;
    for (int i = 0; i < 4; ++i) v_quats[4 * n + i] = F(clamped ? vq[i] / qnorm : (vq[i] - qn[i] * dot) / qnorm);
  }
}

// ------------------------------------------------------------------------------------------------------------
// Spherical-harmonics colours (3DGS computeColorFromSH; perception3d.rendering.sh): colour = max(Σ_k b_k(d̂) sh_k
// + 0.5, 0), d = mean − camera centre. sh [N or C·N, K, 3] (cam_stride 0 or N·K·3), out [C, N, 3].
constexpr double SH_C0 = 0.28209479177387814, SH_C1 = 0.4886025119029199;
constexpr double SH_C2[5] = {1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792,
                             0.5462742152960396};
constexpr double SH_C3[7] = {-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
                             -0.4570457994644658, 1.445305721320277, -0.5900435899266435};

inline int sh_bases(int degree, double x, double y, double z, double* b) {
  b[0] = SH_C0;
  if (degree < 1) return 1;
  b[1] = -SH_C1 * y; b[2] = SH_C1 * z; b[3] = -SH_C1 * x;
  if (degree < 2) return 4;
  const double xx = x * x, yy = y * y, zz = z * z;
  b[4] = SH_C2[0] * x * y; b[5] = SH_C2[1] * y * z; b[6] = SH_C2[2] * (2 * zz - xx - yy);
  b[7] = SH_C2[3] * x * z; b[8] = SH_C2[4] * (xx - yy);
  if (degree < 3) return 9;
  b[9] = SH_C3[0] * y * (3 * xx - yy); b[10] = SH_C3[1] * x * y * z; b[11] = SH_C3[2] * y * (4 * zz - xx - yy);
  b[12] = SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy); b[13] = SH_C3[4] * x * (4 * zz - xx - yy);
  b[14] = SH_C3[5] * z * (xx - yy); b[15] = SH_C3[6] * x * (xx - 3 * yy);
  return 16;
}

// ∂b_k/∂(x, y, z) contracted with g_k: adds to vd[3].
inline void sh_bases_vjp(int degree, double x, double y, double z, const double* g, double* vd) {
  if (degree < 1) return;
  vd[0] += -SH_C1 * g[3]; vd[1] += -SH_C1 * g[1]; vd[2] += SH_C1 * g[2];
  if (degree < 2) return;
  const double xx = x * x, yy = y * y, zz = z * z;
  vd[0] += SH_C2[0] * y * g[4] - 2 * SH_C2[2] * x * g[6] + SH_C2[3] * z * g[7] + 2 * SH_C2[4] * x * g[8];
  vd[1] += SH_C2[0] * x * g[4] + SH_C2[1] * z * g[5] - 2 * SH_C2[2] * y * g[6] - 2 * SH_C2[4] * y * g[8];
  vd[2] += SH_C2[1] * y * g[5] + 4 * SH_C2[2] * z * g[6] + SH_C2[3] * x * g[7];
  if (degree < 3) return;
  vd[0] += SH_C3[0] * 6 * x * y * g[9] + SH_C3[1] * y * z * g[10] - SH_C3[2] * 2 * x * y * g[11] -
           SH_C3[3] * 6 * x * z * g[12] + SH_C3[4] * (4 * zz - 3 * xx - yy) * g[13] + SH_C3[5] * 2 * x * z * g[14] +
           SH_C3[6] * 3 * (xx - yy) * g[15];
  vd[1] += SH_C3[0] * 3 * (xx - yy) * g[9] + SH_C3[1] * x * z * g[10] + SH_C3[2] * (4 * zz - xx - 3 * yy) * g[11] -
           SH_C3[3] * 6 * y * z * g[12] - SH_C3[4] * 2 * x * y * g[13] - SH_C3[5] * 2 * y * z * g[14] -
           SH_C3[6] * 6 * x * y * g[15];
  vd[2] += SH_C3[1] * x * y * g[10] + SH_C3[2] * 8 * y * z * g[11] + SH_C3[3] * (6 * zz - 3 * xx - 3 * yy) * g[12] +
           SH_C3[4] * 8 * x * z * g[13] + SH_C3[5] * (xx - yy) * g[14];
}

struct ShParams {
  int64_t C, N, K, degree, cam_stride;
};

template <typename F>
inline void unit_dir(const F* means, const F* campos, int64_t n, int64_t c, double d[3], double& len) {
  for (int i = 0; i < 3; ++i) d[i] = double(means[3 * n + i]) - double(campos[3 * c + i]);
  len = std::max(std::sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]), 1e-12);
  for (int i = 0; i < 3; ++i) d[i] /= len;
}

template <typename F>
void sh_fwd(int64_t n0, int64_t n1, const F* means, const F* sh, const F* campos, const ShParams& S, F* out) {
  double b[16];
  for (int64_t n = n0; n < n1; ++n)
    for (int64_t c = 0; c < S.C; ++c) {
      double d[3], len;
      unit_dir(means, campos, n, c, d, len);
      const int nb = sh_bases(int(S.degree), d[0], d[1], d[2], b);
      const F* co = sh + c * S.cam_stride + n * S.K * 3;
      for (int ch = 0; ch < 3; ++ch) {
        double s = 0;
        for (int k = 0; k < nb; ++k) s += b[k] * double(co[3 * k + ch]);
        out[(c * S.N + n) * 3 + ch] = F(std::max(s + 0.5, 0.0));
      }
    }
}

// v_out [C, N, 3] → v_sh (written; [N, K, 3] sums the cameras) and v_means (accumulated into).
template <typename F>
void sh_bwd(int64_t n0, int64_t n1, const F* means, const F* sh, const F* campos, const ShParams& S,
            const F* v_out, F* v_sh, F* v_means) {
  double b[16], g[16];
  for (int64_t n = n0; n < n1; ++n) {
    if (S.cam_stride == 0)
      for (int64_t i = 0; i < S.K * 3; ++i) v_sh[n * S.K * 3 + i] = F(0);
    double vmean[3] = {0, 0, 0};
    for (int64_t c = 0; c < S.C; ++c) {
      F* vs = v_sh + c * S.cam_stride + n * S.K * 3;
      if (S.cam_stride != 0)
        for (int64_t i = 0; i < S.K * 3; ++i) vs[i] = F(0);
      double d[3], len;
      unit_dir(means, campos, n, c, d, len);
      const int nb = sh_bases(int(S.degree), d[0], d[1], d[2], b);
      const F* co = sh + c * S.cam_stride + n * S.K * 3;
      double vc[3];
      bool any = false;
      for (int ch = 0; ch < 3; ++ch) {
        double s = 0;
        for (int k = 0; k < nb; ++k) s += b[k] * double(co[3 * k + ch]);
        vc[ch] = (s + 0.5 >= 0.0) ? double(v_out[(c * S.N + n) * 3 + ch]) : 0.0;  // clamp_min passes at >= 0
        any = any || vc[ch] != 0;
      }
      if (!any) continue;
      for (int k = 0; k < nb; ++k) {
        g[k] = 0;
        for (int ch = 0; ch < 3; ++ch) {
          vs[3 * k + ch] += F(b[k] * vc[ch]);
          g[k] += vc[ch] * double(co[3 * k + ch]);
        }
      }
      double vd[3] = {0, 0, 0};
      sh_bases_vjp(int(S.degree), d[0], d[1], d[2], g, vd);
      const double dot = d[0] * vd[0] + d[1] * vd[1] + d[2] * vd[2];
      for (int i = 0; i < 3; ++i) vmean[i] += (vd[i] - d[i] * dot) / len;
    }
    for (int i = 0; i < 3; ++i) v_means[3 * n + i] += F(vmean[i]);
  }
}

// ------------------------------------------------------------------------------------------------------------
// Tile binning (3DGS §6; perception3d.rendering.rasterize_torch.bin_tiles, same output order): the visible
// (c, n) sorted by depth (ties by index), each assigned to the tiles its box touches, a stable counting sort by
// tile. Phase 1 (bin_count) fills order [n_vis], rect [G, 4] and counts → offsets [n_tiles + 1], returns the
// number of pairs; phase 2 (bin_fill) writes flatten_ids.
template <typename F>
int64_t bin_count(int64_t G, const F* means2d, const int32_t* radii, const F* depths, int64_t N, int64_t tile_size,
                  int64_t tw, int64_t th, int64_t n_tiles, int64_t* order, int32_t* rect, int64_t* offsets,
                  int64_t* n_vis) {
  int64_t nv = 0;
  for (int64_t g = 0; g < G; ++g)
    if (radii[2 * g] > 0 && radii[2 * g + 1] > 0) order[nv++] = g;
  std::stable_sort(order, order + nv, [&](int64_t i, int64_t j) { return depths[i] < depths[j]; });
  const int64_t tpc = tw * th;
  int64_t total = 0;
  for (int64_t i = 0; i < nv; ++i) {
    const int64_t g = order[i];
    const double mx = means2d[2 * g], my = means2d[2 * g + 1], rx = radii[2 * g], ry = radii[2 * g + 1];
    const double ts = double(tile_size);
    auto cl = [](double v, int64_t hi) { return int32_t(std::min<double>(std::max<double>(v, 0.0), double(hi))); };
    int32_t* r = rect + 4 * g;
    r[0] = cl(std::floor((mx - rx) / ts), tw);
    r[1] = cl(std::ceil((mx + rx) / ts), tw);
    r[2] = cl(std::floor((my - ry) / ts), th);
    r[3] = cl(std::ceil((my + ry) / ts), th);
    const int64_t cam = g / N;
    for (int64_t ty = r[2]; ty < r[3]; ++ty)
      for (int64_t tx = r[0]; tx < r[1]; ++tx) offsets[1 + cam * tpc + ty * tw + tx] += 1;
    total += int64_t(r[1] - r[0]) * (r[3] - r[2]);
  }
  for (int64_t t = 0; t < n_tiles; ++t) offsets[t + 1] += offsets[t];
  *n_vis = nv;
  return total;
}

void bin_fill(int64_t nv, const int64_t* order, const int32_t* rect, int64_t N, int64_t tw, int64_t th,
              const int64_t* offsets, int64_t* cursor, int64_t* flatten_ids) {
  const int64_t tpc = tw * th;
  for (int64_t i = 0; i < nv; ++i) {
    const int64_t g = order[i];
    const int32_t* r = rect + 4 * g;
    const int64_t cam = g / N;
    for (int64_t ty = r[2]; ty < r[3]; ++ty)
      for (int64_t tx = r[0]; tx < r[1]; ++tx) {
        const int64_t t = cam * tpc + ty * tw + tx;
        flatten_ids[offsets[t] + cursor[t]++] = g;
      }
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
      (tile_size <= 8 ? forward_tile<F, 8> : forward_tile<F, 16>)(tiles[i], means2d, conics, opac, feats, D, boxr, \
                      flatten_ids, offsets, tile_size, tiles_w, tiles_h, width, height, out_img, out_T, out_last); \
  }                                                                                                              \
  extern "C" void backward_tiles_##SUFFIX(                                                                       \
      const int64_t* tiles, int64_t n, const F* means2d, const F* conics, const F* opac, const F* feats,         \
      int64_t D, const int32_t* boxr, const int64_t* flatten_ids, const int64_t* offsets, int64_t tile_size,     \
      int64_t tiles_w, int64_t tiles_h, int64_t width, int64_t height, const F* T_final,                         \
      const int32_t* last_ids, const F* g_img, const F* g_T, F* v_means2d, F* v_conics, F* v_opac,               \
      F* v_feats) {                                                                                              \
    for (int64_t i = 0; i < n; ++i)                                                                              \
      (tile_size <= 8 ? backward_tile<F, 8> : backward_tile<F, 16>)(tiles[i], means2d, conics, opac, feats, D,     \
                       boxr, flatten_ids, offsets, tile_size, tiles_w, tiles_h, width, height, T_final, last_ids, \
                       g_img, g_T, v_means2d, v_conics, v_opac, v_feats);                                        \
  }

P3D_EXPORT(float, f32)
P3D_EXPORT(double, f64)

#define P3D_EXPORT_PRE(F, SUFFIX)                                                                                \
  extern "C" void project_fwd_##SUFFIX(int64_t n0, int64_t n1, const F* means, const F* quats, const F* scales,  \
                                       const F* opac, const F* viewmats, const F* Ks, int64_t C, int64_t N,      \
                                       int64_t width, int64_t height, double eps2d, double near_plane,           \
                                       double far_plane, double radius_clip, F* means2d, F* depths, F* conics,   \
                                       int32_t* radii, int32_t* binr) {                                          \
    const ProjParams P{C, N, width, height, eps2d, near_plane, far_plane, radius_clip};                          \
    project_fwd<F>(n0, n1, means, quats, scales, opac, viewmats, Ks, P, means2d, depths, conics, radii, binr);   \
  }                                                                                                              \
  extern "C" void project_bwd_##SUFFIX(int64_t n0, int64_t n1, const F* means, const F* quats, const F* scales,  \
                                       const F* viewmats, const F* Ks, int64_t C, int64_t N, int64_t width,      \
                                       int64_t height, double eps2d, double near_plane, double far_plane,        \
                                       double radius_clip, const F* v_means2d, const F* v_depths,                \
                                       const F* v_conics, F* v_means, F* v_quats, F* v_scales) {                 \
    const ProjParams P{C, N, width, height, eps2d, near_plane, far_plane, radius_clip};                          \
    project_bwd<F>(n0, n1, means, quats, scales, viewmats, Ks, P, v_means2d, v_depths, v_conics, v_means,        \
                   v_quats, v_scales);                                                                           \
  }                                                                                                              \
  extern "C" void sh_fwd_##SUFFIX(int64_t n0, int64_t n1, const F* means, const F* sh, const F* campos,           \
                                  int64_t C, int64_t N, int64_t K, int64_t degree, int64_t cam_stride, F* out) {  \
    sh_fwd<F>(n0, n1, means, sh, campos, ShParams{C, N, K, degree, cam_stride}, out);                            \
  }                                                                                                              \
  extern "C" void sh_bwd_##SUFFIX(int64_t n0, int64_t n1, const F* means, const F* sh, const F* campos,           \
                                  int64_t C, int64_t N, int64_t K, int64_t degree, int64_t cam_stride,           \
                                  const F* v_out, F* v_sh, F* v_means) {                                         \
    sh_bwd<F>(n0, n1, means, sh, campos, ShParams{C, N, K, degree, cam_stride}, v_out, v_sh, v_means);           \
  }                                                                                                              \
  extern "C" int64_t bin_count_##SUFFIX(int64_t G, const F* means2d, const int32_t* radii, const F* depths,      \
                                        int64_t N, int64_t tile_size, int64_t tw, int64_t th, int64_t n_tiles,   \
                                        int64_t* order, int32_t* rect, int64_t* offsets, int64_t* n_vis) {       \
    return bin_count<F>(G, means2d, radii, depths, N, tile_size, tw, th, n_tiles, order, rect, offsets, n_vis);  \
  }

P3D_EXPORT_PRE(float, f32)
P3D_EXPORT_PRE(double, f64)

extern "C" void bin_fill_i64(int64_t nv, const int64_t* order, const int32_t* rect, int64_t N, int64_t tw,
                             int64_t th, const int64_t* offsets, int64_t* cursor, int64_t* flatten_ids) {
  bin_fill(nv, order, rect, N, tw, th, offsets, cursor, flatten_ids);
}
