/* check_model.c — the whole DiT and the training step on the CUDA backend against the CPU backend
 * (the executable specification), then a timing table of the base workload on the GPU.
 *
 * A plain C program like check_kernels.c (the backend is dlopen'ed), linking only kernels/cpu, the
 * loader, model/ and the trainer's step; configs are built in code (no libyaml, HDF5, giflib, libpng).
 *
 * What it checks, in this order:
 *   1. tiny shape (depth 2, dim 64, heads 4, patch 2, C3 T8 16x16, K = 3, 5 classes, 3 clips): the
 *      same random weights (dit_init_random, drawn on the host and uploaded) and the same inputs on
 *      both backends; per stage: the forward output, the loss, and every parameter gradient;
 *   1b. train.recompute on the device: cheap and blocks give none's outputs and accumulated
 *      gradients bit for bit over microbatches at stages 2, 0, 1, 2 (both fp32 and bf16);
 *   2. 50 training steps of the tiny shape (two microbatches of different stages per step, AdamW
 *      with weight decay, gradient clipping, EMA) from the same microbatches: per-step loss, and the
 *      final weights and EMA; with --bf16 instead: 12 bf16 training steps with the weights' bf16
 *      copy (master_weights.cu) against per-call casts (TPDIFF_BF16_WEIGHTS=cast), bit for bit;
 *   3. the base workload (configs/base.yaml, built in code): ms per optimizer step per pyramid stage
 *      and for K = 1 (and with --bf16 for K = 3 under recompute cheap and blocks, and with the kernel
 *      variants: the MLP's GELU backward in the matmul's epilogue, TPDIFF_DGELU=epilogue; its GELU forward in
 *      the matmul's epilogue, TPDIFF_GELU=epilogue; the flash attention's scalar fragment loads,
 *      TPDIFF_ATTN=flash-scalar, and its forward with two m-tiles per warp, flash-wide), tokens/s and
 *      MFU,
 *      on the GPU only, each with its memory plan, then configs/large.yaml's memory plan per recompute mode;
 *      measured before step 4 so that a slow CPU reference can never cost the table, printed last;
 *   4. a base-like shape (depth 12, dim 768, heads 12, patch 4, C3 T16 64x64, K = 3, 2 clips) as in
 *      step 1. Its CPU reference is the slow part (about 16 TFLOP); stages run cheapest first, and a
 *      stage whose projected time (from a CPU sgemm probe, then from the stages already run) would
 *      end past --deadline-s is skipped with a SKIP line, so the program ends in time on any CPU.
 *
 * Tolerances (normwise relative: err = max|gpu - cpu| / max|cpu| over a tensor; NaN or Inf never
 * passes): 1e-4 for the forward output, the loss and every gradient tensor. Both sides compute in
 * fp32 but sum in different orders (cuBLASLt tiles and split-K against OpenBLAS, warp reductions
 * against thread partials): check_kernels bounds each op at 1e-5 (most ops at 1e-6), and a depth-L
 * network chains about 15 L of them, whose rounding differences add up rather than multiply for
 * this well-conditioned init; 1e-4 leaves that an order of magnitude, while a real defect (a wrong
 * index, a dropped term, a stale buffer) shows as 1e-2 or more. It is also the limit of the
 * PyTorch parity tests (tests/ref/parity.sh). Training: per-step loss 1e-4 (the same argument,
 * and the loss is a mean over many elements); final weights and EMA 1e-3 in the L2 sense,
 * ||w_gpu - w_cpu|| / ||w_cpu|| over the whole flat vector, because AdamW's first update of a
 * weight is about ±lr whatever the gradient's size (m/sqrt(v) = sign g at step 1), so a weight
 * whose gradient is within rounding of zero may legitimately move the other way on the GPU: 2 lr
 * in one element, which the max norm would call a failure and the L2 norm weighs by its share.
 * The max-norm figure is printed beside it. Device buffers are poisoned (NaN) before use, so an
 * element the GPU forgets to write can never pass.
 * --bf16 (Linear operands rounded to bf16, u = 2^-9 ~ 2e-3): each matmul is off by about 2u normwise,
 * the tiny forward chains 9 whose errors add: 3e-2 for output, loss and loss gradient; the backward
 * doubles the chain and some gradients are sums with cancellation (biases, adaLN): 1e-1 per tensor.
 * A defect still shows as ~1. Steps 2 and 4 are skipped in bf16 (AdamW's sign-like first steps make
 * a bf16 trajectory diverge from the fp32 one legitimately).
 *
 *   check_model [--lib PATH] [--cpu] [--quick] [--plan-only] [--no-timing] [--no-base] [--steps N]
 *               [--deadline-s S] [--peak-tflops P] [--base-clips B] [--bf16]
 *     --cpu            the CPU backend plays the GPU (tests this program where there is no GPU)
 *     --quick          steps 1 and 2 only
 *     --plan-only      only configs/large.yaml's memory plan under each train.recompute mode
 *     --no-timing      skip step 3;  --no-base: skip step 4
 *     --steps N        training steps in step 2 (default 50)
 *     --deadline-s S   wall time after which step 4 starts no further stage (default 150)
 *     --peak-tflops P  fp32 peak for the MFU column (default 67: H100/H200 SXM fp32 without tensor
 *                      cores, which cuBLASLt fp32 without TF32 cannot exceed)
 *     --base-clips B   clips per microbatch of the timing (default 4, as configs/base.yaml)
 *     --bf16           set_precision(TPDIFF_BF16); MFU against 989 TFLOP/s (H100 SXM/H200 dense bf16)
 *
 * Output: PASS/FAIL/SKIP lines, then the timing table, then `N passed, N failed` last. Exit 0 when
 * all passed, 1 when any failed, 3 with one line when no GPU backend could be loaded. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/backend.h"
#include "kernels/kernels.h"
#include "model/dit.h"
#include "model/dit_internal.h"
#include "model/pyramid.h"
#include "trainer/trainer.h"
#include "tests/gpu/check_model.h"

const tpdiff_backend *dev; /* the backend under test */
const tpdiff_backend *ref; /* the CPU backend */
int passed, failed;
double peak_tflops = -1.0; /* --peak-tflops; else 67 (fp32) or 989 (bf16) */
int bf16;                                 /* --bf16 */
static double tol_out = 1e-4, tol_grad = 1e-4; /* forward/loss and gradient limits (--bf16 widens them) */

