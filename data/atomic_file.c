/* atomic_file.c — temporary name, fsync, rename. */
#include "data/atomic_file.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

int atomic_file_open(atomic_file *af, const char *path, char *err, size_t err_size) {
  af->f = NULL;
  int n = snprintf(af->path, sizeof af->path, "%s", path);
  int m = snprintf(af->tmp, sizeof af->tmp, "%s.tmp.%ld", path, (long)getpid());
  if (n < 0 || (size_t)n >= sizeof af->path || m < 0 || (size_t)m >= sizeof af->tmp) {
    snprintf(err, err_size, "%.200s...: path too long", path);
    return -1;
  }
  af->f = fopen(af->tmp, "wb");
  if (!af->f) {
    snprintf(err, err_size, "%s: cannot create: %s", af->tmp, strerror(errno));
    return -1;
  }
  return 0;
}

int atomic_file_commit(atomic_file *af, char *err, size_t err_size) {
  /* keep the first failure's errno: later calls would overwrite it with something less useful */
  int e = 0;
  if (ferror(af->f) || fflush(af->f) != 0) e = errno ? errno : EIO;
  if (!e && fsync(fileno(af->f)) != 0) e = errno;
  if (fclose(af->f) != 0 && !e) e = errno;
  af->f = NULL;
  if (!e && rename(af->tmp, af->path) != 0) e = errno;
  if (e) {
    snprintf(err, err_size, "%s: write failed: %s", af->path, strerror(e));
    unlink(af->tmp);
    return -1;
  }
  return 0;
}

void atomic_file_abort(atomic_file *af) {
  if (af->f) fclose(af->f);
  af->f = NULL;
  unlink(af->tmp);
}
