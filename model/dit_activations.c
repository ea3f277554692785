/* dit_activations.c — the activation arena: one backend allocation sized for the largest microbatch
 * of any stage, laid out afresh (pointer arithmetic only) for each microbatch's clip count and
 * stage, plus the fixed position tables (built on the host, uploaded once). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "model/dit_internal.h"

/* Every buffer starts on a 64-byte boundary (cache line, AVX-512 load). */
static float *take(dit_acts *a, size_t *used, size_t count) {
  size_t start = *used;
  *used = (start + count + 15) & ~(size_t)15;
  return a->base ? a->base + start : NULL;
}

size_t dit_acts_layout(const dit_model *m, dit_acts *a, int B, int stage) {
  const dit_shape *s = &m->shape;
  const tpdiff_backend *be = m->be;
  size_t D = (size_t)s->dim, P = (size_t)s->channels * s->patch * s->patch;
  size_t N = (size_t)dit_stage_tokens(s, stage), BN = (size_t)B * N, H = (size_t)s->heads;
  size_t used = 0;
  a->B = B;
  a->stage = stage;
  a->T = dit_stage_frames(s, stage);
  a->N = (int)N;
  a->t_freq = take(a, &used, (size_t)B * DIT_TIME_FREQ_DIM);
  a->t_hidden = take(a, &used, B * D);
  a->t_act = take(a, &used, B * D);
  a->cond = take(a, &used, B * D);
  a->cond_act = take(a, &used, B * D);
  a->final_ada = take(a, &used, B * 2 * D);
  a->tokens = take(a, &used, BN * P);
  /* CHEAP: the recomputed rows, one set for all blocks; h1 and h2 share a buffer because h1 is
   * consumed (by the qkv matmul) before h2 is computed, and recomputed after h2's last use */
  float *shared_h = NULL, *shared_x_mid = NULL, *shared_gelu = NULL;
  if (a->recompute == DIT_RECOMPUTE_CHEAP) {
    shared_h = take(a, &used, BN * D);
    shared_x_mid = take(a, &used, BN * D);
    shared_gelu = take(a, &used, BN * 4 * D);
  }
  for (int l = 0; l < s->depth; l++) {
    dit_block_acts *b = &a->blocks[l];
    b->x_in = take(a, &used, BN * D);
    b->ada = take(a, &used, B * 6 * D);
    if (a->recompute == DIT_RECOMPUTE_BLOCKS && l > 0) {
      /* BLOCKS: every block but the first borrows block 0's buffers for the rest */
      float *x_in = b->x_in, *ada = b->ada;
      *b = a->blocks[0];
      b->x_in = x_in;
      b->ada = ada;
      continue;
    }
    int cheap = a->recompute == DIT_RECOMPUTE_CHEAP;
    b->ln1_mean = take(a, &used, BN);
    b->ln1_rstd = take(a, &used, BN);
    b->h1 = cheap ? shared_h : take(a, &used, BN * D);
    b->qkv = take(a, &used, BN * 3 * D);
    /* the backend decides what attention keeps for the backward: the CPU all of softmax (B*H*N*N),
     * CUDA only the row log-sum-exp (B*H*N); the memory plan (dit_acts_bytes) follows it */
    b->probs = take(a, &used, be->attention_probs_floats(B, (int)N, (int)H));
    b->attn = take(a, &used, BN * D);
    b->proj = take(a, &used, BN * D);
    b->x_mid = cheap ? shared_x_mid : take(a, &used, BN * D);
    b->ln2_mean = take(a, &used, BN);
    b->ln2_rstd = take(a, &used, BN);
    b->h2 = cheap ? shared_h : take(a, &used, BN * D);
    b->fc1 = take(a, &used, BN * 4 * D);
    b->gelu = cheap ? shared_gelu : take(a, &used, BN * 4 * D);
    b->fc2 = take(a, &used, BN * D);
  }
  a->x_final = take(a, &used, BN * D);
  a->final_mean = take(a, &used, BN);
  a->final_rstd = take(a, &used, BN);
  a->final_h = take(a, &used, BN * D);
  a->out_tokens = take(a, &used, BN * P);
  a->out = take(a, &used, BN * P);
  a->d_x = take(a, &used, BN * D);
  a->d_h = take(a, &used, BN * D);
  a->d_f = take(a, &used, BN * D);
  a->d_attn = take(a, &used, BN * D);
  a->d_big = take(a, &used, BN * 4 * D);
  a->d_tokens = take(a, &used, BN * P);
  a->attn_scratch = take(a, &used, be->attention_scratch_floats((int)N));
  a->d_cond_act = take(a, &used, B * D);
  a->d_cond = take(a, &used, B * D);
  a->d_small = take(a, &used, B * D);
  a->d_t_act = take(a, &used, B * D);
  a->d_ada = take(a, &used, B * 6 * D);
  a->d_final_ada = take(a, &used, B * 2 * D);
  return used;
}

