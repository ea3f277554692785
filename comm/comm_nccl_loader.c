/* comm_nccl_loader.c — the NCCL path of comm/ (comm_nccl.h): finds libtpdiff_nccl.so with dlopen
 * ($TPDIFF_NCCL_LIB, then <dir of the binary>/../build/lib/, <dir>/../lib/, then the loader's path),
 * agrees across ranks whether every rank has it, and builds the communicator from a unique id that
 * rank 0 broadcasts over MPI (a timed MPI_Ibcast). */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "comm/comm_internal.h"
#include "comm/comm_nccl.h"
#include "comm/nccl_api.h"

#define NCCL_LIB_NAME "libtpdiff_nccl.so"

struct comm_nccl {
  const tpdiff_nccl_api *api;
  void *state;
};

static const tpdiff_nccl_api *try_library(const char *path, char *why, size_t why_size) {
  dlerror();
  /* never closed: the library's static CUDA runtime registers exit handlers */
  void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char *e = dlerror();
    snprintf(why, why_size, "cannot load %s: %s", path, e ? e : "unknown dlopen error");
    return NULL;
  }
  void *sym = dlsym(handle, TPDIFF_NCCL_API_SYMBOL);
  if (!sym) {
    snprintf(why, why_size, "%s has no symbol %s", path, TPDIFF_NCCL_API_SYMBOL);
    return NULL;
  }
  tpdiff_nccl_api_fn entry;
  memcpy(&entry, &sym, sizeof entry); /* object pointer to function pointer, portably */
  const tpdiff_nccl_api *api = entry();
  if (!api || api->abi != TPDIFF_NCCL_ABI || !api->version || !api->unique_id || !api->create ||
      !api->allreduce_mean || !api->destroy || !api->begin || !api->finish) {
    snprintf(why, why_size, "%s speaks another ABI than this binary (%d): rebuild both with make", path,
             TPDIFF_NCCL_ABI);
    return NULL;
  }
  return api;
}

static const tpdiff_nccl_api *load_api(char *why, size_t why_size) {
  const char *env = getenv("TPDIFF_NCCL_LIB");
  if (env && *env) return try_library(env, why, why_size);
  char exe[PATH_MAX], path[PATH_MAX + 64];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) {
      *slash = '\0';
      const char *rel[] = {"../build/lib", "../lib"};
      for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s/%s", exe, rel[i], NCCL_LIB_NAME);
        if (access(path, R_OK) == 0) return try_library(path, why, why_size);
      }
    }
  }
  return try_library(NCCL_LIB_NAME, why, why_size);
}

comm_nccl *comm_nccl_open(comm_world *c, size_t floats, size_t bucket_floats, int bf16, char *why, size_t why_size) {
  why[0] = '\0';
  const tpdiff_nccl_api *api = load_api(why, why_size);
  unsigned char id[TPDIFF_NCCL_ID_BYTES];
  memset(id, 0, sizeof id);
  int ok = api != NULL;
  if (ok && c->rank == 0 && api->unique_id(id, why, why_size) != 0) ok = 0;
  /* one rank without the library (or rank 0 without an id) sends everyone down the MPI path */
  int all_ok = 0;
  MPI_Request r;
  MPI_Iallreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD, &r);
  comm_wait(c, &r, 1, "the NCCL availability check");
  if (!all_ok) {
    if (ok) snprintf(why, why_size, "another rank cannot use NCCL");
    return NULL;
  }
  MPI_Ibcast(id, TPDIFF_NCCL_ID_BYTES, MPI_BYTE, 0, MPI_COMM_WORLD, &r);
  comm_wait(c, &r, 1, "the broadcast of the NCCL unique id");
  char err[768] = "";
  void *state = api->create(id, c->rank, c->world, bf16, floats, bucket_floats, c->timeout_s, err, sizeof err);
  /* a communicator that failed on one rank is useless to all: fail the job with that rank's line */
  if (comm_agree(c, state == NULL, err) != 0) comm_abort(c, 1, "building the NCCL communicator failed");
  comm_nccl *n = calloc(1, sizeof *n);
  if (!n) comm_abort(c, 1, "out of memory");
  n->api = api;
  n->state = state;
  return n;
}

int comm_nccl_begin(comm_world *c, float *grads, size_t off, size_t n, char *err, size_t err_size) {
  return c->nccl->api->begin(c->nccl->state, grads, off, n, c->timeout_s, err, err_size);
}

int comm_nccl_finish(comm_world *c, char *err, size_t err_size) {
  return c->nccl->api->finish(c->nccl->state, c->timeout_s, err, err_size);
}

const char *comm_nccl_version(const comm_nccl *n) { return n ? n->api->version() : ""; }

void comm_nccl_close(comm_nccl *n) {
  if (!n) return;
  n->api->destroy(n->state);
  free(n);
}
