/* check_model_timing.c — check_model step 3: the base workload's step time, tokens/s and MFU per
 * pyramid stage on the device, each run's memory plan and configs/large.yaml's (see check_model.c). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/backend.h"
#include "kernels/kernels.h"
#include "model/dit.h"
#include "model/dit_internal.h"
#include "model/pyramid.h"
#include "tests/gpu/check_model.h"
#include "trainer/trainer.h"

/* ---- timing table (measured in step 3, printed last) ---------------------------------------------- */

/* the bf16 run times 22 rows (K = 3 and K = 1, then three stages for each recompute mode and kernel
 * variant); a row past the end is still printed on its own line, and the table says it was left out */
#define MAX_ROWS 32
typedef struct {
  char label[64];
  int clips, tokens_per_clip;
  double ms, tokens_per_s, tflops, mfu;
} timing_row;
static timing_row rows[MAX_ROWS];
static int n_rows;
static char timing_note[512];

void print_timing_table(void) {
  if (n_rows == 0 && !timing_note[0]) return;
  printf(
      "\nbase workload on %s (configs/base.yaml: depth 12, dim 768, heads 12, patch 4, 10 classes, 3x16x64x64), "
      "%s;\n",
      dev->device, bf16 ? "bf16 matmuls and attention forward+backward on tensor cores (fp32 accumulation), the rest fp32" : "fp32");
  printf("ms per optimizer step = median of 5 after 2 warm-up (one microbatch, upload + AdamW + EMA included);\n");
  printf("FLOPs = 6 * params * tokens + 12 * N^2 * D per layer and clip (fwd+bwd); MFU against %.1f TFLOP/s %s\n",
         peak_tflops, bf16 ? "dense bf16" : "fp32");
  if (timing_note[0]) printf("%s", timing_note); /* one line per run not timed */
  if (n_rows == 0) return;
  printf("  %-44s %6s %8s %10s %12s %9s %7s\n", "run", "clips", "tokens", "ms/step", "tokens/s", "TFLOP/s", "MFU");
  for (int i = 0; i < n_rows; i++)
    printf("  %-44s %6d %8d %10.1f %12.0f %9.2f %6.1f%%\n", rows[i].label, rows[i].clips,
           rows[i].clips * rows[i].tokens_per_clip, rows[i].ms, rows[i].tokens_per_s, rows[i].tflops,
           100.0 * rows[i].mfu);
  printf("\n");
}


/* ---- 3: timing of the base workload ---------------------------------------------------------------- */

typedef struct {
  const trainer *tr;
  int stage;
  float *X, *eps, *t;
  int *y;
} fixed_batch;

