/* matmul.cu — Linear layers and the generic fp32 GEMM on cuBLASLt, with a cache of matmul plans.
 *
 * Row-major tensors go through cuBLASLt (column-major) by the usual transposition: a row-major
 * X[r, c] is the column-major X^T with the same leading dimension, so row-major C = A·B is computed
 * as column-major C^T = B^T·A^T with the operands swapped and no copies.
 *
 * Precision: CUBLAS_COMPUTE_32F (never the FAST_TF32 variants) and, in the heuristic query, a
 * numerical-implementation mask that excludes tensor-core kernels, so results agree with OpenBLAS
 * sgemm to fp32 rounding (~1e-6), not TF32's ~1e-3.
 *
 * bf16 mode (set_precision): a Linear layer multiplies bf16 operands on tensor cores with fp32
 * accumulation, fp32 compute type and fp32 output (A/B CUDA_R_16BF, C/D CUDA_R_32F,
 * CUBLAS_COMPUTE_32F). The weight is the bf16 copy of the master weights that AdamW writes
 * (master_weights.cu) when the weight lies in them, else (EMA weights while sampling, a test's
 * buffer, TPDIFF_BF16_WEIGHTS=cast) cast per call; the input and the output gradient are cast per
 * call into backend scratch buffers that grow to the largest layer and are then reused. The bias is
 * fused as a BIAS epilogue in fp32 (the bias type follows D, fp32) where cuBLASLt offers one, else
 * added by a separate fp32 kernel, as in fp32 mode. The backward of the MLP's second Linear
 * (linear_backward_gelu) applies the GELU derivative as a separate kernel after its d_in product,
 * as fp32 mode does (the exact twin of the CPU's). TPDIFF_DGELU=epilogue applies it in cuBLASLt's
 * DGELU epilogue instead, reading the GELU's fp32 input as the epilogue's auxiliary matrix: that
 * saves the kernel's three passes over B*N*4D floats (read d_in and the GELU input, write d_pre), but
 * on an H100 the base workload's bf16 step took 3-4% longer with it (98.1 against 95.4 ms at stage 2,
 * check_model's timing table: the epilogue's algorithm is slower than the plain product's), so it is
 * opt-in. The forward's twin, the MLP's first Linear with the GELU in
 * a GELU_AUX_BIAS epilogue (linear_gelu_forward: D = gelu(A B + bias), the pre-activation written
 * beside it as the auxiliary matrix), is opt-in, TPDIFF_GELU=epilogue: its GELU is cuBLASLt's, equal
 * to the GELU kernel's to rounding but not bit for bit, so train.recompute=cheap, which recomputes
 * the GELU with the kernel, would no longer give recompute=none's bits (check_model times both).
 *
 * Plans: a matmul descriptor, three layouts and the heuristic's algorithm cost a few microseconds
 * (the heuristic much more), so they are made once per shape and kept in a small open-addressing
 * hash table. The key holds everything the heuristic's answer depends on: transposes, sizes,
 * leading dimensions, batch count and strides, whether there is a bias, and the alignment of every
 * pointer (cuBLASLt assumes 256-byte alignment unless told otherwise, and the model passes
 * sub-tensors of one arena at arbitrary 4-byte offsets). The same shape always gets the same
 * algorithm, so results are reproducible from run to run. */
#include <cuda_bf16.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "kernels/cuda/cuda_internal.cuh"

