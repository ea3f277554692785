/* emu_cublaslt.cc — cuBLASLt's matmul (include/cublasLt.h) on the CPU, for the emulated backend.
 *
 * D = epilogue(alpha op(A) op(B) + beta C), column-major: element (r, c) of a matrix with leading
 * dimension ld is at [r + c ld], batch i at + i stride. The stored shape of A is m x k (k x m when
 * transposed), of B k x n (n x k), of C and D m x n; a layout that does not agree is refused with
 * CUBLAS_STATUS_INVALID_VALUE, as cuBLASLt refuses it. Products are summed in float64 and rounded
 * once (cuBLASLt's order is its own; the checks compare at limits that allow any order). Epilogues:
 * BIAS adds bias[r]; GELU_AUX(_BIAS) stores the pre-activation t in aux (leading dimension aux_ld)
 * and writes gelu(t), the tanh form; DGELU multiplies by gelu'(aux). The heuristic offers one
 * algorithm, which remembers the alignments the preference promised: a matmul whose pointers are
 * less aligned than promised fails, as it may on a GPU. */
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct cublasLtContext {
  int unused;
};
struct cublasLtMatmulDescOpaque {
  int32_t trans_a = CUBLAS_OP_N, trans_b = CUBLAS_OP_N;
  uint32_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  const void *bias = nullptr;
  const void *aux = nullptr;
  int64_t aux_ld = 0;
};
struct cublasLtMatrixLayoutOpaque {
  cudaDataType_t type;
  uint64_t rows, cols;
  int64_t ld;
  int32_t batch = 1;
  int64_t stride = 0;
};
struct cublasLtMatmulPreferenceOpaque {
  uint32_t align[4] = {256, 256, 256, 256}; /* A, B, C, D: cuBLASLt assumes 256 unless told */
};

namespace {

template <class T>
cublasStatus_t set_from(T *field, const void *buf, size_t size) {
  if (size != sizeof(T)) return CUBLAS_STATUS_INVALID_VALUE;
  memcpy(field, buf, sizeof(T));
  return CUBLAS_STATUS_SUCCESS;
}

double element(const void *base, cudaDataType_t type, size_t i) {
  if (type == CUDA_R_16BF) return __bfloat162float(static_cast<const __nv_bfloat16 *>(base)[i]);
  return static_cast<const float *>(base)[i];
}

double gelu(double x) {
  const double k0 = 0.7978845608028654, k1 = 0.044715;
  return 0.5 * x * (1.0 + tanh(k0 * (x + k1 * x * x * x)));
}
double gelu_grad(double x) {
  const double k0 = 0.7978845608028654, k1 = 0.044715;
  const double t = tanh(k0 * (x + k1 * x * x * x));
  return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k0 * (1.0 + 3.0 * k1 * x * x);
}

bool aligned(const void *p, uint32_t bytes) { return bytes == 0 || (uintptr_t)p % bytes == 0; }

}  // namespace

