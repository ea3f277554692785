/* dit_backward.c — DiT backward pass: the exact reverse of dit_forward.c, adding every parameter
 * gradient into the model's flat gradient buffer; every op through the model's backend. */
#include <string.h>

#include "kernels/backend.h"
#include "model/dit_internal.h"

#define W(off) (m->weights + (off))
#define G(off) (m->grads + (off))

/* On entry a->d_x holds dL/d(block output); on return dL/d(block input). */
static void block_backward(dit_model *m, dit_acts *a, int l) {
  const dit_shape *s = &m->shape;
  const tpdiff_backend *be = m->be;
  const dit_block_offsets *o = &m->blocks[l];
  dit_block_acts *b = &a->blocks[l];
  int B = a->B, N = a->N, D = s->dim, BN = B * N, stride = 6 * D;
  const float *shift1 = b->ada, *scale1 = b->ada + D, *gate1 = b->ada + 2 * D;
  const float *shift2 = b->ada + 3 * D, *scale2 = b->ada + 4 * D, *gate2 = b->ada + 5 * D;
  int cheap = a->recompute == DIT_RECOMPUTE_CHEAP;
  float *d_shift1 = a->d_ada, *d_scale1 = a->d_ada + D, *d_gate1 = a->d_ada + 2 * D;
  float *d_shift2 = a->d_ada + 3 * D, *d_scale2 = a->d_ada + 4 * D, *d_gate2 = a->d_ada + 5 * D;
  float *d_qkv = a->d_big; /* d_big is free again once the MLP branch is done */

  be->fill_zero(a->d_ada, sizeof(float) * (size_t)B * 6 * D);
  if (cheap) {
    /* refill the shared rows with this block's values, by the forward's own ops on its own inputs (the
     * GELU as its own op: the same bits as the forward's unless a backend computes the forward's in
     * a matmul epilogue, CUDA's opt-in TPDIFF_GELU=epilogue, where they agree to rounding) */
    be->gated_residual_forward(b->x_mid, b->x_in, b->proj, gate1, stride, B, N, D);
    be->layernorm_modulate_forward(b->h2, b->ln2_mean, b->ln2_rstd, b->x_mid, shift2, scale2, stride, B, N, D,
                                   DIT_LN_EPS);
    be->gelu_forward(b->gelu, b->fc1, (size_t)BN * 4 * D);
  }
  /* MLP branch: x_out = x_mid + gate2 · fc2 */
  be->gated_residual_backward(a->d_f, d_gate2, a->d_x, b->fc2, gate2, stride, B, N, D);
  /* fc2's backward and the GELU's in one op: d_big = gradient w.r.t. fc1's output */
  be->linear_backward_gelu(a->d_big, G(o->fc2_w), G(o->fc2_b), a->d_f, b->gelu, W(o->fc2_w), b->fc1, BN, 4 * D, D);
  be->linear_backward(a->d_h, G(o->fc1_w), G(o->fc1_b), a->d_big, b->h2, W(o->fc1_w), BN, D, 4 * D);
  be->layernorm_modulate_backward(a->d_x, d_shift2, d_scale2, a->d_h, b->x_mid, b->ln2_mean, b->ln2_rstd, scale2, stride,
                                B, N, D);
  /* attention branch: x_mid = x_in + gate1 · proj */
  be->gated_residual_backward(a->d_f, d_gate1, a->d_x, b->proj, gate1, stride, B, N, D);
  be->linear_backward(a->d_attn, G(o->proj_w), G(o->proj_b), a->d_f, b->attn, W(o->proj_w), BN, D, D);
  be->attention_backward(d_qkv, a->d_attn, b->qkv, b->attn, b->probs, a->attn_scratch, B, N, D, s->heads);
  if (cheap) /* h1 shares its buffer with h2, whose last use (fc1's backward) is behind us */
    be->layernorm_modulate_forward(b->h1, b->ln1_mean, b->ln1_rstd, b->x_in, shift1, scale1, stride, B, N, D,
                                   DIT_LN_EPS);
  be->linear_backward(a->d_h, G(o->qkv_w), G(o->qkv_b), d_qkv, b->h1, W(o->qkv_w), BN, D, 3 * D);
  be->layernorm_modulate_backward(a->d_x, d_shift1, d_scale1, a->d_h, b->x_in, b->ln1_mean, b->ln1_rstd, scale1, stride,
                                B, N, D);
  /* adaLN linear on SiLU(c) */
  be->linear_backward(a->d_small, G(o->ada_w), G(o->ada_b), a->d_ada, a->cond_act, W(o->ada_w), B, D, 6 * D);
  be->add(a->d_cond_act, a->d_cond_act, a->d_small, (size_t)B * D);
}

