/* test_files.h — scratch folders for the unit test programs of tests/unit that write files: a fresh
 * folder under $TMPDIR for the run, and its removal with everything below it at the end.
 * Header-only (static inline) because the Makefile builds every .c file of tests/unit into a program of its
 * own: a shared .c file there would become one more program. */
#ifndef TPDIFF_TEST_FILES_H
#define TPDIFF_TEST_FILES_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Creates the folder $TMPDIR/<prefix>_XXXXXX (/tmp where TMPDIR is unset or empty) and writes its path into
 * root; *parent gets the folder it was created in, for a message. 0, or -1 with errno set. */
static inline int make_scratch_dir(char *root, size_t root_size, const char *prefix, const char **parent) {
  const char *tmpdir = getenv("TMPDIR");
  if (!tmpdir || !tmpdir[0]) tmpdir = "/tmp";
  *parent = tmpdir;
  snprintf(root, root_size, "%s/%s_XXXXXX", tmpdir, prefix);
  return mkdtemp(root) ? 0 : -1;
}

/* Copies file from to file to: 0, or -1. */
static inline int copy_file(const char *from, const char *to) {
  FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
  int ok = a && b;
  char buf[65536];
  size_t n;
  while (ok && (n = fread(buf, 1, sizeof buf, a)) > 0) ok = fwrite(buf, 1, n, b) == n;
  if (a) fclose(a);
  if (b) ok = fclose(b) == 0 && ok;
  return ok ? 0 : -1;
}

/* Removes path and everything below it. */
static inline void remove_tree(const char *path) {
  struct stat st;
  if (lstat(path, &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    DIR *d = opendir(path);
    if (d) {
      struct dirent *e;
      while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char child[2048];
        snprintf(child, sizeof child, "%s/%s", path, e->d_name);
        remove_tree(child);
      }
      closedir(d);
    }
    rmdir(path);
  } else {
    unlink(path);
  }
}

#endif
