/* test_kernels.c — every CPU kernel against an independent float64 re-implementation: forward
 * values, and backward against central finite differences of the float64 forward.
 *
 * Each case prints `PASS name err=... limit=...` or `FAIL name err=... limit=...`. Errors are normwise
 * relative, max|got - want| / max|want|: elementwise relative error is meaningless near zero. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "tests/unit/test_report.h"

static double rel_err_fd(const float *got, const double *want, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)got[i] - want[i]);
    if (!(d <= num)) num = d; /* NaN propagates */
    if (fabs(want[i]) > den) den = fabs(want[i]);
  }
  return num / (den > 1e-30 ? den : 1e-30);
}

static uint64_t stream_counter = 100;
static float *rand_f(size_t n, float scale) {
  float *x = malloc(n * sizeof(float));
  k_fill_normal(x, n, 42, stream_counter++, 0);
  for (size_t i = 0; i < n; i++) x[i] *= scale;
  return x;
}
static double *to_d(const float *x, size_t n) {
  double *d = malloc(n * sizeof(double));
  for (size_t i = 0; i < n; i++) d[i] = x[i];
  return d;
}

/* Finite-difference gradient of L(in) = sum_j out_j(in) * g_j for a float64 forward. */
typedef void (*ref_forward)(const double *in, double *out, const void *ctx);
static void fd_gradient(ref_forward f, const void *ctx, const double *in, size_t n_in, const double *g, size_t n_out,
                        double *grad) {
  double *x = malloc(n_in * sizeof(double)), *out = malloc(n_out * sizeof(double));
  memcpy(x, in, n_in * sizeof(double));
  for (size_t i = 0; i < n_in; i++) {
    double h = 1e-6 * (fabs(x[i]) > 1 ? fabs(x[i]) : 1), save = x[i], lp = 0, lm = 0;
    x[i] = save + h;
    f(x, out, ctx);
    for (size_t j = 0; j < n_out; j++) lp += out[j] * g[j];
    x[i] = save - h;
    f(x, out, ctx);
    for (size_t j = 0; j < n_out; j++) lm += out[j] * g[j];
    x[i] = save;
    grad[i] = (lp - lm) / (2 * h);
  }
  free(x);
  free(out);
}

/* ---- linear ---------------------------------------------------------------------------------- */
typedef struct { int M, K, N; } linear_ctx;
static void ref_linear(const double *in, double *out, const void *vctx) {
  const linear_ctx *c = vctx;
  const double *x = in, *w = in + c->M * c->K, *b = w + c->N * c->K;
  for (int i = 0; i < c->M; i++)
    for (int j = 0; j < c->N; j++) {
      double s = b[j];
      for (int k = 0; k < c->K; k++) s += x[i * c->K + k] * w[j * c->K + k];
      out[i * c->N + j] = s;
    }
}
static void test_linear(void) {
  linear_ctx c = {7, 5, 6};
  size_t nx = 35, nw = 30, nb = 6, nin = nx + nw + nb, nout = 42;
  float *in = rand_f(nin, 1), *g = rand_f(nout, 1);
  double *ind = to_d(in, nin), *gd = to_d(g, nout), *want = malloc(nout * 8), *fd = malloc(nin * 8);
  float out[42], grad[71] = {0};
  k_linear_forward(out, in, in + nx, in + nx + nw, c.M, c.K, c.N);
  ref_linear(ind, want, &c);
  report("linear forward", rel_err_fd(out, want, nout), 1e-6, NULL);
  /* gradients accumulate: start from a known non-zero value and subtract it back */
  for (size_t i = nx; i < nin; i++) grad[i] = 0.5f;
  k_linear_backward(grad, grad + nx, grad + nx + nw, g, in, in + nx, c.M, c.K, c.N);
  for (size_t i = nx; i < nin; i++) grad[i] -= 0.5f;
  fd_gradient(ref_linear, &c, ind, nin, gd, nout, fd);
  report("linear backward d_in", rel_err_fd(grad, fd, nx), 1e-5, NULL);
  report("linear backward d_weight (accumulated)", rel_err_fd(grad + nx, fd + nx, nw), 1e-5, NULL);
  report("linear backward d_bias (accumulated)", rel_err_fd(grad + nx + nw, fd + nx + nw, nb), 1e-5, NULL);
  free(in); free(g); free(ind); free(gd); free(want); free(fd);
}