namespace {

/* The epilogues with an auxiliary matrix: kAuxDgelu D = (A B) * gelu'(aux); kAuxGelu aux = A B (+ bias),
 * D = gelu(aux). */
enum AuxEpilogue : int32_t { kAuxNone = 0, kAuxDgelu = 1, kAuxGelu = 2 };

struct PlanKey {
  int32_t trans_a, trans_b, m, n, k, lda, ldb, ldc, batch, has_bias;
  int64_t stride_a, stride_b, stride_c;
  int32_t align_a, align_b, align_c, align_bias;
  int32_t in_bf16; /* A and B are bf16 (C stays fp32) */
  int32_t aux;     /* AuxEpilogue: an epilogue with an auxiliary matrix laid out like D, ld_aux */
  int32_t align_aux, ld_aux;
};
/* Keys are hashed and compared as bytes, so they must have no padding (whose bytes a copy need not
 * keep): 18 int32 and 3 int64 fields, 96 bytes, with the int64 at offset 40. */
static_assert(sizeof(PlanKey) == 96, "PlanKey must have no padding");

struct Plan {
  int used;
  PlanKey key;
  cublasLtMatmulDesc_t desc;
  cublasLtMatrixLayout_t layout_a, layout_b, layout_c;
  cublasLtMatmulAlgo_t algo;
  int has_algo;          /* 0: cuBLASLt offered no algorithm for this key (remembered, not asked again) */
  int noticed;           /* the fallback notice for this key was printed */
  cublasStatus_t status; /* the heuristic's (or a failed run's) status, for the notice */
};

constexpr int kPlanSlots = 1024;  /* power of two */
constexpr int kPlanMaxUsed = 768; /* beyond this the table is flushed (a run uses a few dozen shapes) */
Plan g_plans[kPlanSlots];
int g_plans_used = 0;
pthread_mutex_t g_plan_lock = PTHREAD_MUTEX_INITIALIZER;

/* Largest power of two (at most 256) that divides the address and, because every column and every
 * batch entry starts at such an offset, the leading dimension and batch stride in bytes. */
int32_t alignment_of(const void *p, long long ld, long long stride, int batch, unsigned elem_bytes = 4) {
  uint64_t bits = (uint64_t)(uintptr_t)p | 256u | ((uint64_t)ld * elem_bytes);
  if (batch > 1) bits |= (uint64_t)stride * elem_bytes;
  return (int32_t)(bits & (~bits + 1u));
}

uint64_t hash_key(const PlanKey &key) {
  const unsigned char *b = (const unsigned char *)&key;
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (size_t i = 0; i < sizeof key; i++) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

void destroy_plan(Plan *p) {
  if (p->layout_a) cublasLtMatrixLayoutDestroy(p->layout_a);
  if (p->layout_b) cublasLtMatrixLayoutDestroy(p->layout_b);
  if (p->layout_c) cublasLtMatrixLayoutDestroy(p->layout_c);
  if (p->desc) cublasLtMatmulDescDestroy(p->desc);
  memset(p, 0, sizeof *p);
}

bool make_layout(cublasLtMatrixLayout_t *layout, cudaDataType_t type, uint64_t rows, uint64_t cols, int64_t ld,
                 int batch, int64_t stride) {
  if (!CUBLAS_OK(cublasLtMatrixLayoutCreate(layout, type, rows, cols, ld))) return false;
  if (batch > 1) {
    int32_t count = batch;
    if (!CUBLAS_OK(cublasLtMatrixLayoutSetAttribute(*layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count)))
      return false;
    if (!CUBLAS_OK(cublasLtMatrixLayoutSetAttribute(*layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                                    sizeof stride)))
      return false;
  }
  return true;
}

/* Builds descriptors and asks the heuristic; `bias` and `aux` are set on the descriptor because the
 * heuristic reads their alignment. Returns false on an API error (recorded); a missing algorithm is
 * not an error here (plan->has_algo = 0). */
bool build_plan(Plan *p, const PlanKey &key, const float *bias, const float *aux) {
  memset(p, 0, sizeof *p);
  p->key = key;
  if (!CUBLAS_OK(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F))) return false;
  int32_t ta = key.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, tb = key.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  if (!CUBLAS_OK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta))) return false;
  if (!CUBLAS_OK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb))) return false;
  /* Fused bias: saves a separate pass over C (a read and a write of M·N floats); DGELU never has one. */
  uint32_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  if (key.aux == kAuxGelu)
    epilogue = key.has_bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX;
  else if (key.aux == kAuxDgelu)
    epilogue = CUBLASLT_EPILOGUE_DGELU;
  else if (key.has_bias)
    epilogue = CUBLASLT_EPILOGUE_BIAS;
  if (epilogue != CUBLASLT_EPILOGUE_DEFAULT &&
      !CUBLAS_OK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue)))
    return false;
  if (key.has_bias) {
    const void *bias_ptr = bias;
    if (!CUBLAS_OK(
            cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias_ptr, sizeof bias_ptr)))
      return false;
  }
  if (key.aux != kAuxNone) {
    const void *aux_ptr = aux;
    int64_t ld_aux = key.ld_aux;
    if (!CUBLAS_OK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux_ptr,
                                                  sizeof aux_ptr)))
      return false;
    if (!CUBLAS_OK(
            cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &ld_aux, sizeof ld_aux)))
      return false;
  }
  /* Stored shapes: op(A) is m x k, so A is stored k x m when transposed; likewise B. */
  const cudaDataType_t in_type = key.in_bf16 ? CUDA_R_16BF : CUDA_R_32F;
  if (!make_layout(&p->layout_a, in_type, key.trans_a ? key.k : key.m, key.trans_a ? key.m : key.k, key.lda, key.batch,
                   key.stride_a))
    return false;
  if (!make_layout(&p->layout_b, in_type, key.trans_b ? key.n : key.k, key.trans_b ? key.k : key.n, key.ldb, key.batch,
                   key.stride_b))
    return false;
  if (!make_layout(&p->layout_c, CUDA_R_32F, key.m, key.n, key.ldc, key.batch, key.stride_c)) return false;

  cublasLtMatmulPreference_t pref = NULL;
  if (!CUBLAS_OK(cublasLtMatmulPreferenceCreate(&pref))) return false;
  bool ok = true;
  uint64_t ws = g_tcu.lt_workspace_bytes;
  uint32_t align_a = (uint32_t)key.align_a, align_b = (uint32_t)key.align_b, align_c = (uint32_t)key.align_c;
  ok = ok &&
       CUBLAS_OK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
  ok = ok && CUBLAS_OK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a,
                                                            sizeof align_a));
  ok = ok && CUBLAS_OK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b,
                                                            sizeof align_b));
  ok = ok && CUBLAS_OK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_c,
                                                            sizeof align_c));
  ok = ok && CUBLAS_OK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_c,
                                                            sizeof align_c));
  if (ok) {
    /* First ask for plain FMA kernels only (no tensor cores: no TF32, no emulation); if cuBLASLt
     * has none for this case, take whatever it offers under CUBLAS_COMPUTE_32F. */
    uint64_t masks[2] = {~(uint64_t)CUBLASLT_NUMERICAL_IMPL_FLAGS_TENSOR_OP_MASK, ~(uint64_t)0};
    if (key.in_bf16) masks[0] = ~(uint64_t)0; /* bf16 is for the tensor cores: one question, not two */
    const int attempts = masks[0] == masks[1] ? 1 : 2;
    for (int attempt = 0; attempt < attempts && !p->has_algo && ok; attempt++) {
      ok = CUBLAS_OK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_IMPL_MASK, &masks[attempt],
                                                          sizeof masks[attempt]));
      if (!ok) break;
      cublasLtMatmulHeuristicResult_t result;
      memset(&result, 0, sizeof result);
      int found = 0;
      cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(g_tcu.lt, p->desc, p->layout_a, p->layout_b, p->layout_c,
                                                         p->layout_c, pref, 1, &result, &found);
      /* Any refusal (NOT_SUPPORTED = no algorithm, or a layout this cuBLASLt does not take) is not an
       * error: the caller falls back (plain GEMM + bias kernel, or the fallback kernel with a notice). */
      p->status = st == CUBLAS_STATUS_SUCCESS && found == 0 ? CUBLAS_STATUS_NOT_SUPPORTED : st; /* for the notice */
      if (st == CUBLAS_STATUS_SUCCESS && found > 0 && result.state == CUBLAS_STATUS_SUCCESS &&
          result.workspaceSize <= g_tcu.lt_workspace_bytes) {
        p->algo = result.algo;
        p->has_algo = 1;
      }
    }
  }
  cublasLtMatmulPreferenceDestroy(pref);
  return ok;
}