double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void count(int ok) {
  if (ok)
    passed++;
  else
    failed++;
}

/* A failure of the device itself (allocation, copy, a launch error): nothing after it can be
 * trusted, so report and stop. */
void device_fail(const char *what) {
  const char *e = dev->last_error();
  printf("FAIL %s: %s\n", what, e && e[0] ? e : "(no error recorded)");
  printf("stopping: the backend cannot continue after this error\n");
  failed++;
  finish();
}

/* Synchronizes and reads the device's error state; stops on an error. */
void device_ok(const char *what) {
  int rc = dev->synchronize();
  const char *e = dev->last_error();
  if (rc != 0 || (e && e[0])) {
    printf("FAIL %s: backend error: %s\n", what, e && e[0] ? e : "synchronize failed");
    printf("stopping: the backend cannot continue after this error\n");
    failed++;
    finish();
  }
}

void *host_alloc(size_t bytes) {
  void *p = malloc(bytes ? bytes : 1);
  if (!p) {
    printf("FAIL host allocation of %zu bytes\n", bytes);
    failed++;
    finish();
  }
  return p;
}

/* Every float of a device buffer becomes NaN: 0 * NaN is NaN, so zero-fill then scale. */
void poison(float *d, size_t n) {
  if (!d || n == 0) return;
  dev->fill_zero(d, n * sizeof(float));
  dev->scale(d, NAN, n);
}

/* Normwise relative error max|got - want| / max|want|; non-finite `got` gives +Inf. */
double max_rel_err(const float *got, const float *want, size_t n) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < n; i++) {
    double g = got[i], w = want[i];
    if (!isfinite(g) || !isfinite(w)) return INFINITY;
    double d = fabs(g - w);
    if (d > num) num = d;
    if (fabs(w) > den) den = fabs(w);
  }
  if (num == 0.0) return 0.0;
  return num / (den > 0.0 ? den : 1.0);
}