/* ---- layernorm + modulate -------------------------------------------------------------------- */
typedef struct { int B, N, D, stride; } ln_ctx;
/* inputs: x[B,N,D], cond[B,stride] with shift at cond+0 and scale at cond+D */
static void ref_ln(const double *in, double *out, const void *vctx) {
  const ln_ctx *c = vctx;
  const double *x = in, *cond = in + c->B * c->N * c->D;
  for (int b = 0; b < c->B; b++)
    for (int n = 0; n < c->N; n++) {
      const double *xr = x + (b * c->N + n) * c->D;
      double mu = 0, var = 0;
      for (int d = 0; d < c->D; d++) mu += xr[d];
      mu /= c->D;
      for (int d = 0; d < c->D; d++) var += (xr[d] - mu) * (xr[d] - mu);
      var /= c->D;
      double rs = 1 / sqrt(var + 1e-6);
      for (int d = 0; d < c->D; d++)
        out[(b * c->N + n) * c->D + d] =
            (xr[d] - mu) * rs * (1 + cond[b * c->stride + c->D + d]) + cond[b * c->stride + d];
    }
}
static void test_layernorm(void) {
  ln_ctx c = {2, 3, 8, 20};
  size_t nx = 48, nc = 40, nin = nx + nc, nout = 48;
  float *in = rand_f(nin, 1), *g = rand_f(nout, 1);
  for (size_t i = 0; i < nx; i++) in[i] = in[i] * 2 + 0.7f; /* non-zero mean, non-unit variance */
  double *ind = to_d(in, nin), *gd = to_d(g, nout), *want = malloc(nout * 8), *fd = malloc(nin * 8);
  float out[48], mean[6], rstd[6], grad[88] = {0};
  k_layernorm_modulate_forward(out, mean, rstd, in, in + nx, in + nx + c.D, c.stride, c.B, c.N, c.D, 1e-6f);
  ref_ln(ind, want, &c);
  report("layernorm_modulate forward", rel_err_fd(out, want, nout), 1e-5, NULL);
  k_layernorm_modulate_backward(grad, grad + nx, grad + nx + c.D, g, in, mean, rstd, in + nx + c.D, c.stride, c.B,
                                c.N, c.D);
  fd_gradient(ref_ln, &c, ind, nin, gd, nout, fd);
  report("layernorm_modulate backward d_x", rel_err_fd(grad, fd, nx), 1e-4, NULL);
  /* only the shift and scale columns of each cond row have gradients; the rest must stay 0 */
  report("layernorm_modulate backward d_shift,d_scale (strided)", rel_err_fd(grad + nx, fd + nx, nc), 1e-4, NULL);
  free(in); free(g); free(ind); free(gd); free(want); free(fd);
}

/* ---- pointwise ------------------------------------------------------------------------------- */
static void ref_gelu(const double *in, double *out, const void *ctx) {
  size_t n = *(const size_t *)ctx;
  for (size_t i = 0; i < n; i++) {
    double x = in[i];
    out[i] = 0.5 * x * (1 + tanh(sqrt(2 / 3.14159265358979323846) * (x + 0.044715 * x * x * x)));
  }
}
static void ref_silu(const double *in, double *out, const void *ctx) {
  size_t n = *(const size_t *)ctx;
  for (size_t i = 0; i < n; i++) out[i] = in[i] / (1 + exp(-in[i]));
}
static void test_pointwise(void) {
  size_t n = 64;
  float *in = rand_f(n, 3), *g = rand_f(n, 1), out[64], grad[64];
  double *ind = to_d(in, n), *gd = to_d(g, n), want[64], fd[64];
  k_gelu_forward(out, in, n);
  ref_gelu(ind, want, &n);
  report("gelu forward", rel_err_fd(out, want, n), 1e-6, NULL);
  k_gelu_backward(grad, g, in, n);
  fd_gradient(ref_gelu, &n, ind, n, gd, n, fd);
  report("gelu backward", rel_err_fd(grad, fd, n), 1e-5, NULL);
  k_silu_forward(out, in, n);
  ref_silu(ind, want, &n);
  report("silu forward", rel_err_fd(out, want, n), 1e-6, NULL);
  k_silu_backward(grad, g, in, n);
  fd_gradient(ref_silu, &n, ind, n, gd, n, fd);
  report("silu backward", rel_err_fd(grad, fd, n), 1e-5, NULL);
  free(in); free(g); free(ind); free(gd);
}