void flush_plans(void) {
  for (int i = 0; i < kPlanSlots; i++)
    if (g_plans[i].used) destroy_plan(&g_plans[i]);
  g_plans_used = 0;
}

/* The cached plan for `key`, built on first use. NULL on an API error (recorded). Lock held. */
Plan *find_plan(const PlanKey &key, const float *bias, const float *aux = NULL) {
  uint64_t h = hash_key(key);
  for (int probe = 0; probe < kPlanSlots; probe++) {
    Plan *p = &g_plans[(h + (uint64_t)probe) & (kPlanSlots - 1)];
    if (!p->used) break;
    if (memcmp(&p->key, &key, sizeof key) == 0) return p;
  }
  if (g_plans_used >= kPlanMaxUsed) flush_plans();
  Plan fresh;
  if (!build_plan(&fresh, key, bias, aux)) {
    destroy_plan(&fresh);
    return NULL;
  }
  fresh.used = 1;
  for (int probe = 0; probe < kPlanSlots; probe++) {
    Plan *p = &g_plans[(h + (uint64_t)probe) & (kPlanSlots - 1)];
    if (!p->used) {
      *p = fresh;
      g_plans_used++;
      return p;
    }
  }
  destroy_plan(&fresh); /* unreachable: the table is never more than 3/4 full */
  TCU_FAIL("matmul plan table full");
  return NULL;
}

/* Runs a plan; returns cuBLASLt's status without recording it (the caller decides whether a failure
 * is an error or a reason to fall back). */