static int next_fixed(void *ctx, int micro, stage_microbatch *out, char *err, size_t err_size) {
  (void)micro, (void)err, (void)err_size;
  fixed_batch *fb = ctx;
  const int *y = fb->tr->model.shape.classes > 0 ? fb->y : NULL;
  *out = (stage_microbatch){fb->X, fb->eps, fb->t, y, fb->tr->cfg.train_clips_per_microbatch, fb->stage};
  return 0;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void print_plan(const char *label, const trainer *tr) {
  const trainer_memory_plan *p = &tr->plan;
  printf("memory plan %s on %s:", label, dev->name);
  for (int k = 0; k < p->stages; k++)
    printf(" stage %d activations %.2f GiB (%d clips x %d tokens);", k, p->stage_acts_bytes[k] / 1073741824.0,
           p->stage_clips[k], dit_stage_tokens(&tr->model.shape, k));
  printf(" weights/grads/AdamW/EMA %.2f GiB; microbatch %.2f GiB; backend buffers %.2f GiB; total %.2f GiB of %.2f "
         "GiB free\n",
         p->state_bytes / 1073741824.0, p->batch_bytes / 1073741824.0, p->scratch_bytes / 1073741824.0,
         p->total_bytes / 1073741824.0, p->free_bytes / 1073741824.0);
}

/* Times one optimizer step at each stage of a base trainer with `stages` stages; env non-NULL,
 * "TPDIFF_NAME=value", sets that variable for these steps (a kernel variant: TPDIFF_DGELU=epilogue,
 * TPDIFF_GELU=epilogue, TPDIFF_ATTN=flash-scalar), named in the rows without the prefix
 * (", GELU=epilogue"). */
void time_base(int stages, int clips, dit_recompute recompute, const char *env) {
  tpdiff_config cfg;
  config_base(&cfg, stages, clips);
  snprintf(cfg.train_recompute, sizeof cfg.train_recompute, "%s", dit_recompute_name(recompute));
  char with[64] = "", var[32] = "";
  const char *value = NULL;
  if (recompute != DIT_RECOMPUTE_NONE) snprintf(with, sizeof with, ", recompute %s", dit_recompute_name(recompute));
  if (env) {
    const char *eq = strchr(env, '=');
    if (!eq || eq - env >= (long)sizeof var || strncmp(env, "TPDIFF_", 7) != 0) {
      printf("FAIL timing K=%d: time_base env \"%s\" is not TPDIFF_NAME=value\n", stages, env);
      failed++;
      return;
    }
    memcpy(var, env, (size_t)(eq - env));
    value = eq + 1;
    const size_t at = strlen(with);
    snprintf(with + at, sizeof with - at, ", %s", env + 7); /* ", GELU=epilogue" */
  }
  static trainer tr;
  char err[768];
  if (trainer_create(&tr, &cfg, dev, err, sizeof err) != 0) {
    /* a plan that does not fit is refused by trainer_create before anything large is allocated */
    printf("SKIP timing K=%d%s: %s\n", stages, with, err);
    snprintf(timing_note + strlen(timing_note), sizeof timing_note - strlen(timing_note), "K=%d%s not timed: %.200s\n",
             stages, with, err);
    (void)dev->last_error();
    return;
  }
  char label[64];
  snprintf(label, sizeof label, "base K=%d%s", stages, with);
  print_plan(label, &tr);
  poison_trainer(&tr);
  /* what the backend allocates for itself during the steps (scratch that grows on first use and is
   * kept: casts, attention operands, reductions) comes out of the trainer's fixed headroom, not the
   * plan; measured here so the headroom can be judged (buffers kept from an earlier run not counted) */
  size_t free_before = 0, free_after = 0, total_bytes = 0;
  int have_free = dev->synchronize() == 0 && dev->memory_info(&free_before, &total_bytes) == 0;
  size_t n = (size_t)clips * cfg.data_channels * cfg.data_frames * cfg.data_height * cfg.data_width;
  fixed_batch fb = {&tr,
                    0,
                    host_alloc(n * sizeof(float)),
                    host_alloc(n * sizeof(float)),
                    host_alloc((size_t)clips * sizeof(float)),
                    host_alloc((size_t)clips * sizeof(int))};
  for (int b = 0; b < clips; b++) fb.y[b] = b % (cfg.model_classes + 1);
  k_fill_normal(fb.X, n, 9, 1, 0);
  k_fill_normal(fb.eps, n, 9, 2, 0);
  if (env) setenv(var, value, 1);
  for (int k = 0; k < stages; k++) {
    fb.stage = k;
    k_fill_uniform(fb.t, (size_t)clips, 9, 3 + (uint64_t)k, 0);
    for (int b = 0; b < clips; b++) fb.t[b] = (float)pyramid_time(&tr.schedule, k, fb.t[b]);
    double ms[5];
    int ok = 1;
    for (int r = -2; r < 5 && ok; r++) {
      double t0 = now_s();
      step_stats st = trainer_step(&tr, 1, next_fixed, &fb);
      dev->synchronize();
      double dt = now_s() - t0;
      if (st.failed || st.skipped) {
        printf("FAIL timing %s stage %d: %s\n", label, k, st.failed ? st.error : "non-finite loss or gradient");
        failed++;
        ok = 0;
      }
      if (r >= 0) ms[r] = 1000.0 * dt;
    }
    device_ok("timing");
    if (!ok) continue;
    qsort(ms, 5, sizeof ms[0], cmp_double);
    timing_row spare, *row = n_rows < MAX_ROWS ? &rows[n_rows++] : &spare;
    int N = dit_stage_tokens(&tr.model.shape, k);
    if (stages == 1)
      snprintf(row->label, sizeof row->label, "K=1 (vanilla, %d frames)%s", dit_stage_frames(&tr.model.shape, k), with);
    else
      snprintf(row->label, sizeof row->label, "K=%d stage %d (%d frames)%s", stages, k,
               dit_stage_frames(&tr.model.shape, k), with);
    row->clips = clips;
    row->tokens_per_clip = N;
    row->ms = ms[2];
    row->tokens_per_s = (double)clips * N / (ms[2] / 1000.0);
    row->tflops = step_flops(&tr.model, k, clips) / (ms[2] / 1000.0) / 1e12;
    row->mfu = row->tflops / peak_tflops;
    printf("timing %-26s %d clips: %.1f ms/step (min %.1f, max %.1f), %.0f tokens/s, %.2f TFLOP/s, MFU %.1f%%\n",
           row->label, clips, ms[2], ms[0], ms[4], row->tokens_per_s, row->tflops, 100.0 * row->mfu);
    if (row == &spare)
      snprintf(timing_note + strlen(timing_note), sizeof timing_note - strlen(timing_note),
               "%s: left out of the table (more than %d rows; its \"timing\" line above has it)\n", row->label,
               MAX_ROWS);
  }
  if (env) unsetenv(var);
  if (have_free && dev->memory_info(&free_after, &total_bytes) == 0) {
    const double grew = ((double)free_before - (double)free_after) / 1048576.0;
    const double planned = tr.plan.scratch_bytes / 1048576.0;
    if (strcmp(dev->name, "cpu") == 0) {
      /* host RAM: other processes move it; nothing to compare */
      printf("memory %s: free host memory fell by %.1f MiB during the steps\n", label, grew);
    } else {
      /* the plan must hold every buffer the backend grows (backend.h scratch_bytes: NULL asks what
       * they hold now; this is the largest shape check_model runs, so earlier runs' buffers count
       * too). The free memory also falls by what the plan cannot know (kernels loaded on first use,
       * library internals), for which the trainer keeps 512 MiB beside the plan: printed, not tested. */
      const double held = dev->scratch_bytes(NULL) / 1048576.0;
      int ok = held <= planned;
      printf("%s memory %s: the backend's own buffers hold %.1f MiB after the steps, planned %.1f MiB; free memory "
             "fell by %.1f MiB\n",
             ok ? "PASS" : "FAIL", label, held, planned, grew);
      ok ? passed++ : failed++;
    }
  }
  (void)dev->last_error();
  free(fb.X);
  free(fb.eps);
  free(fb.t);
  free(fb.y);
  trainer_destroy(&tr);
}

/* configs/large.yaml (the 64-GPU workload), built in code. */
static void config_large(tpdiff_config *c) {
  config_base_fields(c, "large");
  c->model_depth = 28, c->model_dim = 1152, c->model_heads = 16, c->model_patch = 2, c->model_classes = 101;
  c->data_channels = 4, c->data_frames = 32, c->data_height = 32, c->data_width = 32;
  c->pyramid_stages = 3;
  snprintf(c->pyramid_schedule, sizeof c->pyramid_schedule, "balanced");
  c->train_clips_per_microbatch = 1;
  c->train_ema = 0.9999;
}

/* The memory plan of configs/large.yaml on this device under each recompute mode (trainer_plan: only
 * the weights and gradients are allocated), against an 80 GiB GPU. */
void plan_large(void) {
  tpdiff_config cfg;
  config_large(&cfg);
  dit_shape s = shape_of(&cfg);
  dit_model m;
  char err[256];
  if (dit_create(&m, &s, dev, err, sizeof err) != 0) {
    printf("# memory plan large: not computed (%s)\n", err);
    (void)dev->last_error();
    return;
  }
  const double gib = 1073741824.0;
  for (int mode = 0; mode < 3; mode++) {
    snprintf(cfg.train_recompute, sizeof cfg.train_recompute, "%s", dit_recompute_name((dit_recompute)mode));
    trainer_memory_plan p;
    trainer_plan(&cfg, &m, &p);
    printf("memory plan large (configs/large.yaml, %zu parameters) on %s, recompute %-6s:", m.num_floats, dev->name,
           cfg.train_recompute);
    for (int k = 0; k < p.stages; k++)
      printf(" stage %d %.2f GiB (%d x %d tokens);", k, p.stage_acts_bytes[k] / gib, p.stage_clips[k],
             dit_stage_tokens(&s, k));
    printf(" state %.2f GiB; backend buffers %.2f GiB; total %.2f GiB: %s 80 GiB\n", p.state_bytes / gib,
           p.scratch_bytes / gib, p.total_bytes / gib,
           p.total_bytes + ((size_t)1 << 30) <= ((size_t)80 << 30) ? "fits" : "does not fit");
  }
  dit_destroy(&m);
}