cublasStatus_t cublasLtCreate(cublasLtHandle_t *handle) {
  *handle = new cublasLtContext{0};
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) {
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}
const char *cublasLtGetStatusName(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    default: return "CUBLAS_STATUS_(other)";
  }
}
const char *cublasLtGetStatusString(cublasStatus_t status) {
  return status == CUBLAS_STATUS_SUCCESS ? "success" : "emulated cuBLASLt refused the call";
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *desc, cublasComputeType_t compute, cudaDataType_t scale) {
  if (compute != CUBLAS_COMPUTE_32F || scale != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
  *desc = new cublasLtMatmulDescOpaque;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
  delete desc;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr,
                                              const void *buf, size_t size) {
  switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA: return set_from(&desc->trans_a, buf, size);
    case CUBLASLT_MATMUL_DESC_TRANSB: return set_from(&desc->trans_b, buf, size);
    case CUBLASLT_MATMUL_DESC_EPILOGUE: return set_from(&desc->epilogue, buf, size);
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER: return set_from(&desc->bias, buf, size);
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER: return set_from(&desc->aux, buf, size);
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD: return set_from(&desc->aux_ld, buf, size);
  }
  return CUBLAS_STATUS_INVALID_VALUE;
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *layout, cudaDataType_t type, uint64_t rows,
                                          uint64_t cols, int64_t ld) {
  if (ld < (int64_t)rows || ld < 1) return CUBLAS_STATUS_INVALID_VALUE; /* column-major: ld >= rows */
  *layout = new cublasLtMatrixLayoutOpaque{type, rows, cols, ld};
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout) {
  delete layout;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t layout, cublasLtMatrixLayoutAttribute_t attr,
                                                const void *buf, size_t size) {
  switch (attr) {
    case CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT: return set_from(&layout->batch, buf, size);
    case CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET: return set_from(&layout->stride, buf, size);
  }
  return CUBLAS_STATUS_INVALID_VALUE;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *pref) {
  *pref = new cublasLtMatmulPreferenceOpaque;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
  delete pref;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr, const void *buf,
                                                    size_t size) {
  uint64_t u64;
  switch (attr) {
    case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES:
    case CUBLASLT_MATMUL_PREF_IMPL_MASK: return set_from(&u64, buf, size);
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES: return set_from(&pref->align[0], buf, size);
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES: return set_from(&pref->align[1], buf, size);
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES: return set_from(&pref->align[2], buf, size);
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES: return set_from(&pref->align[3], buf, size);
  }
  return CUBLAS_STATUS_INVALID_VALUE;
}

