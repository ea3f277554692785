/* make_dirs.c — `mkdir -p` (data/make_dirs.h). */
#include "data/make_dirs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int make_dirs(const char *path, const char *what, char *err, size_t err_size) {
  size_t len = strlen(path);
  char *buf = malloc(len + 1);
  if (!buf) {
    snprintf(err, err_size, "%s: out of memory", what);
    return -1;
  }
  memcpy(buf, path, len + 1);
  int rc = 0;
  for (char *p = buf + 1; *p && rc == 0; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) rc = -1;
    if (rc == 0) *p = '/';
  }
  if (rc == 0 && mkdir(buf, 0755) != 0 && errno != EEXIST) rc = -1;
  if (rc != 0) snprintf(err, err_size, "%s: cannot create %s: %s", what, buf, strerror(errno));
  free(buf);
  return rc;
}
