/* dit_params.c — the DiT parameter registry (names, shapes, offsets), the flat weight and gradient
 * buffers in backend memory, and initialisation (drawn on the host, so every backend starts from
 * the same bits). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "model/dit.h"

int dit_stage_stride(const dit_shape *s, int stage) { return 1 << (s->stages - 1 - stage); }
int dit_stage_frames(const dit_shape *s, int stage) { return s->frames / dit_stage_stride(s, stage); }
int dit_stage_tokens(const dit_shape *s, int stage) {
  return dit_stage_frames(s, stage) * (s->height / s->patch) * (s->width / s->patch);
}

typedef struct {
  dit_model *m;
  int capacity;
} registry_builder;

static size_t add_param(registry_builder *rb, const char *name, int rows, int cols, dit_param_kind kind, int fan_in,
                        int fan_out) {
  dit_model *m = rb->m;
  dit_param *p = &m->params[m->num_params++];
  snprintf(p->name, sizeof p->name, "%s", name);
  p->ndim = cols > 0 ? 2 : 1;
  p->shape[0] = rows;
  p->shape[1] = cols > 0 ? cols : 0;
  p->numel = (size_t)rows * (size_t)(cols > 0 ? cols : 1);
  /* Every tensor starts at a multiple of 128 floats (512 bytes): SIMD loads stay aligned, and a bf16
   * copy of the flat buffer (backend.h set_master_weights) keeps each tensor 256-byte aligned, which
   * is what cuBLASLt's plans assume of a freshly allocated operand. A few KB in all. */
  p->offset = (m->num_floats + 127) & ~(size_t)127;
  m->num_floats = p->offset + p->numel;
  p->kind = kind;
  p->fan_in = fan_in;
  p->fan_out = fan_out;
  return p->offset;
}

/* A Linear(in -> out): weight [out, in] then bias [out]; returns the weight offset, bias via *bias. */
static size_t add_linear(registry_builder *rb, const char *prefix, int in, int out, size_t *bias) {
  char name[DIT_NAME_MAX];
  snprintf(name, sizeof name, "%s.weight", prefix);
  size_t w = add_param(rb, name, out, in, DIT_LINEAR_WEIGHT, in, out);
  snprintf(name, sizeof name, "%s.bias", prefix);
  *bias = add_param(rb, name, out, 0, DIT_LINEAR_BIAS, in, out);
  return w;
}

int dit_create(dit_model *m, const dit_shape *s, const tpdiff_backend *be, char *err, size_t err_size) {
  memset(m, 0, sizeof *m);
  if (s->depth < 1 || s->dim < 4 || s->dim % 4 || s->heads < 1 || s->dim % s->heads || s->patch < 1 ||
      s->height % s->patch || s->width % s->patch || s->stages < 1 || s->channels < 1 || s->classes < 0 ||
      s->frames % (1 << (s->stages - 1))) {
    snprintf(err, err_size, "model shape does not fit (dim %% 4, dim %% heads, H,W %% patch, frames %% 2^(K-1))");
    return -1;
  }
  m->shape = *s;
  m->be = be;
  int D = s->dim, P = s->channels * s->patch * s->patch;
  int capacity = 16 + 10 * s->depth;
  m->params = calloc((size_t)capacity, sizeof *m->params);
  m->blocks = calloc((size_t)s->depth, sizeof *m->blocks);
  if (!m->params || !m->blocks) {
    snprintf(err, err_size, "out of memory for the parameter registry");
    dit_destroy(m);
    return -1;
  }
  registry_builder rb = {m, capacity};
  m->x_embed_w = add_linear(&rb, "x_embed", P, D, &m->x_embed_b);
  m->t_mlp0_w = add_linear(&rb, "t_embed.mlp.0", DIT_TIME_FREQ_DIM, D, &m->t_mlp0_b);
  m->t_mlp2_w = add_linear(&rb, "t_embed.mlp.2", D, D, &m->t_mlp2_b);
  m->y_embed = s->classes > 0 ? add_param(&rb, "y_embed.weight", s->classes + 1, D, DIT_EMBEDDING, 0, D) : SIZE_MAX;
  m->stage_embed = add_param(&rb, "stage_embed.weight", s->stages, D, DIT_EMBEDDING, 0, D);
  for (int i = 0; i < s->depth; i++) {
    char prefix[DIT_NAME_MAX];
    dit_block_offsets *b = &m->blocks[i];
    snprintf(prefix, sizeof prefix, "blocks.%d.adaLN", i);
    b->ada_w = add_linear(&rb, prefix, D, 6 * D, &b->ada_b);
    snprintf(prefix, sizeof prefix, "blocks.%d.attn.qkv", i);
    b->qkv_w = add_linear(&rb, prefix, D, 3 * D, &b->qkv_b);
    snprintf(prefix, sizeof prefix, "blocks.%d.attn.proj", i);
    b->proj_w = add_linear(&rb, prefix, D, D, &b->proj_b);
    snprintf(prefix, sizeof prefix, "blocks.%d.mlp.fc1", i);
    b->fc1_w = add_linear(&rb, prefix, D, 4 * D, &b->fc1_b);
    snprintf(prefix, sizeof prefix, "blocks.%d.mlp.fc2", i);
    b->fc2_w = add_linear(&rb, prefix, 4 * D, D, &b->fc2_b);
  }
  m->final_ada_w = add_linear(&rb, "final.adaLN", D, 2 * D, &m->final_ada_b);
  m->final_linear_w = add_linear(&rb, "final.linear", D, P, &m->final_linear_b);
  const size_t bytes = m->num_floats * sizeof(float);
  m->weights = be->alloc(bytes);
  m->grads = be->alloc(bytes);
  /* zeroed, as the registry's alignment gaps must be: they are summed into the gradient norm */
  if (!m->weights || !m->grads || be->fill_zero(m->weights, bytes) != 0 || be->fill_zero(m->grads, bytes) != 0) {
    const char *why = be->last_error();
    snprintf(err, err_size, "out of %s memory for %zu parameters%s%s", be->name, m->num_floats, why[0] ? ": " : "",
             why);
    dit_destroy(m);
    return -1;
  }
  /* in bf16 mode the backend keeps the matmuls' bf16 copy of these weights in step with them */
  if (be->set_master_weights(m->weights, m->num_floats) != 0) {
    const char *why = be->last_error();
    snprintf(err, err_size, "out of %s memory for the bf16 copy of %zu parameters%s%s", be->name, m->num_floats,
             why[0] ? ": " : "", why);
    dit_destroy(m);
    return -1;
  }
  return 0;
}