cublasStatus_t run_plan(Plan *p, float alpha, const void *A, const void *B, float beta, float *C, const float *bias,
                        const float *aux = NULL) {
  if (p->key.has_bias) {
    const void *bias_ptr = bias; /* same alignment as when planned (part of the key) */
    cublasStatus_t st =
        cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias_ptr, sizeof bias_ptr);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
  }
  if (p->key.aux != kAuxNone) {
    const void *aux_ptr = aux; /* likewise */
    cublasStatus_t st =
        cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux_ptr, sizeof aux_ptr);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
  }
  return cublasLtMatmul(g_tcu.lt, p->desc, &alpha, A, p->layout_a, B, p->layout_b, &beta, C, p->layout_c, C,
                        p->layout_c, &p->algo, g_tcu.lt_workspace, g_tcu.lt_workspace_bytes, 0);
}

/* Last resort where cuBLASLt offers no algorithm at all (never seen for fp32; kept so an odd shape
 * is slow rather than wrong or failing): one thread per output element, fp32 accumulation. */
__device__ __forceinline__ float as_float(float v) { return v; }
__device__ __forceinline__ float as_float(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__global__ void fallback_gemm_kernel(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const T *A, int lda,
                                     long long stride_a, const T *B, int ldb, long long stride_b, float beta, float *C,
                                     int ldc, long long stride_c, int batch, const float *bias) {
  const size_t total = (size_t)m * (size_t)n * (size_t)batch;
  for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total; e += (size_t)gridDim.x * blockDim.x) {
    const int i = (int)(e % (size_t)m), j = (int)(e / (size_t)m % (size_t)n);
    const long long bi = (long long)(e / ((size_t)m * (size_t)n));
    const T *a = A + bi * stride_a, *b = B + bi * stride_b;
    float s = 0.0f;
    for (int p = 0; p < k; p++) {
      float av = as_float(trans_a ? a[p + (long long)i * lda] : a[i + (long long)p * lda]);
      float bv = as_float(trans_b ? b[j + (long long)p * ldb] : b[p + (long long)j * ldb]);
      s += av * bv;
    }
    float *c = C + bi * stride_c + i + (long long)j * ldc;
    float r = alpha * s;
    if (beta != 0.0f) r += beta * *c;
    if (bias) r += bias[i];
    *c = r;
  }
}

/* Column-major C[m, n] (+ batch) += bias[row]: the fallback when no BIAS-epilogue algorithm exists. */
__global__ void add_bias_columns_kernel(float *C, const float *bias, int m, int n, int ldc, long long stride_c,
                                        int batch) {
  long long columns = (long long)n * batch;
  for (long long col = blockIdx.y; col < columns; col += gridDim.y) {
    long long bi = col / n, j = col % n;
    float *c = C + bi * stride_c + j * (long long)ldc;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < m; i += gridDim.x * blockDim.x) c[i] += bias[i];
  }
}

/* k == 0: C = beta C (+ bias); cuBLASLt does not take empty inner dimensions. */
__global__ void scale_columns_kernel(float *C, const float *bias, float beta, int m, int n, int ldc, long long stride_c,
                                     int batch) {
  long long columns = (long long)n * batch;
  for (long long col = blockIdx.y; col < columns; col += gridDim.y) {
    long long bi = col / n, j = col % n;
    float *c = C + bi * stride_c + j * (long long)ldc;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < m; i += gridDim.x * blockDim.x)
      c[i] = (beta == 0.0f ? 0.0f : beta * c[i]) + (bias ? bias[i] : 0.0f);
  }
}

dim3 columns_grid(int m, long long columns) {
  long long gx = tcu_ceil_div(m, TCU_THREADS);
  if (gx > 64) gx = 64;
  long long gy = columns < 65535 ? columns : 65535;
  return dim3((unsigned)(gx > 0 ? gx : 1), (unsigned)(gy > 0 ? gy : 1));
}

/* out[i] = bf16(in[i]), round to nearest even. */
__global__ void cast_bf16_kernel(__nv_bfloat16 *out, const float *in, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    out[i] = __float2bfloat16_rn(in[i]);
}

}  // namespace

bool tcu_cast_bf16(__nv_bfloat16 *out, const float *in, size_t n) {
  if (n == 0) return true;
  TCU_LAUNCH(tcu_grid(n), TCU_THREADS, 0, cast_bf16_kernel)(out, in, n);
  return LAUNCH_OK("cast_bf16_kernel");
}

