/* bench_step.c — times one training microbatch (forward + MSE loss + backward) of a config's model
 * at full rate, and OpenBLAS sgemm on the same threads for scale.
 *
 * usage: bench_step CONFIG [--iters=N] [--warmup=W] [--section.key=value ...]
 * prints: `tpdiff_ms_per_step M`, `forward_ms F`, `backward_ms B`, `step_gflop G`, `sgemm_gflops S`,
 * `threads T`, `arena_mib A` (the activation arena, which train.recompute=... overrides change) */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/kernels.h"
#include "model/dit.h"
#include "trainer/config.h"
#include "trainer/trainer.h"

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return 1e3 * (double)ts.tv_sec + 1e-6 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}
static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Matmul FLOPs of forward + backward for B clips at full rate (backward = 2 x forward). */
static double step_flops(const dit_shape *s, int B) {
  double N = dit_stage_tokens(s, s->stages - 1), D = s->dim, P = (double)s->channels * s->patch * s->patch;
  double fwd = 2 * N * P * D + s->depth * (24 * N * D * D + 4 * N * N * D) + 2 * N * D * P;
  return 3 * fwd * B;
}

static double sgemm_gflops(void) {
  int n = 1024;
  float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n), *c = malloc(sizeof(float) * n * n);
  k_fill_normal(a, (size_t)n * n, 1, 1, 0);
  k_fill_normal(b, (size_t)n * n, 1, 2, 0);
  double best = 1e30;
  for (int i = 0; i < 5; i++) {
    double t0 = now_ms();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    double dt = now_ms() - t0;
    if (dt < best) best = dt;
  }
  free(a);
  free(b);
  free(c);
  return 2.0 * n * n * n / (best * 1e6);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: bench_step CONFIG [--iters=N] [--warmup=W] [--section.key=value ...]\n");
    return 2;
  }
  int iters = 5, warmup = 2;
  char *overrides[64];
  int n_over = 0;
  for (int i = 2; i < argc; i++) {
    if (sscanf(argv[i], "--iters=%d", &iters) == 1 || sscanf(argv[i], "--warmup=%d", &warmup) == 1) continue;
    if (n_over < 64) overrides[n_over++] = argv[i];
  }
  static tpdiff_config cfg;
  char err[TPDIFF_CONFIG_ERROR_MAX];
  if (config_load(&cfg, argv[1], n_over, overrides, err, sizeof err) != 0) {
    fprintf(stderr, "bench_step: %s\n", err);
    return 2;
  }
  static trainer tr;
  if (trainer_create(&tr, &cfg, tpdiff_cpu_backend(), err, sizeof err) != 0) {
    fprintf(stderr, "bench_step: %s\n", err);
    return 1;
  }
  dit_model *m = &tr.model;
  /* no zero weights that could shortcut work; the CPU backend's memory is host memory, so the
   * buffers below are used in place */
  if (dit_init_random(m, 7) != 0) {
    fprintf(stderr, "bench_step: out of memory initialising the weights\n");
    return 1;
  }
  int B = cfg.train_clips_per_microbatch, stage = m->shape.stages - 1;
  size_t n = (size_t)m->shape.channels * m->shape.frames * m->shape.height * m->shape.width * (size_t)B;
  float *x = malloc(n * sizeof(float)), *target = malloc(n * sizeof(float)), *d_out = malloc(n * sizeof(float));
  float t[256];
  int y[256] = {0};
  k_fill_normal(x, n, 1, 1, 0);
  k_fill_normal(target, n, 1, 2, 0);
  k_fill_uniform(t, (size_t)B, 1, 3, 0);
  double *fwd = malloc(sizeof(double) * (size_t)iters), *bwd = malloc(sizeof(double) * (size_t)iters),
         *tot = malloc(sizeof(double) * (size_t)iters);
  for (int i = -warmup; i < iters; i++) {
    m->be->fill_zero(m->grads, m->num_floats * sizeof(float));
    double t0 = now_ms();
    const float *pred = dit_forward(m, tr.acts, x, t, m->shape.classes ? y : NULL, stage, B);
    k_mse_loss(d_out, pred, target, n, 1.0f);
    double t1 = now_ms();
    dit_backward(m, tr.acts, d_out);
    double t2 = now_ms();
    if (i >= 0) {
      fwd[i] = t1 - t0;
      bwd[i] = t2 - t1;
      tot[i] = t2 - t0;
    }
  }
  printf("tpdiff_ms_per_step %.2f\n", median(tot, iters));
  printf("forward_ms %.2f\n", median(fwd, iters));
  printf("backward_ms %.2f\n", median(bwd, iters));
  printf("step_gflop %.3f\n", step_flops(&m->shape, B) / 1e9);
  printf("sgemm_gflops %.1f\n", sgemm_gflops());
  printf("threads %d\n", k_num_threads());
  printf("arena_mib %.1f\n", dit_acts_allocated_bytes(tr.acts) / 1048576.0);
  free(x);
  free(target);
  free(d_out);
  free(fwd);
  free(bwd);
  free(tot);
  trainer_destroy(&tr);
  return 0;
}