/* ||got - want||_2 / ||want||_2; non-finite gives +Inf. */
double l2_rel_err(const float *got, const float *want, size_t n) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < n; i++) {
    double g = got[i], w = want[i];
    if (!isfinite(g) || !isfinite(w)) return INFINITY;
    num += (g - w) * (g - w);
    den += w * w;
  }
  if (num == 0.0) return 0.0;
  return sqrt(num) / (den > 0.0 ? sqrt(den) : 1.0);
}

double scalar_rel_err(double got, double want) {
  if (!isfinite(got) || !isfinite(want)) return INFINITY;
  if (got == want) return 0.0;
  return fabs(got - want) / (fabs(want) > 0.0 ? fabs(want) : 1.0);
}

void finish(void) {
  print_timing_table();
  printf("%d passed, %d failed\n", passed, failed);
  fflush(stdout);
  exit(failed ? 1 : 0);
}
/* ---- configs built in code (no YAML parser in this program) ------------------------------------- */

void config_base_fields(tpdiff_config *c, const char *name) {
  memset(c, 0, sizeof *c);
  snprintf(c->source, sizeof c->source, "%s (check_model)", name);
  snprintf(c->diffusion_form, sizeof c->diffusion_form, "rf");
  snprintf(c->pyramid_schedule, sizeof c->pyramid_schedule, "sync");
  snprintf(c->pyramid_align, sizeof c->pyramid_align, "microbatch");
  snprintf(c->train_device, sizeof c->train_device, "cuda");
  /* the backend's mode (set once in main): the memory plan counts bf16's weight copy */
  snprintf(c->train_precision, sizeof c->train_precision, "%s", bf16 ? "bf16" : "fp32");
  snprintf(c->train_recompute, sizeof c->train_recompute, "none");
  c->train_microbatches = 1;
  c->train_seed = 1;
}

/* configs/tiny.yaml's model as a 3-stage class-conditional run, with weight decay and warm-up so
 * that every part of the optimizer step is exercised. */
void config_tiny(tpdiff_config *c) {
  config_base_fields(c, "tiny");
  c->model_depth = 2, c->model_dim = 64, c->model_heads = 4, c->model_patch = 2, c->model_classes = 5;
  c->data_channels = 3, c->data_frames = 8, c->data_height = 16, c->data_width = 16;
  c->pyramid_stages = 3;
  c->train_clips_per_microbatch = 4;
  c->train_microbatches = 2;
  c->train_lr = 1e-3, c->train_warmup = 5, c->train_weight_decay = 0.01, c->train_grad_clip = 1.0;
  c->train_ema = 0.99;
}

/* configs/base.yaml. */
void config_base(tpdiff_config *c, int stages, int clips) {
  config_base_fields(c, "base");
  c->model_depth = 12, c->model_dim = 768, c->model_heads = 12, c->model_patch = 4, c->model_classes = 10;
  c->data_channels = 3, c->data_frames = 16, c->data_height = 64, c->data_width = 64;
  c->pyramid_stages = stages;
  c->train_clips_per_microbatch = clips;
  c->train_lr = 1e-4, c->train_warmup = 0, c->train_weight_decay = 0.0, c->train_grad_clip = 1.0;
  c->train_ema = 0.9999;
}

dit_shape shape_of(const tpdiff_config *c) { return trainer_shape_from_config(c); }

/* ---- 1 and 4: forward, loss and every gradient, per stage ----------------------------------------- */

typedef struct {
  dit_model m;
  dit_acts *a;
} model_on;

static void model_create(model_on *mo, const tpdiff_backend *be, const dit_shape *s, int clips, uint64_t seed,
                         dit_recompute recompute, const char *what) {
  char err[512];
  int max_clips[PYRAMID_MAX_STAGES];
  for (int k = 0; k < s->stages; k++) max_clips[k] = clips;
  if (dit_create(&mo->m, s, be, err, sizeof err) != 0) {
    printf("FAIL %s: dit_create on %s: %s\n", what, be->name, err);
    failed++;
    finish();
  }
  if (dit_init_random(&mo->m, seed) != 0) {
    printf("FAIL %s: dit_init_random on %s: %s\n", what, be->name, be->last_error());
    failed++;
    finish();
  }
  mo->a = dit_acts_create(&mo->m, max_clips, recompute, err, sizeof err);
  if (!mo->a) {
    printf("FAIL %s: dit_acts_create on %s: %s\n", what, be->name, err);
    failed++;
    finish();
  }
}