namespace {

/* the shapes agree: op(A) m x k, op(B) k x n, C and D m x n, one batch count */
cublasStatus_t shapes(cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                      cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d, uint64_t *m, uint64_t *n, uint64_t *k) {
  *m = c->rows;
  *n = c->cols;
  const uint64_t am = desc->trans_a == CUBLAS_OP_T ? a->cols : a->rows, ak = desc->trans_a == CUBLAS_OP_T ? a->rows : a->cols;
  const uint64_t bk = desc->trans_b == CUBLAS_OP_T ? b->cols : b->rows, bn = desc->trans_b == CUBLAS_OP_T ? b->rows : b->cols;
  *k = ak;
  if (am != *m || bn != *n || bk != ak || d->rows != *m || d->cols != *n) return CUBLAS_STATUS_INVALID_VALUE;
  if (a->batch != c->batch || b->batch != c->batch || d->batch != c->batch) return CUBLAS_STATUS_INVALID_VALUE;
  if (a->type != b->type || c->type != CUDA_R_32F || d->type != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
  const uint32_t e = desc->epilogue;
  if (e != CUBLASLT_EPILOGUE_DEFAULT && e != CUBLASLT_EPILOGUE_BIAS && e != CUBLASLT_EPILOGUE_GELU_AUX &&
      e != CUBLASLT_EPILOGUE_GELU_AUX_BIAS && e != CUBLASLT_EPILOGUE_DGELU)
    return CUBLAS_STATUS_NOT_SUPPORTED;
  if ((e & 128) && desc->aux_ld < (int64_t)*m) return CUBLAS_STATUS_INVALID_VALUE; /* aux is m x n */
  if ((e & 128) && c->batch > 1) return CUBLAS_STATUS_NOT_SUPPORTED; /* no aux batch stride here */
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                                              cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                              cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                                              cublasLtMatmulPreference_t pref, int requested,
                                              cublasLtMatmulHeuristicResult_t results[], int *returned) {
  if (!handle || requested < 1) return CUBLAS_STATUS_INVALID_VALUE;
  uint64_t m, n, k;
  const cublasStatus_t st = shapes(desc, a, b, c, d, &m, &n, &k);
  if (st != CUBLAS_STATUS_SUCCESS) return st;
  memset(&results[0], 0, sizeof results[0]);
  for (int i = 0; i < 4; i++) results[0].algo.data[i] = pref->align[i];
  results[0].state = CUBLAS_STATUS_SUCCESS;
  *returned = 1;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, const void *alpha_p, const void *A,
                              cublasLtMatrixLayout_t a, const void *B, cublasLtMatrixLayout_t b, const void *beta_p,
                              const void *C, cublasLtMatrixLayout_t c, void *D, cublasLtMatrixLayout_t d,
                              const cublasLtMatmulAlgo_t *algo, void *workspace, size_t workspace_bytes,
                              cudaStream_t stream) {
  (void)workspace;
  (void)workspace_bytes;
  if (!handle || !algo) return CUBLAS_STATUS_INVALID_VALUE;
  if (stream) return CUBLAS_STATUS_NOT_SUPPORTED; /* the backend computes on the legacy default stream */
  emu::default_stream_wait();
  uint64_t m, n, k;
  cublasStatus_t st = shapes(desc, a, b, c, d, &m, &n, &k);
  if (st != CUBLAS_STATUS_SUCCESS) return st;
  if (!aligned(A, (uint32_t)algo->data[0]) || !aligned(B, (uint32_t)algo->data[1]) ||
      !aligned(C, (uint32_t)algo->data[2]) || !aligned(D, (uint32_t)algo->data[3]))
    return CUBLAS_STATUS_EXECUTION_FAILED; /* less aligned than the plan was made for */
  const uint32_t e = desc->epilogue;
  const bool has_bias = e == CUBLASLT_EPILOGUE_BIAS || e == CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
  if ((has_bias && !desc->bias) || ((e & 128) && !desc->aux)) return CUBLAS_STATUS_INVALID_VALUE;
  const float alpha = *static_cast<const float *>(alpha_p), beta = *static_cast<const float *>(beta_p);
  const bool ta = desc->trans_a == CUBLAS_OP_T, tb = desc->trans_b == CUBLAS_OP_T;
  const float *bias = static_cast<const float *>(desc->bias);
  float *aux = const_cast<float *>(static_cast<const float *>(desc->aux));
  float *out = static_cast<float *>(D);
  const float *cin = static_cast<const float *>(C);
  /* op(A) as rows of k and op(B) as columns of k, in double, then each D element from one dot
   * product; the products are read before D is written, so C may be D */
  double *opa = static_cast<double *>(malloc(sizeof(double) * (m * k + 1)));
  double *opb = static_cast<double *>(malloc(sizeof(double) * (n * k + 1)));
  double *col = static_cast<double *>(malloc(sizeof(double) * (m ? m : 1)));
  if (!opa || !opb || !col) {
    free(opa);
    free(opb);
    free(col);
    return CUBLAS_STATUS_ALLOC_FAILED;
  }
  for (int32_t bi = 0; bi < c->batch; bi++) {
    const size_t oa = (size_t)bi * a->stride, ob = (size_t)bi * b->stride, oc = (size_t)bi * c->stride,
                 od = (size_t)bi * d->stride;
    for (uint64_t i = 0; i < m; i++)
      for (uint64_t p = 0; p < k; p++) opa[i * k + p] = element(A, a->type, oa + (ta ? p + i * a->ld : i + p * a->ld));
    for (uint64_t j = 0; j < n; j++)
      for (uint64_t p = 0; p < k; p++) opb[j * k + p] = element(B, b->type, ob + (tb ? j + p * b->ld : p + j * b->ld));
    for (uint64_t j = 0; j < n; j++) {
      for (uint64_t i = 0; i < m; i++) {
        const double *x = opa + i * k, *y = opb + j * k;
        double sum = 0.0;
        for (uint64_t p = 0; p < k; p++) sum += x[p] * y[p];
        double t = (double)alpha * (float)sum;
        if (beta != 0.0f) t += (double)beta * cin[oc + i + j * c->ld];
        col[i] = t;
      }
      for (uint64_t i = 0; i < m; i++) {
        double t = col[i];
        if (has_bias) t += bias[i];
        float result;
        if (e == CUBLASLT_EPILOGUE_GELU_AUX || e == CUBLASLT_EPILOGUE_GELU_AUX_BIAS) {
          aux[i + j * desc->aux_ld] = (float)t;
          result = (float)gelu((float)t);
        } else if (e == CUBLASLT_EPILOGUE_DGELU) {
          result = (float)((float)t * gelu_grad(aux[i + j * desc->aux_ld]));
        } else {
          result = (float)t;
        }
        out[od + i + j * d->ld] = result;
      }
    }
  }
  free(opa);
  free(opb);
  free(col);
  return CUBLAS_STATUS_SUCCESS;
}