namespace {

/* A bf16 copy of n floats in scratch `slot`; NULL (error recorded) on failure. */
const __nv_bfloat16 *to_bf16(tcu_scratch_slot slot, const float *in, size_t n) {
  __nv_bfloat16 *out = (__nv_bfloat16 *)tcu_scratch(slot, (n > 0 ? n : 1) * sizeof(__nv_bfloat16));
  if (!out) return NULL;
  return tcu_cast_bf16(out, in, n) ? out : NULL;
}

/* The bf16 weight of a Linear: the master weights' copy where it covers `weight`, else a cast. */
const __nv_bfloat16 *bf16_weight(const float *weight, size_t n) {
  const __nv_bfloat16 *w16 = tcu_master_bf16_for_matmul(weight, n);
  return w16 ? w16 : to_bf16(TCU_SCRATCH_BF16_W, weight, n);
}

/* The plan key of a product (without bias or epilogue). */
PlanKey gemm_key(bool in_bf16, bool trans_a, bool trans_b, int m, int n, int k, const void *A, int lda,
                 long long stride_a, const void *B, int ldb, long long stride_b, const float *C, int ldc,
                 long long stride_c, int batch) {
  PlanKey key;
  memset(&key, 0, sizeof key); /* padding too: the key is hashed and compared as bytes */
  key.trans_a = trans_a;
  key.trans_b = trans_b;
  key.m = m;
  key.n = n;
  key.k = k;
  key.lda = lda;
  key.ldb = ldb;
  key.ldc = ldc;
  key.batch = batch;
  key.stride_a = batch > 1 ? stride_a : 0;
  key.stride_b = batch > 1 ? stride_b : 0;
  key.stride_c = batch > 1 ? stride_c : 0;
  const unsigned in_bytes = in_bf16 ? 2u : 4u;
  key.in_bf16 = in_bf16;
  key.align_a = alignment_of(A, lda, stride_a, batch, in_bytes);
  key.align_b = alignment_of(B, ldb, stride_b, batch, in_bytes);
  key.align_c = alignment_of(C, ldc, stride_c, batch);
  return key;
}

/* tcu_gemm with A and B of either type (in_bf16: __nv_bfloat16, else float); C is fp32. */
bool gemm_impl(bool in_bf16, bool trans_a, bool trans_b, int m, int n, int k, float alpha, const void *A, int lda,
               long long stride_a, const void *B, int ldb, long long stride_b, float beta, float *C, int ldc,
               long long stride_c, int batch, const float *bias) {
  if (m < 0 || n < 0 || k < 0 || batch < 0) {
    TCU_FAIL("gemm: negative size m=%d n=%d k=%d batch=%d", m, n, k, batch);
    return false;
  }
  if (m == 0 || n == 0 || batch == 0) return true;
  if (k == 0) {
    TCU_LAUNCH(columns_grid(m, (long long)n * batch), TCU_THREADS, 0, scale_columns_kernel)
    (C, bias, beta, m, n, ldc, stride_c, batch);
    return LAUNCH_OK("scale_columns_kernel");
  }
  const PlanKey key =
      gemm_key(in_bf16, trans_a, trans_b, m, n, k, A, lda, stride_a, B, ldb, stride_b, C, ldc, stride_c, batch);

  pthread_mutex_lock(&g_plan_lock);
  bool done = false, bias_done = bias == NULL, use_fallback = false;
  if (bias) {
    PlanKey with_bias = key;
    with_bias.has_bias = 1;
    with_bias.align_bias = alignment_of(bias, 0, 0, 1);
    Plan *p = find_plan(with_bias, bias);
    if (p && p->has_algo) {
      done = bias_done = run_plan(p, alpha, A, B, beta, C, bias) == CUBLAS_STATUS_SUCCESS;
      /* refused at run time: never again for this key; plain GEMM + bias kernel instead */
      if (!done) p->has_algo = 0;
    }
  }
  if (!done) {
    Plan *p = find_plan(key, NULL);
    if (!p) {
      pthread_mutex_unlock(&g_plan_lock);
      return false; /* API error, recorded */
    }
    if (p->has_algo) {
      cublasStatus_t st = run_plan(p, alpha, A, B, beta, C, NULL);
      if (st != CUBLAS_STATUS_SUCCESS) {
        /* refused at run time: remembered, and this and later calls take the fallback kernel */
        p->has_algo = 0;
        p->status = st;
      }
    }
    if (!p->has_algo) {
      use_fallback = true;
      if (!p->noticed) {
        p->noticed = 1;
        fprintf(stderr,
                "tpdiff cuda: cuBLASLt has no %s algorithm for gemm m=%d n=%d k=%d lda=%d ldb=%d ldc=%d batch=%d "
                "trans=%c%c (%s); using a slow fallback kernel\n",
                in_bf16 ? "bf16" : "fp32", m, n, k, lda, ldb, ldc, batch, trans_a ? 'T' : 'N', trans_b ? 'T' : 'N',
                cublasLtGetStatusName(p->status));
      }
    }
  }
  pthread_mutex_unlock(&g_plan_lock);
  if (use_fallback) {
    size_t total = (size_t)m * (size_t)n * (size_t)batch;
    if (in_bf16)
      TCU_LAUNCH(tcu_grid(total), TCU_THREADS, 0, fallback_gemm_kernel<__nv_bfloat16>)
      (trans_a, trans_b, m, n, k, alpha, (const __nv_bfloat16 *)A, lda, stride_a, (const __nv_bfloat16 *)B, ldb,
       stride_b, beta, C, ldc, stride_c, batch, bias_done ? NULL : bias);
    else
      TCU_LAUNCH(tcu_grid(total), TCU_THREADS, 0, fallback_gemm_kernel<float>)
      (trans_a, trans_b, m, n, k, alpha, (const float *)A, lda, stride_a, (const float *)B, ldb, stride_b, beta, C, ldc,
       stride_c, batch, bias_done ? NULL : bias);
    if (!LAUNCH_OK("fallback_gemm_kernel")) return false;
    bias_done = true;
  }
  if (!bias_done) {
    TCU_LAUNCH(columns_grid(m, (long long)n * batch), TCU_THREADS, 0, add_bias_columns_kernel)
    (C, bias, m, n, ldc, stride_c, batch);
    if (!LAUNCH_OK("add_bias_columns_kernel")) return false;
  }
  return true;
}

/* A bf16 product C[m, n] (column-major, ld ldc) = op(A) B with an auxiliary-matrix epilogue, aux laid
 * out like C: kAuxDgelu C = (A B) * gelu'(aux) (A not transposed, no bias); kAuxGelu aux = op(A) B +
 * bias (bias may be NULL), C = gelu(aux) (aux is then written, through cuBLASLt's untyped pointer).
 * Returns 1 when done; 0 when cuBLASLt offers no such
 * algorithm or refuses it at run time (remembered for the shape, with a one-line notice; the caller
 * then runs the plain product and the GELU kernel, which overwrite whatever was written); -1 on an
 * API error (recorded). */
int gemm_bf16_aux(AuxEpilogue kind, bool trans_a, int m, int n, int k, const __nv_bfloat16 *A, int lda,
                  const __nv_bfloat16 *B, int ldb, float *C, int ldc, const float *bias, const float *aux) {
  PlanKey key = gemm_key(true, trans_a, false, m, n, k, A, lda, 0, B, ldb, 0, C, ldc, 0, 1);
  key.aux = kind;
  key.ld_aux = ldc;
  key.align_aux = alignment_of(aux, ldc, 0, 1);
  if (bias) {
    key.has_bias = 1;
    key.align_bias = alignment_of(bias, 0, 0, 1);
  }
  pthread_mutex_lock(&g_plan_lock);
  Plan *p = find_plan(key, bias, aux);
  if (!p) {
    pthread_mutex_unlock(&g_plan_lock);
    return -1;
  }
  int done = 0;
  if (p->has_algo) {
    cublasStatus_t st = run_plan(p, 1.0f, A, B, 0.0f, C, bias, aux);
    if (st == CUBLAS_STATUS_SUCCESS) {
      done = 1;
    } else {
      p->has_algo = 0;
      p->status = st;
    }
  }
  if (!done && !p->noticed) {
    p->noticed = 1;
    fprintf(stderr,
            "tpdiff cuda: cuBLASLt has no bf16 %s epilogue for m=%d n=%d k=%d ldc=%d (%s); the GELU%s runs as its "
            "own kernel\n",
            kind == kAuxDgelu ? "DGELU" : bias ? "GELU_AUX_BIAS" : "GELU_AUX", m, n, k, ldc,
            cublasLtGetStatusName(p->status), kind == kAuxDgelu ? " backward" : "");
  }
  pthread_mutex_unlock(&g_plan_lock);
  return done;
}

/* Whether bf16 mode applies gelu' in the DGELU epilogue: only with TPDIFF_DGELU=epilogue (see the
 * top of this file for why it is opt-in); unset, empty or "kernel" run the separate GELU backward
 * kernel; anything else is an error (recorded), and the kernel runs. Read at every call, like
 * TPDIFF_ATTN, so check_model times both in one process. */
bool dgelu_in_epilogue(void) {
  const char *v = getenv("TPDIFF_DGELU");
  if (!v || !v[0] || !strcmp(v, "kernel")) return false;
  if (!strcmp(v, "epilogue")) return true;
  TCU_FAIL("TPDIFF_DGELU=%.40s: expected \"kernel\" (the default) or \"epilogue\"", v);
  return false;
}

/* Whether bf16 mode computes linear_gelu_forward's GELU in the GELU_AUX_BIAS epilogue: only with
 * TPDIFF_GELU=epilogue (see the top of this file for why it is opt-in); unset, empty or "kernel" run
 * the GELU kernel after the Linear; anything else is an error (recorded), and the kernel runs. */
bool gelu_in_epilogue(void) {
  const char *v = getenv("TPDIFF_GELU");
  if (!v || !v[0] || !strcmp(v, "kernel")) return false;
  if (!strcmp(v, "epilogue")) return true;
  TCU_FAIL("TPDIFF_GELU=%.40s: expected \"kernel\" (the default) or \"epilogue\"", v);
  return false;
}

}  // namespace