typedef struct { int B, N, D, stride; } gate_ctx;
static void ref_gated(const double *in, double *out, const void *vctx) {
  const gate_ctx *c = vctx;
  size_t n = (size_t)c->B * c->N * c->D;
  const double *x = in, *f = in + n, *gate = in + 2 * n;
  for (int b = 0; b < c->B; b++)
    for (int t = 0; t < c->N; t++)
      for (int d = 0; d < c->D; d++) {
        size_t i = ((size_t)b * c->N + t) * c->D + d;
        out[i] = x[i] + gate[b * c->stride + d] * f[i];
      }
}
static void test_gated_residual(void) {
  gate_ctx c = {2, 3, 4, 9};
  size_t n = 24, nin = 2 * n + 18;
  float *in = rand_f(nin, 1), *g = rand_f(n, 1), out[24], grad[66] = {0};
  double *ind = to_d(in, nin), *gd = to_d(g, n), want[24], fd[66];
  k_gated_residual_forward(out, in, in + n, in + 2 * n, c.stride, c.B, c.N, c.D);
  ref_gated(ind, want, &c);
  report("gated_residual forward", rel_err_fd(out, want, n), 1e-6, NULL);
  k_gated_residual_backward(grad + n, grad + 2 * n, g, in + n, in + 2 * n, c.stride, c.B, c.N, c.D);
  memcpy(grad, g, n * sizeof(float)); /* d_x is d_out by contract */
  fd_gradient(ref_gated, &c, ind, nin, gd, n, fd);
  report("gated_residual backward d_x", rel_err_fd(grad, fd, n), 1e-6, NULL);
  report("gated_residual backward d_f", rel_err_fd(grad + n, fd + n, n), 1e-5, NULL);
  report("gated_residual backward d_gate (strided)", rel_err_fd(grad + 2 * n, fd + 2 * n, 18), 1e-5, NULL);
  free(in); free(g); free(ind); free(gd);
}

/* ---- attention ------------------------------------------------------------------------------- */
typedef struct { int B, N, D, H; } attn_ctx;
static void ref_attention(const double *qkv, double *out, const void *vctx) {
  const attn_ctx *c = vctx;
  int dh = c->D / c->H, N = c->N, D = c->D;
  double *s = malloc(sizeof(double) * N);
  for (int b = 0; b < c->B; b++)
    for (int h = 0; h < c->H; h++)
      for (int i = 0; i < N; i++) {
        const double *q = qkv + ((size_t)b * N + i) * 3 * D + h * dh;
        double mx = -1e300, sum = 0;
        for (int j = 0; j < N; j++) {
          const double *k = qkv + ((size_t)b * N + j) * 3 * D + D + h * dh;
          double dot = 0;
          for (int d = 0; d < dh; d++) dot += q[d] * k[d];
          s[j] = dot / sqrt((double)dh);
          if (s[j] > mx) mx = s[j];
        }
        for (int j = 0; j < N; j++) sum += (s[j] = exp(s[j] - mx));
        for (int d = 0; d < dh; d++) {
          double acc = 0;
          for (int j = 0; j < N; j++) acc += s[j] / sum * qkv[((size_t)b * N + j) * 3 * D + 2 * D + h * dh + d];
          out[((size_t)b * N + i) * D + h * dh + d] = acc;
        }
      }
  free(s);
}
static void test_attention(int B, int N, int D, int H, const char *label) {
  attn_ctx c = {B, N, D, H};
  size_t nin = (size_t)B * N * 3 * D, nout = (size_t)B * N * D;
  float *qkv = rand_f(nin, 1.5f), *g = rand_f(nout, 1), *out = malloc(nout * 4), *grad = malloc(nin * 4);
  float *probs = malloc(sizeof(float) * B * H * N * N), *scratch = malloc(sizeof(float) * k_attention_scratch_floats(N));
  double *ind = to_d(qkv, nin), *gd = to_d(g, nout), *want = malloc(nout * 8), *fd = malloc(nin * 8);
  char name[128];
  k_attention_forward(out, probs, qkv, B, N, D, H);
  ref_attention(ind, want, &c);
  snprintf(name, sizeof name, "attention forward %s", label);
  report(name, rel_err_fd(out, want, nout), 1e-5, NULL);
  k_attention_backward(grad, g, qkv, out, probs, scratch, B, N, D, H);
  fd_gradient(ref_attention, &c, ind, nin, gd, nout, fd);
  snprintf(name, sizeof name, "attention backward d_q %s", label);
  /* compare q, k and v columns separately so a wrong slot cannot hide behind a right one */
  for (int part = 0; part < 3; part++) {
    double num = 0, den = 0;
    for (size_t r = 0; r < (size_t)B * N; r++)
      for (int d = 0; d < D; d++) {
        size_t i = r * 3 * D + (size_t)part * D + d;
        double e = fabs(grad[i] - fd[i]);
        if (!(e <= num)) num = e;
        if (fabs(fd[i]) > den) den = fabs(fd[i]);
      }
    snprintf(name, sizeof name, "attention backward d_%c %s", "qkv"[part], label);
    report(name, num / den, 1e-4, NULL);
  }
  free(qkv); free(g); free(out); free(grad); free(probs); free(scratch); free(ind); free(gd); free(want); free(fd);
}

