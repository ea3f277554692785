/* test_recompute.c — train.recompute (model/dit.h dit_recompute): CHEAP and BLOCKS must give the
 * forward output and every parameter gradient of NONE bit for bit, at every pyramid stage, with the
 * arena switching stage and clip count between microbatches and gradients accumulating over them;
 * and they must need the memory the layout promises (CHEAP: 7 of a block's 18 token rows shared by
 * all blocks; BLOCKS: a block's input and adaLN rows per block plus one block's buffers). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/backend.h"
#include "kernels/kernels.h"
#include "model/dit.h"
#include "tests/unit/test_report.h"

static const dit_shape SHAPE = {.depth = 3, .dim = 32, .heads = 2, .patch = 2, .classes = 5, .channels = 3,
                                .frames = 8, .height = 8, .width = 8, .stages = 3};
static const int MAX_CLIPS[3] = {4, 2, 1};

/* The outputs of one run: every microbatch's prediction, then the accumulated gradients. */
typedef struct {
  float *out;   /* concatenated predictions */
  size_t out_n;
  float *grads; /* [num_floats] */
} run_result;

/* Forward and backward of the microbatches (stage, clips) in `order` into one gradient buffer. */
static int run(dit_recompute mode, const int (*order)[2], int count, run_result *r, char *err, size_t err_size) {
  dit_model m;
  memset(r, 0, sizeof *r);
  if (dit_create(&m, &SHAPE, tpdiff_cpu_backend(), err, err_size) != 0) return -1;
  if (dit_init_random(&m, 11) != 0) {
    snprintf(err, err_size, "dit_init_random failed");
    dit_destroy(&m);
    return -1;
  }
  dit_acts *a = dit_acts_create(&m, MAX_CLIPS, mode, err, err_size);
  if (!a) {
    dit_destroy(&m);
    return -1;
  }
  size_t clip = (size_t)SHAPE.channels * SHAPE.frames * SHAPE.height * SHAPE.width;
  r->out = malloc(sizeof(float) * clip * 4 * (size_t)count);
  float *x = malloc(sizeof(float) * clip * 4), *d_out = malloc(sizeof(float) * clip * 4);
  for (int i = 0; i < count; i++) {
    int stage = order[i][0], B = order[i][1];
    size_t n = (size_t)B * SHAPE.channels * dit_stage_frames(&SHAPE, stage) * SHAPE.height * SHAPE.width;
    float t[4] = {0.13f, 0.52f, 0.77f, 0.95f};
    int y[4] = {0, 4, 2, 5}; /* 5 = the null class */
    k_fill_normal(x, n, 21, (uint64_t)i, 0);
    k_fill_normal(d_out, n, 22, (uint64_t)i, 0);
    const float *pred = dit_forward(&m, a, x, t, y, stage, B);
    memcpy(r->out + r->out_n, pred, n * sizeof(float));
    r->out_n += n;
    dit_backward(&m, a, d_out);
  }
  r->grads = malloc(sizeof(float) * m.num_floats);
  dit_grads_to_host(&m, r->grads);
  free(x);
  free(d_out);
  dit_acts_destroy(a);
  dit_destroy(&m);
  return 0;
}

static void free_result(run_result *r) {
  free(r->out);
  free(r->grads);
}

/* Number of elements where a and b differ bitwise. */
static size_t bit_diffs(const float *a, const float *b, size_t n) {
  size_t d = 0;
  for (size_t i = 0; i < n; i++) d += memcmp(&a[i], &b[i], sizeof(float)) != 0;
  return d;
}

