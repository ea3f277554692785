/* kernels.h — the only door to arithmetic in tpdiff.
 *
 * Every numeric op the model, the pyramid math and the trainer need is declared here; kernels/cpu
 * implements it in fp32 with OpenBLAS and OpenMP (the executable specification), and a GPU backend
 * must compute the same function. Conventions, unless a contract says otherwise:
 *   - tensors are dense, row-major, fp32; the caller owns every buffer;
 *   - activations are [B, N, D] (clips, tokens, channels);
 *   - a parameter gradient argument ("d_weight", "d_bias", "d_shift", ...) is ACCUMULATED into
 *     (+=), so microbatches add into one flat gradient buffer; an activation gradient is
 *     OVERWRITTEN unless its name says "accumulate";
 *   - per-clip conditioning rows (adaLN shift/scale/gate) are read with a row stride, so the
 *     chunks of one [B, 6D] adaLN output are used in place without copies.
 */
#ifndef TPDIFF_KERNELS_H
#define TPDIFF_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* ---- matmul (PyTorch Linear layout: weight [N_out, K_in]) ---------------------------------- */

/* out[M, N] = in[M, K] · weight[N, K]^T + bias[N]; bias may be NULL. */
void k_linear_forward(float *out, const float *in, const float *weight, const float *bias, int M, int K,
                      int N);
/* The DiT MLP's first Linear and the GELU after it, in one call: pre[M, N] = in · weight^T + bias
 * (bias may be NULL), out[M, N] = gelu(pre) as k_gelu_forward computes it. out may alias neither pre
 * nor in. A backend may compute out in the matmul's epilogue (CUDA's bf16 mode with
 * TPDIFF_GELU=epilogue), whose GELU then agrees with k_gelu_forward's to rounding, not bit for bit. */
void k_linear_gelu_forward(float *pre, float *out, const float *in, const float *weight, const float *bias, int M,
                           int K, int N);
/* d_in[M, K] = d_out · weight (skipped when d_in is NULL); d_weight[N, K] += d_out^T · in;
 * d_bias[N] += column sums of d_out (skipped when NULL). */
void k_linear_backward(float *d_in, float *d_weight, float *d_bias, const float *d_out, const float *in,
                       const float *weight, int M, int K, int N);

/* The backward of a Linear whose input is in = gelu(pre) (the DiT MLP's second layer), in one call:
 * as k_linear_backward, except that it writes d_pre[M, K] = (d_out · weight) * gelu'(pre), the
 * gradient w.r.t. the GELU's input, where k_linear_backward writes d_in. d_pre may alias neither pre
 * nor d_out. A backend may apply gelu' in the matmul's epilogue (CUDA's bf16 mode does). */
void k_linear_backward_gelu(float *d_pre, float *d_weight, float *d_bias, const float *d_out, const float *in,
                            const float *weight, const float *pre, int M, int K, int N);

/* ---- layernorm (no affine) fused with adaLN modulate ----------------------------------------- */

/* out[b,n,:] = (x[b,n,:] - mean) * rstd * (1 + scale[b*cond_stride + :]) + shift[b*cond_stride + :].
 * Saves mean[B*N] and rstd[B*N] for the backward. */
void k_layernorm_modulate_forward(float *out, float *mean, float *rstd, const float *x, const float *shift,
                                  const float *scale, int cond_stride, int B, int N, int D, float eps);
/* d_x += gradient w.r.t. x; d_shift[b*cond_stride + :] += sum_n d_out; d_scale[...] += sum_n d_out*xhat. */
void k_layernorm_modulate_backward(float *d_x_accumulate, float *d_shift, float *d_scale, const float *d_out,
                                   const float *x, const float *mean, const float *rstd, const float *scale,
                                   int cond_stride, int B, int N, int D);

/* ---- pointwise -------------------------------------------------------------------------------- */

/* GELU, tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). out may alias in. */
void k_gelu_forward(float *out, const float *in, size_t n);
/* d_in = d_out * gelu'(in). d_in may alias d_out. */
void k_gelu_backward(float *d_in, const float *d_out, const float *in, size_t n);
/* SiLU: x * sigmoid(x). out may alias in. */
void k_silu_forward(float *out, const float *in, size_t n);
void k_silu_backward(float *d_in, const float *d_out, const float *in, size_t n);

/* out[b,n,:] = x[b,n,:] + gate[b*gate_stride + :] * f[b,n,:]. out may alias x. */
void k_gated_residual_forward(float *out, const float *x, const float *f, const float *gate, int gate_stride,
                              int B, int N, int D);
/* d_f = d_out * gate (broadcast over n); d_gate[b*gate_stride + :] += sum_n d_out * f.
 * (d_x is d_out itself: the residual passes it through unchanged.) */
void k_gated_residual_backward(float *d_f, float *d_gate, const float *d_out, const float *f, const float *gate,
                               int gate_stride, int B, int N, int D);

/* x[b,n,:] += rows[n,:] for every b (position tables). */
void k_add_rows_broadcast(float *x, const float *rows, int B, int N, int D);
/* out[i] = a[i] + b[i]. out may alias a or b. */
void k_add(float *out, const float *a, const float *b, size_t n);
/* x[i] *= s. */
void k_scale(float *x, float s, size_t n);

/* ---- attention -------------------------------------------------------------------------------- */

/* Full (non-causal) multi-head softmax attention over all N tokens of each clip.
 * qkv[B, N, 3D]: columns [0,D) q, [D,2D) k, [2D,3D) v; head h owns columns h*D/H .. of each.
 * out[B, N, D] (heads concatenated); probs[B, H, N, N] saves softmax(q k^T / sqrt(D/H)). */