static void model_destroy(model_on *mo) {
  dit_acts_destroy(mo->a);
  dit_destroy(&mo->m);
}

/* Host inputs of one stage-k microbatch: x, target, t inside the stage window, labels with the null
 * class among them. */
typedef struct {
  float *x, *target, *t;
  int *y;
  size_t n;
} host_inputs;

static host_inputs make_inputs(const dit_shape *s, const pyramid_schedule *p, int stage, int B, uint64_t seed) {
  host_inputs in;
  in.n = (size_t)B * s->channels * dit_stage_frames(s, stage) * s->height * s->width;
  in.x = host_alloc(in.n * sizeof(float));
  in.target = host_alloc(in.n * sizeof(float));
  in.t = host_alloc((size_t)B * sizeof(float));
  in.y = host_alloc((size_t)B * sizeof(int));
  k_fill_normal(in.x, in.n, seed, 100 + (uint64_t)stage, 0);
  k_fill_normal(in.target, in.n, seed, 200 + (uint64_t)stage, 0);
  k_fill_uniform(in.t, (size_t)B, seed, 300 + (uint64_t)stage, 0);
  for (int b = 0; b < B; b++) in.t[b] = (float)pyramid_time(p, stage, in.t[b]);
  for (int b = 0; b < B; b++) in.y[b] = s->classes > 0 ? b % (s->classes + 1) : 0;
  return in;
}

static void free_inputs(host_inputs *in) {
  free(in->x);
  free(in->target);
  free(in->t);
  free(in->y);
}

/* FLOPs of forward + backward of B clips at stage k (the MFU convention of the timing table). */
double step_flops(const dit_model *m, int stage, int B) {
  const dit_shape *s = &m->shape;
  double N = dit_stage_tokens(s, stage);
  return 6.0 * (double)m->num_floats * N * B + 12.0 * N * N * s->dim * s->depth * B;
}

/* Compares forward output, loss and every gradient tensor of one stage (a device failure stops the
 * program). */
