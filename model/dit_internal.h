/* dit_internal.h — the activation arena's layout, shared by the forward and backward files only. */
#ifndef TPDIFF_DIT_INTERNAL_H
#define TPDIFF_DIT_INTERNAL_H

#include "model/dit.h"

/* Activations of one block kept for the backward. Under train.recompute some of these point into
 * buffers shared by every block (dit.h dit_recompute); the backward refills them before use. */
typedef struct {
  float *x_in;             /* [B,N,D] block input */
  float *ada;              /* [B,6D] shift1 scale1 gate1 shift2 scale2 gate2 */
  float *ln1_mean, *ln1_rstd, *h1; /* [B*N], [B*N], [B,N,D] modulated LN(x_in) */
  float *qkv;              /* [B,N,3D] */
  float *probs;            /* softmax, be->attention_probs_floats(B, N, H) floats */
  float *attn;             /* [B,N,D] attention output before proj */
  float *proj;             /* [B,N,D] */
  float *x_mid;            /* [B,N,D] after the attention residual */
  float *ln2_mean, *ln2_rstd, *h2;
  float *fc1;              /* [B,N,4D] before GELU */
  float *gelu;             /* [B,N,4D] */
  float *fc2;              /* [B,N,D] */
} dit_block_acts;

struct dit_acts {
  const tpdiff_backend *be; /* owner of base and pos */
  float *base;              /* backend memory; every float * below points into it */
  size_t capacity_floats;
  int max_clips[8];
  dit_recompute recompute;
  int B, stage, T, N; /* the current layout */
  int stages;
  float **pos;        /* [stages] position tables [N_k, D], backend memory, computed once */
  int *labels, *stage_index; /* [max B], host: embedding indices are host arguments */
  /* conditioning */
  float *t_freq, *t_hidden, *t_act, *cond, *cond_act; /* [B,256] [B,D] [B,D] [B,D] [B,D] */
  float *final_ada;                                    /* [B,2D] */
  /* tokens */
  float *tokens;                                       /* [B,N,P] patchified input */
  dit_block_acts *blocks;                              /* [depth] */
  float *x_final;                                      /* [B,N,D] output of the last block */
  float *final_mean, *final_rstd, *final_h;            /* final LN */
  float *out_tokens;                                   /* [B,N,P] */
  float *out;                                          /* [B,C,T,H,W] prediction */
  /* backward scratch */
  float *d_x, *d_h, *d_f, *d_attn;                     /* [B,N,D] */
  float *d_big;                                        /* [B,N,4D], also holds d_qkv [B,N,3D] */
  float *d_tokens;                                     /* [B,N,P] */
  float *attn_scratch;                                 /* be->attention_scratch_floats(N) */
  float *d_cond_act, *d_cond, *d_small, *d_t_act;      /* [B,D] */
  float *d_ada;                                        /* [B,6D] */
  float *d_final_ada;                                  /* [B,2D] */
  int have_forward;
  dit_block_acts blocks_storage[];
};

/* Lays out the arena for B clips at stage (and a->recompute); with a->base == NULL only counts.
 * Returns floats used. */
size_t dit_acts_layout(const dit_model *m, dit_acts *a, int B, int stage);

/* Block l's forward from blocks[l].x_in into x_out (dit_forward.c); the backward reruns it under
 * DIT_RECOMPUTE_BLOCKS. */
void dit_block_forward(const dit_model *m, dit_acts *a, int l, float *x_out);

#endif