static void check_memory(void) {
  dit_model m;
  char err[256];
  if (dit_create(&m, &SHAPE, tpdiff_cpu_backend(), err, sizeof err) != 0) {
    failf("memory: model", "%s", err);
    return;
  }
  for (int k = 0; k < SHAPE.stages; k++) {
    size_t none = dit_acts_bytes(&m, MAX_CLIPS[k], k, DIT_RECOMPUTE_NONE);
    size_t cheap = dit_acts_bytes(&m, MAX_CLIPS[k], k, DIT_RECOMPUTE_CHEAP);
    size_t blocks = dit_acts_bytes(&m, MAX_CLIPS[k], k, DIT_RECOMPUTE_BLOCKS);
    size_t row = (size_t)MAX_CLIPS[k] * dit_stage_tokens(&SHAPE, k) * SHAPE.dim * sizeof(float); /* [B,N,D] */
    /* CHEAP: each block gives up h1, h2, x_mid and gelu (7 rows), the shared set takes 6 */
    size_t expect_cheap = none - ((size_t)SHAPE.depth * 7 - 6) * row;
    char name[128];
    snprintf(name, sizeof name, "stage %d: cheap arena = none - (7 depth - 6) [B,N,D] rows", k);
    check(name, cheap == expect_cheap, "none %zu cheap %zu expected %zu", none, cheap, expect_cheap);
    /* BLOCKS: the blocks after the first keep only x_in and ada, so the arena at depth d is the
     * depth-1 arena plus (d-1) such pairs; with depth 1 nothing is shared and it equals NONE */
    dit_shape one = SHAPE;
    one.depth = 1;
    dit_model m1;
    if (dit_create(&m1, &one, tpdiff_cpu_backend(), err, sizeof err) != 0) {
      failf("memory: depth-1 model", "%s", err);
      continue;
    }
    size_t ada = ((size_t)MAX_CLIPS[k] * 6 * SHAPE.dim + 15) / 16 * 16 * sizeof(float);
    size_t expect_blocks = dit_acts_bytes(&m1, MAX_CLIPS[k], k, DIT_RECOMPUTE_NONE) + (SHAPE.depth - 1) * (row + ada);
    snprintf(name, sizeof name, "stage %d: blocks arena = depth-1 arena + (depth-1) x (x_in + ada)", k);
    check(name, blocks == expect_blocks, "blocks %zu expected %zu", blocks, expect_blocks);
    snprintf(name, sizeof name, "stage %d: depth 1: the blocks arena equals none's", k);
    size_t b1 = dit_acts_bytes(&m1, MAX_CLIPS[k], k, DIT_RECOMPUTE_BLOCKS);
    check(name, b1 == dit_acts_bytes(&m1, MAX_CLIPS[k], k, DIT_RECOMPUTE_NONE), "blocks %zu", b1);
    dit_destroy(&m1);
  }
  dit_destroy(&m);
}

int main(void) {
  /* stage switches and clip counts in both directions, several microbatches into one gradient */
  static const int order[][2] = {{2, 1}, {0, 4}, {1, 2}, {0, 3}, {2, 1}};
  int count = (int)(sizeof order / sizeof order[0]);
  char err[256];
  run_result ref, got;
  if (run(DIT_RECOMPUTE_NONE, order, count, &ref, err, sizeof err) != 0) {
    failf("reference run (recompute none)", "%s", err);
    test_summary("test_recompute", NULL);
    return test_exit_code();
  }
  dit_model probe;
  dit_create(&probe, &SHAPE, tpdiff_cpu_backend(), err, sizeof err);
  size_t num_floats = probe.num_floats;
  dit_destroy(&probe);
  size_t zero = 0;
  for (size_t i = 0; i < num_floats; i++) zero += ref.grads[i] == 0.0f;
  check("reference gradients are not all zero", zero < num_floats / 10, "%zu of %zu zero", zero, num_floats);
  dit_recompute modes[] = {DIT_RECOMPUTE_CHEAP, DIT_RECOMPUTE_BLOCKS};
  for (int i = 0; i < 2; i++) {
    char name[128];
    if (run(modes[i], order, count, &got, err, sizeof err) != 0) {
      failf(dit_recompute_name(modes[i]), "%s", err);
      continue;
    }
    snprintf(name, sizeof name, "recompute %s: 5 forwards equal none's bit for bit", dit_recompute_name(modes[i]));
    size_t d = got.out_n == ref.out_n ? bit_diffs(got.out, ref.out, ref.out_n) : ref.out_n;
    check(name, d == 0, "%zu of %zu values differ", d, ref.out_n);
    snprintf(name, sizeof name, "recompute %s: accumulated gradients equal none's bit for bit",
             dit_recompute_name(modes[i]));
    d = bit_diffs(got.grads, ref.grads, num_floats);
    check(name, d == 0, "%zu of %zu values differ", d, num_floats);
    free_result(&got);
  }
  free_result(&ref);
  check("names round-trip", dit_recompute_from_name("none") == DIT_RECOMPUTE_NONE &&
                                dit_recompute_from_name("cheap") == DIT_RECOMPUTE_CHEAP &&
                                dit_recompute_from_name("blocks") == DIT_RECOMPUTE_BLOCKS &&
                                dit_recompute_from_name("all") == -1,
        NULL);
  check_memory();
  test_summary("test_recompute", NULL);
  return test_exit_code();
}