bool tcu_gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *A, int lda, long long stride_a,
              const float *B, int ldb, long long stride_b, float beta, float *C, int ldc, long long stride_c, int batch,
              const float *bias) {
  return gemm_impl(false, trans_a, trans_b, m, n, k, alpha, A, lda, stride_a, B, ldb, stride_b, beta, C, ldc, stride_c,
                   batch, bias);
}

/* ---- Linear (PyTorch layout, weight [N, K]) -------------------------------------------------- */

void tcu_linear_forward(float *out, const float *in, const float *weight, const float *bias, int M, int K, int N) {
  if (M < 0 || K < 0 || N < 0) {
    TCU_FAIL("linear_forward: negative size M=%d K=%d N=%d", M, K, N);
    return;
  }
  /* out^T[N, M] = W (op T of the stored K x N column-major W^T) · in^T (stored K x M), + bias[N] per column */
  if (g_tcu.bf16 && M > 0 && N > 0 && K > 0) {
    const __nv_bfloat16 *w16 = bf16_weight(weight, (size_t)N * K);
    const __nv_bfloat16 *in16 = w16 ? to_bf16(TCU_SCRATCH_BF16_IN, in, (size_t)M * K) : NULL;
    if (in16) gemm_impl(true, true, false, N, M, K, 1.0f, w16, K, 0, in16, K, 0, 0.0f, out, N, 0, 1, bias);
    return;
  }
  tcu_gemm(true, false, N, M, K, 1.0f, weight, K > 0 ? K : 1, 0, in, K > 0 ? K : 1, 0, 0.0f, out, N > 0 ? N : 1, 0, 1,
           bias);
}