void dit_backward(dit_model *m, dit_acts *a, const float *d_out) {
  const dit_shape *s = &m->shape;
  const tpdiff_backend *be = m->be;
  int B = a->B, N = a->N, D = s->dim, P = s->channels * s->patch * s->patch, BN = B * N;

  /* final layer: unpatchify's backward is patchify */
  be->patchify(a->d_tokens, d_out, B, s->channels, a->T, s->height, s->width, s->patch);
  be->linear_backward(a->d_h, G(m->final_linear_w), G(m->final_linear_b), a->d_tokens, a->final_h, W(m->final_linear_w),
                    BN, D, P);
  be->fill_zero(a->d_x, sizeof(float) * (size_t)BN * D);
  be->fill_zero(a->d_final_ada, sizeof(float) * (size_t)B * 2 * D);
  be->layernorm_modulate_backward(a->d_x, a->d_final_ada, a->d_final_ada + D, a->d_h, a->x_final, a->final_mean,
                                a->final_rstd, a->final_ada + D, 2 * D, B, N, D);
  be->linear_backward(a->d_cond_act, G(m->final_ada_w), G(m->final_ada_b), a->d_final_ada, a->cond_act,
                    W(m->final_ada_w), B, D, 2 * D);

  if (m->grads_done) m->grads_done(m->grads_done_ctx, m->final_ada_w); /* final.adaLN, then final.linear */
  for (int l = s->depth - 1; l >= 0; l--) {
    /* BLOCKS: rerun the block's forward into the shared buffers; its output is the next block's
     * input (or x_final), whose stored value it rewrites bit for bit and which nothing reads again.
     * The last block's activations are still there from the forward. */
    if (a->recompute == DIT_RECOMPUTE_BLOCKS && l < s->depth - 1) dit_block_forward(m, a, l, a->blocks[l + 1].x_in);
    block_backward(m, a, l);
    if (m->grads_done) m->grads_done(m->grads_done_ctx, m->blocks[l].ada_w);
  }

  /* patch embedding (positions are fixed) */
  be->linear_backward(NULL, G(m->x_embed_w), G(m->x_embed_b), a->d_x, a->tokens, W(m->x_embed_w), BN, P, D);

  /* conditioning: c = t_mlp + E[y] + S[k], then SiLU */
  be->silu_backward(a->d_cond, a->d_cond_act, a->cond, (size_t)B * D);
  be->embedding_backward(G(m->stage_embed), a->d_cond, a->stage_index, B, D);
  if (s->classes > 0) be->embedding_backward(G(m->y_embed), a->d_cond, a->labels, B, D);
  be->linear_backward(a->d_t_act, G(m->t_mlp2_w), G(m->t_mlp2_b), a->d_cond, a->t_act, W(m->t_mlp2_w), B, D, D);
  be->silu_backward(a->d_t_act, a->d_t_act, a->t_hidden, (size_t)B * D);
  be->linear_backward(NULL, G(m->t_mlp0_w), G(m->t_mlp0_b), a->d_t_act, a->t_freq, W(m->t_mlp0_w), B,
                    DIT_TIME_FREQ_DIM, D);
}