/* ---- patches, tables, embeddings --------------------------------------------------------------- */
static void test_patchify(void) {
  int B = 2, C = 3, T = 2, H = 4, W = 6, p = 2, P = C * p * p, hp = H / p, wp = W / p;
  size_t n = (size_t)B * C * T * H * W;
  float *x = rand_f(n, 1), *tok = malloc(n * 4), *back = malloc(n * 4);
  k_patchify(tok, x, B, C, T, H, W, p);
  double err = 0;
  for (int b = 0; b < B; b++)
    for (int c = 0; c < C; c++)
      for (int t = 0; t < T; t++)
        for (int h = 0; h < H; h++)
          for (int w = 0; w < W; w++) {
            size_t tokn = (size_t)(t * hp + h / p) * wp + w / p;
            size_t ch = (size_t)(c * p + h % p) * p + w % p;
            float want = x[(((size_t)b * C + c) * T + t) * H * W + (size_t)h * W + w];
            float got = tok[((size_t)b * T * hp * wp + tokn) * P + ch];
            err += fabs(want - got);
          }
  report("patchify index map (frame,row,col) x (c,py,px)", err, 0, NULL);
  k_unpatchify(back, tok, B, C, T, H, W, p);
  report("unpatchify inverts patchify exactly", memcmp(back, x, n * 4) == 0 ? 0 : 1, 0, NULL);
  free(x); free(tok); free(back);
}

static void test_sincos(void) {
  double pos[3] = {0, 1.5, 37};
  int d = 16;
  float out[48];
  double want[48];
  k_sincos_table(out, pos, 3, d);
  for (int r = 0; r < 3; r++)
    for (int i = 0; i < d / 2; i++) {
      double w = 1.0 / pow(10000.0, 2.0 * i / d);
      want[r * d + i] = sin(pos[r] * w);
      want[r * d + d / 2 + i] = cos(pos[r] * w);
    }
  report("sincos table [sin | cos], w_i = 10000^(-2i/d)", rel_err_fd(out, want, 48), 1e-7, NULL);
  float x[2 * 3 * 4] = {0}, rows[3 * 4];
  double wantx[24];
  for (int i = 0; i < 12; i++) rows[i] = (float)i;
  k_add_rows_broadcast(x, rows, 2, 3, 4);
  for (int i = 0; i < 24; i++) wantx[i] = i % 12;
  report("add_rows_broadcast", rel_err_fd(x, wantx, 24), 0, NULL);
}

static void test_embedding(void) {
  float table[4 * 3], out[2 * 3] = {0}, dtab[12] = {0}, dout[6] = {1, 2, 3, 4, 5, 6};
  for (int i = 0; i < 12; i++) table[i] = (float)(i * i);
  int idx[2] = {3, 1};
  double want[6] = {81, 100, 121, 9, 16, 25}, wantg[12] = {0, 0, 0, 4, 5, 6, 0, 0, 0, 1, 2, 3};
  k_embedding_add(out, table, idx, 2, 3);
  report("embedding lookup", rel_err_fd(out, want, 6), 0, NULL);
  k_embedding_backward(dtab, dout, idx, 2, 3);
  report("embedding backward (scatter-add)", rel_err_fd(dtab, wantg, 12), 0, NULL);
}

/* ---- loss and optimizer ---------------------------------------------------------------------- */
static void ref_mse(const double *in, double *out, const void *ctx) {
  size_t n = *(const size_t *)ctx;
  double s = 0;
  for (size_t i = 0; i < n; i++) s += (in[i] - in[n + i]) * (in[i] - in[n + i]);
  out[0] = s / (double)n;
}
static void test_mse(void) {
  size_t n = 50;
  float *in = rand_f(2 * n, 1), grad[50];
  double *ind = to_d(in, 2 * n), want, fd[100], one = 1.0;
  double loss = k_mse_loss(grad, in, in + n, n, 1.0f);
  ref_mse(ind, &want, &n);
  float lossf = (float)loss;
  report("mse loss value", rel_err_fd(&lossf, &want, 1), 1e-6, NULL);
  fd_gradient(ref_mse, &n, ind, 2 * n, &one, 1, fd);
  report("mse loss d_pred", rel_err_fd(grad, fd, n), 1e-5, NULL);
  k_mse_loss(grad, in, in + n, n, 0.25f);
  for (size_t i = 0; i < n; i++) fd[i] *= 0.25;
  report("mse loss d_pred with grad_scale", rel_err_fd(grad, fd, n), 1e-5, NULL);
  free(in); free(ind);
}

