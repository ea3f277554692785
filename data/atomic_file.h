/* atomic_file.h — writing a small file so that a reader sees the old version or the whole new one,
 * never half of it: write "<path>.tmp.<pid>", flush, fsync, close, rename onto path. */
#ifndef TPDIFF_ATOMIC_FILE_H
#define TPDIFF_ATOMIC_FILE_H

#include <stddef.h>
#include <stdio.h>

#define ATOMIC_FILE_PATH_MAX 4096

typedef struct {
  FILE *f; /* write the contents here */
  char path[ATOMIC_FILE_PATH_MAX];
  char tmp[ATOMIC_FILE_PATH_MAX + 32];
} atomic_file;

/* Opens path's temporary for writing (binary). 0, or -1 with one line in err naming the temporary
 * (or path, when it is too long). */
int atomic_file_open(atomic_file *af, const char *path, char *err, size_t err_size);
/* Flushes, fsyncs and closes the temporary, then renames it onto path. Any failure (including an
 * earlier write error on f) removes the temporary and returns -1 with err "<path>: write failed:
 * <reason>". Always closes f. */
int atomic_file_commit(atomic_file *af, char *err, size_t err_size);
/* Closes and removes the temporary (a write abandoned by the caller). */
void atomic_file_abort(atomic_file *af);

#endif