int dit_recompute_from_name(const char *name) {
  if (strcmp(name, "none") == 0) return DIT_RECOMPUTE_NONE;
  if (strcmp(name, "cheap") == 0) return DIT_RECOMPUTE_CHEAP;
  if (strcmp(name, "blocks") == 0) return DIT_RECOMPUTE_BLOCKS;
  return -1;
}

const char *dit_recompute_name(dit_recompute mode) {
  return mode == DIT_RECOMPUTE_BLOCKS ? "blocks" : mode == DIT_RECOMPUTE_CHEAP ? "cheap" : "none";
}

size_t dit_acts_bytes(const dit_model *m, int clips, int stage, dit_recompute recompute) {
  dit_acts *probe = calloc(1, sizeof(dit_acts) + (size_t)m->shape.depth * sizeof(dit_block_acts));
  if (!probe) return 0;
  probe->blocks = probe->blocks_storage;
  probe->recompute = recompute;
  size_t floats = dit_acts_layout(m, probe, clips, stage);
  free(probe);
  return floats * sizeof(float);
}

size_t dit_acts_allocated_bytes(const dit_acts *a) { return a->capacity_floats * sizeof(float); }

static size_t max_size(size_t a, size_t b) { return a > b ? a : b; }

size_t dit_scratch_bytes(const dit_model *m, int clips, int stage) {
  const dit_shape *s = &m->shape;
  const size_t B = (size_t)clips, D = (size_t)s->dim, P = (size_t)s->channels * s->patch * s->patch;
  const int N = dit_stage_tokens(s, stage);
  const size_t BN = B * (size_t)N, F = DIT_TIME_FREQ_DIM;
  tpdiff_scratch_shape sh;
  memset(&sh, 0, sizeof sh);
  sh.clips = clips;
  sh.tokens = N;
  sh.dim = s->dim;
  sh.heads = s->heads;
  /* the token Linears: x_embed P -> D, qkv D -> 3D, proj D -> D, fc1 D -> 4D, fc2 4D -> D, final D -> P;
   * the per-clip ones: time MLP F -> D -> D, adaLN D -> 6D (blocks) and D -> 2D (final) */
  sh.linear_in = max_size(max_size(BN * 4 * D, BN * P), B * max_size(D, F));
  sh.linear_out = max_size(max_size(BN * 4 * D, BN * P), B * 6 * D);
  sh.linear_weight = max_size(max_size(6 * D * D, P * D), F * D);
  /* column sums: the layernorm and gated-residual gradients (clips x D), the biases (6D at most) */
  sh.sum_columns = max_size(B * D, 6 * D);
  return m->be->scratch_bytes(&sh);
}

/* Position table of stage k: spatial 2-D sin-cos (row, col halves) + temporal 1-D sin-cos at the
 * frame's full-rate time m·j + (m-1)/2 (the centre of the frames a coarse frame averages). */