static void test_adamw(void) {
  size_t n = 40;
  float *p = rand_f(n, 1), m[40] = {0}, v[40] = {0};
  double pd[40], md[40] = {0}, vd[40] = {0};
  for (size_t i = 0; i < n; i++) pd[i] = p[i];
  float lr = 1e-2f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.1f;
  for (int step = 1; step <= 5; step++) {
    float *g = rand_f(n, 1);
    k_adamw_step(p, g, m, v, n, lr, b1, b2, eps, wd, step);
    for (size_t i = 0; i < n; i++) { /* torch.optim.AdamW, in double */
      pd[i] *= 1 - (double)lr * wd;
      md[i] = b1 * md[i] + (1 - (double)b1) * g[i];
      vd[i] = b2 * vd[i] + (1 - (double)b2) * (double)g[i] * g[i];
      double bc1 = 1 - pow(b1, step), bc2 = 1 - pow(b2, step);
      pd[i] -= lr / bc1 * md[i] / (sqrt(vd[i]) / sqrt(bc2) + eps);
    }
    free(g);
  }
  report("adamw 5 steps vs torch.optim.AdamW formula (float64)", rel_err_fd(p, pd, n), 1e-6, NULL);
  float x[3] = {3, 4, 12};
  double ss = k_sum_squares(x, 3);
  float ssf = (float)ss;
  double want = 169;
  report("sum of squares", rel_err_fd(&ssf, &want, 1), 0, NULL);
  free(p);
}

/* ---- random numbers -------------------------------------------------------------------------- */
static void test_random(void) {
  size_t n = 1 << 20;
  float *a = malloc(n * 4), *b = malloc(n * 4), *c = malloc(n * 4);
  k_fill_normal(a, n, 7, 3, 0);
  k_fill_normal(b, n, 7, 3, 0);
  report("normal stream reproducible", memcmp(a, b, n * 4) == 0 ? 0 : 1, 0, NULL);
  k_fill_normal(c, 1000, 7, 3, 5000);
  report("normal stream random access (offset 5000)", memcmp(c, a + 5000, 1000 * 4) == 0 ? 0 : 1, 0, NULL);
  k_fill_normal(c, n, 7, 4, 0);
  report("different stream differs", memcmp(a, c, n * 4) != 0 ? 0 : 1, 0, NULL);
  double s = 0, s2 = 0, s4 = 0;
  for (size_t i = 0; i < n; i++) {
    s += a[i];
    s2 += (double)a[i] * a[i];
    s4 += (double)a[i] * a[i] * a[i] * a[i];
  }
  double mean = s / n, var = s2 / n - mean * mean, kurt = s4 / n;
  /* 5-sigma bounds at n = 2^20: mean 1/sqrt(n), variance sqrt(2/n), 4th moment sqrt(96/n) */
  report("normal mean ~ 0 (5 sigma)", fabs(mean), 5 / sqrt((double)n), NULL);
  report("normal variance ~ 1 (5 sigma)", fabs(var - 1), 5 * sqrt(2.0 / n), NULL);
  report("normal 4th moment ~ 3 (5 sigma)", fabs(kurt - 3), 5 * sqrt(96.0 / n), NULL);
  k_fill_uniform(b, n, 7, 9, 0);
  double lo = 1, hi = 0, us = 0;
  for (size_t i = 0; i < n; i++) {
    lo = b[i] < lo ? b[i] : lo;
    hi = b[i] > hi ? b[i] : hi;
    us += b[i];
  }
  report("uniform in [0, 1)", (lo >= 0 && hi < 1) ? 0 : 1, 0, NULL);
  report("uniform mean ~ 1/2 (5 sigma)", fabs(us / n - 0.5), 5 * sqrt(1.0 / 12 / n), NULL);
  free(a); free(b); free(c);
}

int main(void) {
  test_linear();
  test_layernorm();
  test_pointwise();
  test_gated_residual();
  test_attention(2, 5, 8, 2, "(B2 N5 D8 H2)");
  test_attention(1, 17, 12, 3, "(B1 N17 D12 H3)");
  test_patchify();
  test_sincos();
  test_embedding();
  test_mse();
  test_adamw();
  test_random();
  test_summary("test_kernels", NULL);
  return test_exit_code();
}