void dit_destroy(dit_model *m) {
  free(m->params);
  free(m->blocks);
  if (m->be) {
    if (m->weights) m->be->set_master_weights(m->weights, 0);
    m->be->free(m->weights);
    m->be->free(m->grads);
  }
  memset(m, 0, sizeof *m);
}

int dit_weights_to_host(const dit_model *m, float *host) {
  return m->be->copy_to_host(host, m->weights, m->num_floats * sizeof(float));
}

int dit_weights_from_host(dit_model *m, const float *host) {
  return m->be->copy_to_device(m->weights, host, m->num_floats * sizeof(float));
}

int dit_grads_to_host(const dit_model *m, float *host) {
  return m->be->copy_to_host(host, m->grads, m->num_floats * sizeof(float));
}

const dit_param *dit_find_param(const dit_model *m, const char *name) {
  for (int i = 0; i < m->num_params; i++)
    if (strcmp(m->params[i].name, name) == 0) return &m->params[i];
  return NULL;
}

/* Random streams: one per tensor (its registry index), so adding a tensor never shifts the
 * values of the others. */
enum { INIT_STREAM_BASE = 0x1000 };

static void fill_uniform_range(float *x, size_t n, float bound, uint64_t seed, int index) {
  k_fill_uniform(x, n, seed, INIT_STREAM_BASE + (uint64_t)index, 0);
  for (size_t i = 0; i < n; i++) x[i] = (2.0f * x[i] - 1.0f) * bound;
}

static void fill_normal_std(float *x, size_t n, float std, uint64_t seed, int index) {
  k_fill_normal(x, n, seed, INIT_STREAM_BASE + (uint64_t)index, 0);
  for (size_t i = 0; i < n; i++) x[i] *= std;
}

static int starts_with(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

/* Host staging for the initialisers: zeroed, so alignment gaps and zero-initialised tensors are 0. */
static float *host_weights(const dit_model *m) { return calloc(m->num_floats ? m->num_floats : 1, sizeof(float)); }

/* Uploads the staged weights and frees them. */
static int upload_weights(dit_model *m, float *host) {
  int rc = dit_weights_from_host(m, host);
  free(host);
  return rc;
}

int dit_init_dit(dit_model *m, uint64_t seed) {
  float *weights = host_weights(m);
  if (!weights) return -1;
  for (int i = 0; i < m->num_params; i++) {
    const dit_param *p = &m->params[i];
    float *w = weights + p->offset;
    int is_zero_linear = strstr(p->name, "adaLN") != NULL || starts_with(p->name, "final.linear");
    if (p->kind == DIT_EMBEDDING) {
      fill_normal_std(w, p->numel, 0.02f, seed, i);
    } else if (p->kind == DIT_LINEAR_WEIGHT && starts_with(p->name, "t_embed.")) {
      fill_normal_std(w, p->numel, 0.02f, seed, i);
    } else if (p->kind == DIT_LINEAR_WEIGHT && !is_zero_linear) {
      float bound = sqrtf(6.0f / (float)(p->fan_in + p->fan_out));
      fill_uniform_range(w, p->numel, bound, seed, i);
    } /* biases, adaLN and the final linear stay zero (adaLN-Zero) */
  }
  return upload_weights(m, weights);
}

int dit_init_random(dit_model *m, uint64_t seed) {
  float *weights = host_weights(m);
  if (!weights) return -1;
  for (int i = 0; i < m->num_params; i++) {
    const dit_param *p = &m->params[i];
    float *w = weights + p->offset;
    if (p->kind == DIT_EMBEDDING)
      fill_normal_std(w, p->numel, 0.5f, seed, i);
    else
      fill_uniform_range(w, p->numel, 1.0f / sqrtf((float)p->fan_in), seed, i);
  }
  return upload_weights(m, weights);
}