void k_attention_forward(float *out, float *probs, const float *qkv, int B, int N, int D, int H);
/* d_qkv[B, N, 3D] = gradient of out w.r.t. qkv; scratch holds N*N floats. out and probs are what
 * the forward of this qkv wrote; out may be NULL. The CPU reads probs only; a backend that keeps less
 * than the probabilities may use out (CUDA's flash backward takes D_i = dO_i · O_i from it instead of
 * rerunning the forward). */
void k_attention_backward(float *d_qkv, const float *d_out, const float *qkv, const float *out, const float *probs,
                          float *scratch, int B, int N, int D, int H);
/* Bytes of scratch k_attention_backward needs. */
size_t k_attention_scratch_floats(int N);

/* ---- patches ---------------------------------------------------------------------------------- */

/* tokens[B, T*(H/p)*(W/p), C*p*p] from x[B, C, T, H, W]: tokens ordered (frame, row, col), each token
 * the C*p*p values of one patch in (c, py, px) order. A pure permutation, so its backward is
 * k_unpatchify and vice versa. */
void k_patchify(float *tokens, const float *x, int B, int C, int T, int H, int W, int p);
void k_unpatchify(float *x, const float *tokens, int B, int C, int T, int H, int W, int p);

/* ---- sin-cos tables --------------------------------------------------------------------------- */

/* out[n, d] = [sin(q_n w_0 .. q_n w_{d/2-1}), cos(q_n w_0 .. q_n w_{d/2-1})], w_i = 10000^(-2i/d).
 * d must be even. Computed in double, stored as float. */
void k_sincos_table(float *out, const double *positions, int n, int d);

/* ---- embeddings ------------------------------------------------------------------------------- */

/* out[b, :] += table[index[b], :]. */
void k_embedding_add(float *out, const float *table, const int *index, int B, int D);
/* d_table[index[b], :] += d_out[b, :]. */
void k_embedding_backward(float *d_table, const float *d_out, const int *index, int B, int D);

/* ---- loss ------------------------------------------------------------------------------------- */

/* Returns mean((pred - target)^2) over n elements (accumulated in double) and writes
 * d_pred = 2 (pred - target) * grad_scale / n, where grad_scale lets a caller weight microbatches. */
double k_mse_loss(float *d_pred, const float *pred, const float *target, size_t n, float grad_scale);

/* ---- optimizer -------------------------------------------------------------------------------- */

/* One AdamW step (decoupled weight decay, as torch.optim.AdamW) on n parameters:
 * p *= 1 - lr*wd; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 * p -= lr / (1 - b1^step) * m / (sqrt(v) / sqrt(1 - b2^step) + eps). step counts from 1. */
void k_adamw_step(float *param, const float *grad, float *m, float *v, size_t n, float lr, float beta1,
                  float beta2, float eps, float weight_decay, int step);
/* Sum of squares in double (for the global gradient norm). */
double k_sum_squares(const float *x, size_t n);

/* ---- frame-axis operators of the temporal pyramid (MATH.md section 2) ------------------------
 * Videos are [B, C, T, H, W]; every operator acts on the frame axis only, identically for each of
 * the bc = B·C (clip, channel) pairs and each of the plane = H·W pixels. T is the INPUT frame count. */

/* Down: out[.., j, ..] = (in[2j] + in[2j+1]) / 2; out has T/2 frames (data pyramid). */
void k_frames_pair_mean(float *out, const float *in, int bc, int T, int plane);
/* Dn: out[j] = (in[2j] + in[2j+1]) / sqrt 2 (noise pyramid, keeps unit variance). */
void k_frames_pair_sum_norm(float *out, const float *in, int bc, int T, int plane);
/* Hi: out[j] = (in[2j] - in[2j+1]) / sqrt 2 (the detail Dn discards). */
void k_frames_pair_diff_norm(float *out, const float *in, int bc, int T, int plane);
/* Up: out[2j] = out[2j+1] = in[j]; out has 2T frames. */
void k_frames_repeat(float *out, const float *in, int bc, int T, int plane);
/* A: out[2j] = in[j], out[2j+1] = -in[j]; out has 2T frames. */
void k_frames_antisym(float *out, const float *in, int bc, int T, int plane);

/* Per-clip linear combination of three tensors, coefficients in double rounded once to float:
 * out[b, i] = c[3b] * x[b, i] + c[3b+1] * y[b, i] + c[3b+2] * z[b, i], for i < clip_elems.
 * Evaluated as ((c0 x) + (c1 y)) + (c2 z) in float, so a zero coefficient with z == 0 adds
 * nothing and K = 1 reproduces the vanilla two-term formulas bit for bit. out may alias x, y or z;
 * y or z may be NULL when its coefficient is 0 for every clip. */
void k_combine3_per_clip(float *out, const float *x, const float *y, const float *z, const double *c, int B,
                         size_t clip_elems);

/* ---- random numbers (counter-based, so a stream is reproducible at any thread count) ---------- */

/* Philox4x32-10: out[i] for i in [0, n) is a deterministic function of (key, stream, first + i). */
void k_fill_normal(float *out, size_t n, uint64_t key, uint64_t stream, uint64_t first);
/* Uniform in [0, 1) (24-bit mantissa, never 1.0). */
void k_fill_uniform(float *out, size_t n, uint64_t key, uint64_t stream, uint64_t first);

/* ---- threads ---------------------------------------------------------------------------------- */

/* Number of threads the CPU kernels use (OpenMP; OpenBLAS follows it). */
int k_num_threads(void);

#endif