static void check_stage(const char *label, model_on *cpu, model_on *gpu, const pyramid_schedule *p, int stage, int B,
                        uint64_t seed) {
  const dit_shape *s = &cpu->m.shape;
  char what[160];
  host_inputs in = make_inputs(s, p, stage, B, seed);
  const size_t n = in.n, nf = cpu->m.num_floats;
  const int *labels = s->classes > 0 ? in.y : NULL;
  double t0 = now_s();

  /* CPU: its backend memory is host memory */
  float *d_out = host_alloc(n * sizeof(float));
  ref->fill_zero(cpu->m.grads, nf * sizeof(float));
  const float *out_cpu = dit_forward(&cpu->m, cpu->a, in.x, in.t, labels, stage, B);
  double loss_cpu = k_mse_loss(d_out, out_cpu, in.target, n, 1.0f);
  dit_backward(&cpu->m, cpu->a, d_out);
  double cpu_s = now_s() - t0;

  /* device: poisoned arena, uploaded inputs, the CPU's d_out (so the backward sees the same seed) */
  t0 = now_s();
  poison(gpu->a->base, gpu->a->capacity_floats);
  float *x_dev = dev->alloc(n * sizeof(float)), *target_dev = dev->alloc(n * sizeof(float));
  float *dloss_dev = dev->alloc(n * sizeof(float)), *dout_dev = dev->alloc(n * sizeof(float));
  if (!x_dev || !target_dev || !dloss_dev || !dout_dev) device_fail("check_model: device buffers");
  poison(dloss_dev, n);
  if (dev->copy_to_device(x_dev, in.x, n * sizeof(float)) != 0 ||
      dev->copy_to_device(target_dev, in.target, n * sizeof(float)) != 0 ||
      dev->copy_to_device(dout_dev, d_out, n * sizeof(float)) != 0)
    device_fail("check_model: upload");
  dev->fill_zero(gpu->m.grads, nf * sizeof(float));
  const float *out_dev = dit_forward(&gpu->m, gpu->a, x_dev, in.t, labels, stage, B);
  double loss_dev = dev->mse_loss(dloss_dev, out_dev, target_dev, n, 1.0f);
  dit_backward(&gpu->m, gpu->a, dout_dev);
  snprintf(what, sizeof what, "%s stage %d forward/backward", label, stage);
  device_ok(what);
  double dev_s = now_s() - t0;

  float *out_got = host_alloc(n * sizeof(float)), *dloss_got = host_alloc(n * sizeof(float));
  float *g_cpu = host_alloc(nf * sizeof(float)), *g_dev = host_alloc(nf * sizeof(float));
  if (dev->copy_to_host(out_got, out_dev, n * sizeof(float)) != 0 ||
      dev->copy_to_host(dloss_got, dloss_dev, n * sizeof(float)) != 0 || dit_grads_to_host(&gpu->m, g_dev) != 0)
    device_fail("check_model: download");
  dit_grads_to_host(&cpu->m, g_cpu);

  double err = max_rel_err(out_got, out_cpu, n);
  int ok = err <= tol_out;
  printf("%s forward %s stage %d (%d clips x %d tokens) err=%.3g limit=%.0e\n", ok ? "PASS" : "FAIL", label, stage, B,
         dit_stage_tokens(s, stage), err, tol_out);
  count(ok);
  err = scalar_rel_err(loss_dev, loss_cpu);
  ok = err <= tol_out;
  printf("%s loss %s stage %d err=%.3g limit=%.0e gpu=%.9g cpu=%.9g\n", ok ? "PASS" : "FAIL", label, stage, err, tol_out,
         loss_dev, loss_cpu);
  count(ok);
  err = max_rel_err(dloss_got, d_out, n);
  ok = err <= tol_out;
  printf("%s loss-gradient %s stage %d err=%.3g limit=%.0e\n", ok ? "PASS" : "FAIL", label, stage, err, tol_out);
  count(ok);

  /* every gradient tensor; one summary line, plus one line per failing tensor */
  double worst = 0.0;
  const char *worst_name = "-";
  int bad = 0, zero_tensors = 0;
  for (int i = 0; i < cpu->m.num_params; i++) {
    const dit_param *prm = &cpu->m.params[i];
    double e = max_rel_err(g_dev + prm->offset, g_cpu + prm->offset, prm->numel);
    int all_zero = 1;
    for (size_t j = 0; j < prm->numel && all_zero; j++) all_zero = g_cpu[prm->offset + j] == 0.0f;
    zero_tensors += all_zero;
    if (!(e <= tol_grad)) {
      printf("FAIL gradient %s stage %d %s [%zu] err=%.3g limit=%.0e\n", label, stage, prm->name, prm->numel, e,
             tol_grad);
      bad++;
    }
    if (!(e <= worst)) {
      worst = e;
      worst_name = prm->name;
    }
  }
  /* the alignment gaps between tensors must stay exactly zero */
  double whole = max_rel_err(g_dev, g_cpu, nf);
  if (bad || !(whole <= tol_grad)) {
    if (!bad)
      printf("FAIL gradients %s stage %d: whole buffer (alignment gaps included) err=%.3g\n", label, stage, whole);
    failed += bad ? bad : 1;
  } else {
    printf(
        "PASS gradients %s stage %d: %d tensors (%d all-zero on the CPU), worst %s err=%.3g limit=%.0e, "
        "whole buffer err=%.3g (cpu %.1f s, %s %.2f s)\n",
        label, stage, cpu->m.num_params, zero_tensors, worst_name, worst, tol_grad, whole, cpu_s, dev->name, dev_s);
    passed++;
  }
  dev->free(x_dev);
  dev->free(target_dev);
  dev->free(dloss_dev);
  dev->free(dout_dev);
  free(d_out);
  free(out_got);
  free(dloss_got);
  free(g_cpu);
  free(g_dev);
  free_inputs(&in);
}