/* The MLP's first Linear and its GELU: in bf16 mode with TPDIFF_GELU=epilogue one product with the
 * GELU_AUX_BIAS epilogue (out = D, pre = the auxiliary matrix, whose leading dimension N must be a
 * multiple of 8); else, and where cuBLASLt has no such algorithm, linear_forward into pre and the GELU
 * kernel into out, the exact twin of the CPU's. */
void tcu_linear_gelu_forward(float *pre, float *out, const float *in, const float *weight, const float *bias, int M,
                             int K, int N) {
  if (M < 0 || K < 0 || N < 0) {
    TCU_FAIL("linear_gelu_forward: negative size M=%d K=%d N=%d", M, K, N);
    return;
  }
  /* read first, so that a bad TPDIFF_GELU is refused in either precision and at any shape */
  const bool epilogue = gelu_in_epilogue();
  if (g_tcu.bf16 && epilogue && M > 0 && N > 0 && K > 0 && N % 8 == 0) {
    const __nv_bfloat16 *w16 = bf16_weight(weight, (size_t)N * K);
    const __nv_bfloat16 *in16 = w16 ? to_bf16(TCU_SCRATCH_BF16_IN, in, (size_t)M * K) : NULL;
    if (!in16) return;
    /* out^T[N, M] = gelu(W (op T of the stored K x N W^T) · in^T + bias), pre^T beside it */
    int r = gemm_bf16_aux(kAuxGelu, true, N, M, K, w16, K, in16, K, out, N, bias, pre);
    if (r != 0) return; /* done, or an API error (recorded) */
    /* no such epilogue: linear_forward's bf16 product on the copies just made, then the kernel */
    if (gemm_impl(true, true, false, N, M, K, 1.0f, w16, K, 0, in16, K, 0, 0.0f, pre, N, 0, 1, bias))
      tcu_gelu_forward(out, pre, (size_t)M * (size_t)N);
    return;
  }
  tcu_linear_forward(pre, in, weight, bias, M, K, N);
  tcu_gelu_forward(out, pre, (size_t)M * (size_t)N);
}

