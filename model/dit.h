/* dit.h — the DiT video denoiser of DESIGN.md ("Model"): parameter registry, activation arena,
 * forward and backward. Knows nothing of files, MPI or the trainer; all arithmetic goes through a
 * compute backend (kernels/backend.h), so the same code runs on the CPU and on the GPU. Weights,
 * gradients and activations live in the backend's memory; what the host reads or writes goes
 * through dit_weights_to_host / dit_weights_from_host / dit_grads_to_host. */
#ifndef TPDIFF_DIT_H
#define TPDIFF_DIT_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/backend.h"

#define DIT_NAME_MAX 64
#define DIT_TIME_FREQ_DIM 256 /* width of the sin-cos table that feeds the time MLP */
#define DIT_LN_EPS 1e-6f

typedef struct {
  int depth, dim, heads, patch, classes; /* model.* */
  int channels, frames, height, width;   /* data.*: frames at full rate */
  int stages;                            /* pyramid.stages (K) */
} dit_shape;

typedef enum { DIT_LINEAR_WEIGHT, DIT_LINEAR_BIAS, DIT_EMBEDDING } dit_param_kind;

/* One named tensor in the flat parameter buffer; names and shapes are the PyTorch export contract. */
typedef struct {
  char name[DIT_NAME_MAX];
  int ndim;
  int shape[2];
  size_t offset; /* in floats, into the flat buffer */
  size_t numel;
  dit_param_kind kind;
  int fan_in, fan_out; /* of the layer the tensor belongs to (for initialisation) */
} dit_param;

/* Offsets (in floats) of one block's tensors. */
typedef struct {
  size_t ada_w, ada_b, qkv_w, qkv_b, proj_w, proj_b, fc1_w, fc1_b, fc2_w, fc2_b;
} dit_block_offsets;

typedef struct {
  dit_shape shape;
  const tpdiff_backend *be; /* where weights, grads and activations live and every op runs */
  dit_param *params;        /* registry, in export order (host) */
  int num_params;
  size_t num_floats; /* total parameter count */
  float *weights;    /* flat fp32 master weights [num_floats], backend memory */
  float *grads;      /* flat gradient buffer [num_floats], backend memory, accumulated by dit_backward */
  /* offsets of the non-block tensors; y_embed is SIZE_MAX when classes == 0 */
  size_t x_embed_w, x_embed_b, t_mlp0_w, t_mlp0_b, t_mlp2_w, t_mlp2_b, y_embed, stage_embed;
  size_t final_ada_w, final_ada_b, final_linear_w, final_linear_b;
  dit_block_offsets *blocks; /* [depth] */
  /* Optional, NULL by default: dit_backward calls it after the final layer and after each block
   * with the lowest flat offset from which every gradient of this backward is written (a block
   * writes only its own tensors, and the registry lays out the blocks before the final layer), so
   * a data-parallel reduction can start on those while the earlier layers' backward still runs. */
  void (*grads_done)(void *ctx, size_t from_offset);
  void *grads_done_ctx;
} dit_model;

/* Builds the registry and allocates weights and grads (zeroed) with be->alloc. Returns 0, or -1
 * with err set when the shape is invalid or memory runs out. */
int dit_create(dit_model *m, const dit_shape *shape, const tpdiff_backend *be, char *err, size_t err_size);
void dit_destroy(dit_model *m);

/* DiT initialisation (DESIGN.md): Xavier-uniform linears, zero biases, normal(0.02) embeddings and
 * time MLP weights, zero adaLN and final linear. Deterministic in seed, and the same values on
 * every backend (drawn on the host, then uploaded). 0, or -1 when host memory or the upload fails. */
int dit_init_dit(dit_model *m, uint64_t seed);
/* Every tensor random (U(±1/sqrt(fan_in)), embeddings N(0,1)·0.5), for tests: nothing is zero, so no
 * path is hidden by a zero weight. Host-drawn like dit_init_dit. 0 or -1. */
int dit_init_random(dit_model *m, uint64_t seed);