/* The same random weights must arrive bit for bit on both backends. */
static void check_weights_identical(const char *label, model_on *cpu, model_on *gpu) {
  size_t nf = cpu->m.num_floats;
  float *a = host_alloc(nf * sizeof(float)), *b = host_alloc(nf * sizeof(float));
  dit_weights_to_host(&cpu->m, a);
  if (dit_weights_to_host(&gpu->m, b) != 0) device_fail("check_model: weights download");
  int ok = memcmp(a, b, nf * sizeof(float)) == 0;
  printf("%s init %s: %zu weights %s\n", ok ? "PASS" : "FAIL", label, nf,
         ok ? "identical on both backends" : "differ between the backends");
  count(ok);
  free(a);
  free(b);
}

/* GFLOP/s of the CPU's sgemm on a transformer-sized product (the first projection of step 4). */
static double cpu_sgemm_gflops(void) {
  const int M = 4096, K = 768, N = 768;
  float *in = host_alloc((size_t)M * K * sizeof(float)), *w = host_alloc((size_t)N * K * sizeof(float));
  float *out = host_alloc((size_t)M * N * sizeof(float));
  k_fill_normal(in, (size_t)M * K, 5, 1, 0);
  k_fill_normal(w, (size_t)N * K, 5, 2, 0);
  double best = 1e30;
  for (int r = 0; r < 3; r++) {
    double t0 = now_s();
    k_linear_forward(out, in, w, NULL, M, K, N);
    double dt = now_s() - t0;
    best = dt < best ? dt : best;
  }
  free(in);
  free(w);
  free(out);
  return 2.0 * M * K * N / best / 1e9;
}

/* Runs check_stage for every stage of cfg's shape; with deadline_at > 0, a stage projected to end
 * after it is skipped (first projection: the sgemm rate at a third of its efficiency, for attention
 * and the element-wise ops; then the seconds per FLOP of the stages already run). */
static void check_shape(const char *label, const tpdiff_config *cfg, int B, double deadline_at) {
  dit_shape s = shape_of(cfg);
  pyramid_schedule p;
  char err[256];
  if (trainer_schedule_from_config(cfg, &p, err, sizeof err) != 0) {
    printf("FAIL %s: schedule: %s\n", label, err);
    failed++;
    return;
  }
  model_on cpu, gpu;
  model_create(&cpu, ref, &s, B, 20250101, DIT_RECOMPUTE_NONE, label);
  model_create(&gpu, dev, &s, B, 20250101, DIT_RECOMPUTE_NONE, label);
  check_weights_identical(label, &cpu, &gpu);
  double spent_per_flop = 0.0;
  if (deadline_at > 0.0) {
    double gflops = cpu_sgemm_gflops();
    spent_per_flop = 3.0 / (gflops * 1e9);
    printf("# %s: CPU sgemm %.0f GFLOP/s; %.0f s left before the deadline\n", label, gflops, deadline_at - now_s());
  }
  for (int k = 0; k < s.stages; k++) {
    double flops = step_flops(&cpu.m, k, B);
    if (deadline_at > 0.0) {
      /* the CPU forward+backward scales with its FLOPs: skip what would end past the deadline */
      double projected = spent_per_flop * flops, left = deadline_at - now_s();
      if (projected > left) {
        printf(
            "SKIP %s stage %d: the CPU reference would take about %.0f s, %.0f s are left before the deadline "
            "(--deadline-s)\n",
            label, k, projected, left);
        continue;
      }
    }
    double t0 = now_s();
    check_stage(label, &cpu, &gpu, &p, k, B, 77 + (uint64_t)k);
    spent_per_flop = (now_s() - t0) / flops;
  }
  model_destroy(&cpu);
  model_destroy(&gpu);
}

/* ---- 1b: train.recompute on the device: the same bits from less memory ----------------------------- */

/* Forward and backward of microbatches at stages 2, 0, 1, 2 (the arena switching layout between them)
 * into one gradient buffer, under each recompute mode, on the device under test: the outputs and the
 * gradients of CHEAP and BLOCKS must equal NONE's bit for bit (the same ops on the same inputs; the
 * device's kernels are deterministic). */