static void build_positions(const dit_shape *s, int stage, float *pos) {
  int D = s->dim, hp = s->height / s->patch, wp = s->width / s->patch;
  int T = dit_stage_frames(s, stage), m = dit_stage_stride(s, stage);
  int N = T * hp * wp, half = D / 2;
  float *row_tab = malloc(sizeof(float) * (size_t)hp * half), *col_tab = malloc(sizeof(float) * (size_t)wp * half);
  float *time_tab = malloc(sizeof(float) * (size_t)T * D);
  double *q = malloc(sizeof(double) * (size_t)(hp > wp ? (hp > T ? hp : T) : (wp > T ? wp : T)));
  for (int i = 0; i < hp; i++) q[i] = i;
  k_sincos_table(row_tab, q, hp, half);
  for (int i = 0; i < wp; i++) q[i] = i;
  k_sincos_table(col_tab, q, wp, half);
  for (int j = 0; j < T; j++) q[j] = (double)m * j + (m - 1) / 2.0;
  k_sincos_table(time_tab, q, T, D);
  for (int n = 0; n < N; n++) {
    int j = n / (hp * wp), r = n / wp % hp, c = n % wp;
    float *p = pos + (size_t)n * D;
    for (int d = 0; d < half; d++) {
      p[d] = row_tab[(size_t)r * half + d] + time_tab[(size_t)j * D + d];
      p[half + d] = col_tab[(size_t)c * half + d] + time_tab[(size_t)j * D + half + d];
    }
  }
  free(row_tab);
  free(col_tab);
  free(time_tab);
  free(q);
}

dit_acts *dit_acts_create(const dit_model *m, const int *max_clips, dit_recompute recompute, char *err,
                          size_t err_size) {
  const dit_shape *s = &m->shape;
  dit_acts *a = calloc(1, sizeof(dit_acts) + (size_t)s->depth * sizeof(dit_block_acts));
  if (!a) goto oom;
  a->blocks = a->blocks_storage;
  a->recompute = recompute;
  int most_clips = 1;
  for (int k = 0; k < s->stages; k++) {
    a->max_clips[k] = max_clips[k];
    size_t floats = dit_acts_layout(m, a, max_clips[k], k);
    if (floats > a->capacity_floats) a->capacity_floats = floats;
    if (max_clips[k] > most_clips) most_clips = max_clips[k];
  }
  a->be = m->be;
  a->base = m->be->alloc(a->capacity_floats * sizeof(float));
  a->pos = calloc((size_t)s->stages, sizeof(float *));
  a->stages = a->pos ? s->stages : 0;
  a->labels = calloc((size_t)most_clips, sizeof(int));
  a->stage_index = calloc((size_t)most_clips, sizeof(int));
  if (!a->base || !a->pos || !a->labels || !a->stage_index) goto oom;
  for (int k = 0; k < s->stages; k++) {
    size_t bytes = sizeof(float) * (size_t)dit_stage_tokens(s, k) * s->dim;
    float *host = malloc(bytes);
    a->pos[k] = m->be->alloc(bytes);
    if (host) build_positions(s, k, host);
    int uploaded = host && a->pos[k] && m->be->copy_to_device(a->pos[k], host, bytes) == 0;
    free(host);
    if (!uploaded) goto oom;
  }
  return a;
oom:
  if (a && a->be) {
    const char *why = a->be->last_error();
    snprintf(err, err_size, "out of %s memory for the activation arena (%.1f MiB)%s%s", a->be->name,
             a->capacity_floats * 4.0 / 1048576.0, why[0] ? ": " : "", why);
  } else {
    snprintf(err, err_size, "out of memory for the activation arena");
  }
  dit_acts_destroy(a);
  return NULL;
}

void dit_acts_destroy(dit_acts *a) {
  if (!a) return;
  if (a->be) {
    a->be->free(a->base);
    if (a->pos)
      for (int k = 0; k < a->stages; k++) a->be->free(a->pos[k]);
  }
  free(a->labels);
  free(a->stage_index);
  free(a->pos);
  free(a);
}