/* Host copies of the flat buffers (num_floats floats each; offsets as the registry says), for
 * tests, checkpoints and export. 0, or -1 when the backend's copy fails. */
int dit_weights_to_host(const dit_model *m, float *host);
int dit_weights_from_host(dit_model *m, const float *host);
int dit_grads_to_host(const dit_model *m, float *host);

/* Registry lookup by name; NULL when absent. */
const dit_param *dit_find_param(const dit_model *m, const char *name);

/* Frames of stage k (F / 2^(K-1-k)) and its frame stride m = 2^(K-1-k). */
int dit_stage_frames(const dit_shape *s, int stage);
int dit_stage_stride(const dit_shape *s, int stage);
/* Tokens per clip at stage k. */
int dit_stage_tokens(const dit_shape *s, int stage);

/* The activation arena: every buffer forward and backward need, allocated once for the largest
 * microbatch of any stage; each forward lays the current (clips, stage) out inside it. */
typedef struct dit_acts dit_acts;

/* What the arena keeps from the forward for the backward (train.recompute). Every mode computes the
 * same function with the same ops in the same order, so the gradients are bit for bit those of
 * DIT_RECOMPUTE_NONE; only memory and time differ.
 *   NONE:   every block keeps all 18 [B,N,D]-sized rows per token it computed (plus attention's).
 *   CHEAP:  the outputs of the two modulated layernorms, the attention residual x_mid and the GELU
 *           (7 of the 18) live in one buffer set shared by all blocks and are recomputed in the
 *           backward from what is kept: pointwise and norm ops only, no matmul and no attention.
 *   BLOCKS: every block keeps only its input and its adaLN rows; the backward reruns each block's
 *           forward (all of it but the last block's, whose activations are still in place) into one
 *           shared block's buffers: about one more forward per step, for activations that no longer
 *           grow with the depth. */
typedef enum { DIT_RECOMPUTE_NONE = 0, DIT_RECOMPUTE_CHEAP = 1, DIT_RECOMPUTE_BLOCKS = 2 } dit_recompute;

/* "none", "cheap", "blocks" (train.recompute); -1 for any other name. */
int dit_recompute_from_name(const char *name);
const char *dit_recompute_name(dit_recompute mode);

/* max_clips[k] = the most clips a microbatch of stage k will hold. The arena is backend memory
 * (m->be), the position tables are built on the host and uploaded once. A forward-only user (the
 * sampler) loses nothing with DIT_RECOMPUTE_BLOCKS and needs the least memory with it. Returns NULL
 * with err set when memory runs out. */
dit_acts *dit_acts_create(const dit_model *m, const int *max_clips, dit_recompute recompute, char *err,
                          size_t err_size);
void dit_acts_destroy(dit_acts *a);
/* Bytes the arena would need for a microbatch of `clips` clips at `stage`. */
size_t dit_acts_bytes(const dit_model *m, int clips, int stage, dit_recompute recompute);
/* Total bytes allocated. */
size_t dit_acts_allocated_bytes(const dit_acts *a);
/* Bytes of the backend's own buffers (backend.h scratch_bytes) the forward and backward of a
 * microbatch of `clips` clips at `stage` need, in the backend's current precision. */
size_t dit_scratch_bytes(const dit_model *m, int clips, int stage);

/* Forward: x [B, C, T_k, H, W] at stage k in BACKEND memory. t [B] in [0, 1] and y [B] labels in
 * HOST memory (t only feeds the sin-cos table, built from host positions; labels are embedding
 * indices): y NULL gives every clip the null class `classes`, and y is ignored when the model is
 * unconditional. Returns the prediction [B, C, T_k, H, W] in backend memory, owned by the arena
 * and valid until the next forward. B must not exceed max_clips[stage]. */
const float *dit_forward(const dit_model *m, dit_acts *a, const float *x, const float *t, const int *y,
                         int stage, int B);
/* Backward of the last forward: d_out [B, C, T_k, H, W] in backend memory; parameter gradients are
 * ADDED to m->grads. */
void dit_backward(dit_model *m, dit_acts *a, const float *d_out);

#endif