static void check_recompute(const char *label, const tpdiff_config *cfg, int B) {
  dit_shape s = shape_of(cfg);
  pyramid_schedule p;
  char err[256];
  if (trainer_schedule_from_config(cfg, &p, err, sizeof err) != 0) {
    printf("FAIL %s recompute: schedule: %s\n", label, err);
    failed++;
    return;
  }
  static const int order[] = {2, 0, 1, 2};
  const int count_mb = (int)(sizeof order / sizeof order[0]);
  float *outs[3] = {0}, *grads[3] = {0};
  size_t total = 0, nf = 0, arena[3] = {0};
  for (int mode = 0; mode < 3; mode++) {
    model_on mo;
    model_create(&mo, dev, &s, B, 20250101, (dit_recompute)mode, label);
    nf = mo.m.num_floats;
    arena[mode] = dit_acts_allocated_bytes(mo.a);
    poison(mo.a->base, mo.a->capacity_floats);
    dev->fill_zero(mo.m.grads, nf * sizeof(float));
    total = 0;
    for (int i = 0; i < count_mb; i++)
      total += (size_t)B * s.channels * dit_stage_frames(&s, order[i] % s.stages) * s.height * s.width;
    outs[mode] = host_alloc(total * sizeof(float));
    size_t at = 0;
    for (int i = 0; i < count_mb; i++) {
      int stage = order[i] % s.stages;
      host_inputs in = make_inputs(&s, &p, stage, B, 500 + (uint64_t)i);
      float *x_dev = dev->alloc(in.n * sizeof(float)), *dout_dev = dev->alloc(in.n * sizeof(float));
      if (!x_dev || !dout_dev) device_fail("check_recompute: device buffers");
      if (dev->copy_to_device(x_dev, in.x, in.n * sizeof(float)) != 0 ||
          dev->copy_to_device(dout_dev, in.target, in.n * sizeof(float)) != 0)
        device_fail("check_recompute: upload");
      const float *out = dit_forward(&mo.m, mo.a, x_dev, in.t, s.classes > 0 ? in.y : NULL, stage, B);
      if (dev->copy_to_host(outs[mode] + at, out, in.n * sizeof(float)) != 0) device_fail("check_recompute: download");
      dit_backward(&mo.m, mo.a, dout_dev); /* the target as d_out: any fixed tensor will do */
      device_ok("check_recompute");
      at += in.n;
      dev->free(x_dev);
      dev->free(dout_dev);
      free_inputs(&in);
    }
    grads[mode] = host_alloc(nf * sizeof(float));
    if (dit_grads_to_host(&mo.m, grads[mode]) != 0) device_fail("check_recompute: gradients");
    model_destroy(&mo);
  }
  for (int mode = 1; mode < 3; mode++) {
    size_t d_out = 0, d_grad = 0, nonfinite = 0;
    for (size_t i = 0; i < total; i++) {
      d_out += memcmp(&outs[mode][i], &outs[0][i], sizeof(float)) != 0;
      nonfinite += !isfinite(outs[0][i]);
    }
    for (size_t i = 0; i < nf; i++) {
      d_grad += memcmp(&grads[mode][i], &grads[0][i], sizeof(float)) != 0;
      nonfinite += !isfinite(grads[0][i]);
    }
    int ok = d_out == 0 && d_grad == 0 && nonfinite == 0;
    printf("%s recompute %s vs none %s (%d microbatches, stages 2 0 1 2): outputs %zu of %zu differ, gradients %zu "
           "of %zu differ, %zu non-finite; arena %.2f MiB vs %.2f MiB\n",
           ok ? "PASS" : "FAIL", dit_recompute_name((dit_recompute)mode), label, count_mb, d_out, total, d_grad, nf,
           nonfinite, arena[mode] / 1048576.0, arena[0] / 1048576.0);
    count(ok);
  }
  for (int mode = 0; mode < 3; mode++) {
    free(outs[mode]);
    free(grads[mode]);
  }
}

/* ---- main ------------------------------------------------------------------------------------------ */