namespace {

/* linear_backward, and with gelu_pre given linear_backward_gelu: d_in is then d_pre, times gelu'(gelu_pre). */
void linear_backward_impl(float *d_in, float *d_weight, float *d_bias, const float *d_out, const float *in,
                          const float *weight, const float *gelu_pre, int M, int K, int N) {
  const char *op = gelu_pre ? "linear_backward_gelu" : "linear_backward";
  if (M < 0 || K < 0 || N < 0) {
    TCU_FAIL("%s: negative size M=%d K=%d N=%d", op, M, K, N);
    return;
  }
  if (gelu_pre && !d_in) {
    TCU_FAIL("%s: d_pre is NULL", op);
    return;
  }
  int ldk = K > 0 ? K : 1, ldn = N > 0 ? N : 1;
  bool fused = false; /* gelu' applied in the d_in product's epilogue */
  /* read first, so that a bad TPDIFF_DGELU is refused in either precision */
  const bool epilogue = gelu_pre && dgelu_in_epilogue();
  if (g_tcu.bf16 && M > 0 && N > 0 && K > 0) {
    /* the same two products on bf16 copies; the bias gradient below sums the fp32 d_out */
    const __nv_bfloat16 *dout16 = to_bf16(TCU_SCRATCH_BF16_DOUT, d_out, (size_t)M * N);
    if (!dout16) return;
    if (d_in) {
      const __nv_bfloat16 *w16 = bf16_weight(weight, (size_t)N * K);
      if (!w16) return;
      /* the epilogue's auxiliary matrix needs a leading dimension divisible by 8 (cublasLt.h) */
      if (epilogue && ldk % 8 == 0) {
        int r = gemm_bf16_aux(kAuxDgelu, false, K, M, N, w16, ldk, dout16, ldn, d_in, ldk, NULL, gelu_pre);
        if (r < 0) return;
        fused = r == 1;
      }
      if (!fused &&
          !gemm_impl(true, false, false, K, M, N, 1.0f, w16, ldk, 0, dout16, ldn, 0, 0.0f, d_in, ldk, 0, 1, NULL))
        return;
    }
    const __nv_bfloat16 *in16 = to_bf16(TCU_SCRATCH_BF16_IN, in, (size_t)M * K);
    if (!in16 || !gemm_impl(true, false, true, K, N, M, 1.0f, in16, ldk, 0, dout16, ldn, 0, 1.0f, d_weight, ldk, 0, 1,
                            NULL))
      return;
  } else {
    /* d_in^T[K, M] = W^T (stored K x N) · d_out^T (stored N x M); overwritten (beta 0) */
    if (d_in && !tcu_gemm(false, false, K, M, N, 1.0f, weight, ldk, 0, d_out, ldn, 0, 0.0f, d_in, ldk, 0, 1, NULL))
      return;
    /* d_weight^T[K, N] += in^T (stored K x M) · d_out (op T of the stored N x M); accumulated (beta 1) */
    if (!tcu_gemm(false, true, K, N, M, 1.0f, in, ldk, 0, d_out, ldn, 0, 1.0f, d_weight, ldk, 0, 1, NULL)) return;
  }
  /* d_bias[N] += column sums of d_out: deterministic chunked sum (reduce.cu), not atomics */
  if (d_bias) {
    tcu_colsum_source src = {TCU_COLSUM_ROWS, d_out, NULL, NULL, NULL};
    tcu_colsum_accumulate(src, 1, M, N, d_bias, NULL, 0);
  }
  /* the GELU's backward as its own kernel: fp32 mode, bf16's default, and TPDIFF_DGELU=epilogue where
   * K is not a multiple of 8 or no algorithm offers the epilogue */
  if (gelu_pre && !fused) tcu_gelu_backward(d_in, d_in, gelu_pre, (size_t)M * (size_t)K);
}

}  // namespace

void tcu_linear_backward(float *d_in, float *d_weight, float *d_bias, const float *d_out, const float *in,
                         const float *weight, int M, int K, int N) {
  linear_backward_impl(d_in, d_weight, d_bias, d_out, in, weight, NULL, M, K, N);
}

void tcu_linear_backward_gelu(float *d_pre, float *d_weight, float *d_bias, const float *d_out, const float *in,
                              const float *weight, const float *pre, int M, int K, int N) {
  linear_backward_impl(d_pre, d_weight, d_bias, d_out, in, weight, pre, M, K, N);
}
