/* dit_forward.c — DiT forward pass (DESIGN.md "Model"), keeping what the backward needs; every op
 * through the model's backend. */
#include <string.h>

#include "kernels/backend.h"
#include "model/dit_internal.h"

#define W(off) (m->weights + (off))

void dit_block_forward(const dit_model *m, dit_acts *a, int l, float *x_out) {
  const dit_shape *s = &m->shape;
  const tpdiff_backend *be = m->be;
  const dit_block_offsets *o = &m->blocks[l];
  dit_block_acts *b = &a->blocks[l];
  int B = a->B, N = a->N, D = s->dim, BN = B * N, stride = 6 * D;
  float *shift1 = b->ada, *scale1 = b->ada + D, *gate1 = b->ada + 2 * D;
  float *shift2 = b->ada + 3 * D, *scale2 = b->ada + 4 * D, *gate2 = b->ada + 5 * D;

  be->linear_forward(b->ada, a->cond_act, W(o->ada_w), W(o->ada_b), B, D, 6 * D);
  /* x_mid = x_in + gate1 · proj(attn(LN(x_in)·(1+scale1)+shift1)) */
  be->layernorm_modulate_forward(b->h1, b->ln1_mean, b->ln1_rstd, b->x_in, shift1, scale1, stride, B, N, D, DIT_LN_EPS);
  be->linear_forward(b->qkv, b->h1, W(o->qkv_w), W(o->qkv_b), BN, D, 3 * D);
  be->attention_forward(b->attn, b->probs, b->qkv, B, N, D, s->heads);
  be->linear_forward(b->proj, b->attn, W(o->proj_w), W(o->proj_b), BN, D, D);
  be->gated_residual_forward(b->x_mid, b->x_in, b->proj, gate1, stride, B, N, D);
  /* x_out = x_mid + gate2 · fc2(gelu(fc1(LN(x_mid)·(1+scale2)+shift2))) */
  be->layernorm_modulate_forward(b->h2, b->ln2_mean, b->ln2_rstd, b->x_mid, shift2, scale2, stride, B, N, D, DIT_LN_EPS);
  be->linear_gelu_forward(b->fc1, b->gelu, b->h2, W(o->fc1_w), W(o->fc1_b), BN, D, 4 * D);
  be->linear_forward(b->fc2, b->gelu, W(o->fc2_w), W(o->fc2_b), BN, 4 * D, D);
  be->gated_residual_forward(x_out, b->x_mid, b->fc2, gate2, stride, B, N, D);
}

const float *dit_forward(const dit_model *m, dit_acts *a, const float *x, const float *t, const int *y, int stage,
                         int B) {
  const dit_shape *s = &m->shape;
  const tpdiff_backend *be = m->be;
  dit_acts_layout(m, a, B, stage);
  int N = a->N, D = s->dim, P = s->channels * s->patch * s->patch, BN = B * N;

  /* c = MLP(table_256(1000 t)) + E[y] + S[k]; t is host memory (dit.h): the table's positions are
   * a host argument of every backend */
  double q[B];
  for (int i = 0; i < B; i++) q[i] = 1000.0 * (double)t[i];
  be->sincos_table(a->t_freq, q, B, DIT_TIME_FREQ_DIM);
  be->linear_forward(a->t_hidden, a->t_freq, W(m->t_mlp0_w), W(m->t_mlp0_b), B, DIT_TIME_FREQ_DIM, D);
  be->silu_forward(a->t_act, a->t_hidden, (size_t)B * D);
  be->linear_forward(a->cond, a->t_act, W(m->t_mlp2_w), W(m->t_mlp2_b), B, D, D);
  for (int i = 0; i < B; i++) a->stage_index[i] = stage;
  be->embedding_add(a->cond, W(m->stage_embed), a->stage_index, B, D);
  if (s->classes > 0) {
    /* no labels for a class-conditional model means the null class (unconditional) */
    if (y)
      memcpy(a->labels, y, sizeof(int) * (size_t)B);
    else
      for (int i = 0; i < B; i++) a->labels[i] = s->classes;
    be->embedding_add(a->cond, W(m->y_embed), a->labels, B, D);
  }
  /* SiLU(c) feeds every adaLN linear; computed once. */
  be->silu_forward(a->cond_act, a->cond, (size_t)B * D);

  /* tokens + positions */
  be->patchify(a->tokens, x, B, s->channels, a->T, s->height, s->width, s->patch);
  be->linear_forward(a->blocks[0].x_in, a->tokens, W(m->x_embed_w), W(m->x_embed_b), BN, P, D);
  be->add_rows_broadcast(a->blocks[0].x_in, a->pos[stage], B, N, D);

  for (int l = 0; l < s->depth; l++)
    dit_block_forward(m, a, l, l + 1 < s->depth ? a->blocks[l + 1].x_in : a->x_final);

  /* final layer */
  be->linear_forward(a->final_ada, a->cond_act, W(m->final_ada_w), W(m->final_ada_b), B, D, 2 * D);
  be->layernorm_modulate_forward(a->final_h, a->final_mean, a->final_rstd, a->x_final, a->final_ada, a->final_ada + D,
                               2 * D, B, N, D, DIT_LN_EPS);
  be->linear_forward(a->out_tokens, a->final_h, W(m->final_linear_w), W(m->final_linear_b), BN, D, P);
  be->unpatchify(a->out, a->out_tokens, B, s->channels, a->T, s->height, s->width, s->patch);
  a->have_forward = 1;
  return a->out;
}