int main(int argc, char **argv) {
  const char *lib = NULL;
  int use_cpu = 0, quick = 0, timing = 1, base = 1, steps = 50, base_clips = 4, plan_only = 0;
  double deadline_s = 150.0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--lib") && i + 1 < argc)
      lib = argv[++i];
    else if (!strcmp(argv[i], "--cpu"))
      use_cpu = 1;
    else if (!strcmp(argv[i], "--quick"))
      quick = 1;
    else if (!strcmp(argv[i], "--plan-only"))
      plan_only = 1;
    else if (!strcmp(argv[i], "--no-timing"))
      timing = 0;
    else if (!strcmp(argv[i], "--no-base"))
      base = 0;
    else if (!strcmp(argv[i], "--steps") && i + 1 < argc)
      steps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--deadline-s") && i + 1 < argc)
      deadline_s = atof(argv[++i]);
    else if (!strcmp(argv[i], "--peak-tflops") && i + 1 < argc)
      peak_tflops = atof(argv[++i]);
    else if (!strcmp(argv[i], "--base-clips") && i + 1 < argc)
      base_clips = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--bf16"))
      bf16 = 1, tol_out = 3e-2, tol_grad = 1e-1;
    else {
      fprintf(stderr,
              "usage: %s [--lib PATH] [--cpu] [--quick] [--plan-only] [--no-timing] [--no-base] [--steps N] [--deadline-s S] "
              "[--peak-tflops P] [--base-clips B] [--bf16]\n",
              argv[0]);
      return 2;
    }
  }
  if (peak_tflops == -1.0) peak_tflops = bf16 ? 989.0 : 67.0;
  if (steps < 1 || base_clips < 1 || !(peak_tflops > 0.0)) {
    fprintf(stderr, "check_model: --steps and --base-clips must be >= 1, --peak-tflops > 0\n");
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  ref = tpdiff_cpu_backend();
  if (use_cpu) {
    dev = tpdiff_cpu_backend();
  } else {
    char err[1024];
    dev = tpdiff_load_cuda_backend(lib, err, sizeof err);
    if (!dev) {
      printf("check_model: no GPU backend: %s\n", err);
      return 3;
    }
  }
  char perr[512] = "";
  if (bf16 && dev->set_precision(TPDIFF_BF16, perr, sizeof perr) != 0) {
    printf("check_model: --bf16: %s\n", perr);
    return 3;
  }
  printf("check_model: backend %s on %s (%s); CPU reference with %d threads\n", dev->name, dev->device,
         bf16 ? "bf16" : "fp32", k_num_threads());
  double t0 = now_s();
  if (plan_only) {
    plan_large();
    finish();
  }

  tpdiff_config tiny;
  config_tiny(&tiny);
  check_shape("tiny", &tiny, 3, 0.0);
  check_recompute("tiny", &tiny, 3);
  printf("# tiny gradients: %.1f s\n", now_s() - t0);
  if (!bf16) check_training(steps);
  else check_bf16_weights_copy(steps < 12 ? steps : 12);
  printf("# training: %.1f s\n", now_s() - t0);
  if (!quick && timing) {
    time_base(3, base_clips, DIT_RECOMPUTE_NONE, NULL);
    time_base(1, base_clips, DIT_RECOMPUTE_NONE, NULL);
    /* the recompute modes and the kernel variants in the bf16 run only: a few seconds there, about
     * 30 s each in fp32 (where the variants do not exist), which the fp32 run's base-like check needs
     * more */
    if (bf16) {
      time_base(3, base_clips, DIT_RECOMPUTE_CHEAP, NULL);
      time_base(3, base_clips, DIT_RECOMPUTE_BLOCKS, NULL);
      time_base(3, base_clips, DIT_RECOMPUTE_NONE, "TPDIFF_DGELU=epilogue");
      time_base(3, base_clips, DIT_RECOMPUTE_NONE, "TPDIFF_GELU=epilogue");
      time_base(3, base_clips, DIT_RECOMPUTE_NONE, "TPDIFF_ATTN=flash-scalar");
      time_base(3, base_clips, DIT_RECOMPUTE_NONE, "TPDIFF_ATTN=flash-wide");
    }
    plan_large();
    printf("# timing: %.1f s\n", now_s() - t0);
  }
  if (!quick && base && !bf16) {
    tpdiff_config big;
    config_base(&big, 3, 2);
    check_shape("base-like", &big, 2, t0 + deadline_s);
    printf("# base-like gradients: %.1f s\n", now_s() - t0);
  }
  finish();
  return 0;
}
