/* prep_inputs.c — tpdiff-prep's list of input videos and their labels (prep_inputs.h): folders walked
 * for video file extensions, labels from a CSV file or from class sub-folders. */
/* realpath */
#define _XOPEN_SOURCE 700
#include "trainer/prep_inputs.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

int prep_parse_long(const char *s, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

int prep_list_add(prep_file_list *l, const char *path) {
  if (l->count == l->cap) {
    int cap = l->cap ? 2 * l->cap : 64;
    prep_file *grown = realloc(l->v, sizeof *grown * (size_t)cap);
    if (!grown) return -1;
    l->v = grown;
    l->cap = cap;
  }
  prep_file *f = &l->v[l->count];
  memset(f, 0, sizeof *f);
  f->label = -1;
  if (!(f->path = strdup(path))) return -1;
  l->count++;
  return 0;
}

/* A malloc'ed formatted string, or NULL. */
static char *format_new(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) return NULL;
  char *s = malloc((size_t)n + 1);
  if (!s) return NULL;
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return s;
}

static int has_video_extension(const char *name) {
  static const char *const ext[] = {"mp4", "m4v", "mov", "mkv", "webm", "avi", "y4m", "gif", "mpg", "mpeg", "ts",
                                    "m2ts", "mts", "flv", "ogv", "wmv", "3gp", "mxf", "nut", "vob", "dv"};
  const char *dot = strrchr(name, '.');
  if (!dot) return 0;
  for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++)
    if (!strcasecmp(dot + 1, ext[i])) return 1;
  return 0;
}

static int compare_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Adds the video files below folder (sorted by name at every level, hidden entries skipped); class,
 * when not NULL, is the first sub-folder below the top folder (NULL at the top). */
static int walk(prep_file_list *l, const char *folder, int depth, const char *class_name, int want_classes, char *err,
                size_t err_size) {
  DIR *d = opendir(folder);
  if (!d) {
    snprintf(err, err_size, "%s: cannot read the folder: %s", folder, strerror(errno));
    return -1;
  }
  char **names = NULL;
  int n = 0, cap = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    if (n == cap) {
      cap = cap ? 2 * cap : 32;
      char **grown = realloc(names, sizeof *grown * (size_t)cap);
      if (!grown) break;
      names = grown;
    }
    names[n++] = strdup(e->d_name);
  }
  closedir(d);
  if (n) qsort(names, (size_t)n, sizeof *names, compare_names);
  int rc = 0;
  for (int i = 0; i < n && rc == 0; i++) {
    if (!names[i]) continue;
    size_t len = strlen(folder) + strlen(names[i]) + 2;
    char *path = malloc(len);
    if (!path) {
      rc = -1;
      break;
    }
    snprintf(path, len, "%s%s%s", folder, folder[strlen(folder) - 1] == '/' ? "" : "/", names[i]);
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
      if (depth < 64) rc = walk(l, path, depth + 1, depth == 0 ? names[i] : class_name, want_classes, err, err_size);
    } else if (has_video_extension(names[i])) {
      if (prep_list_add(l, path) != 0) {
        rc = -1;
      } else if (want_classes) {
        prep_file *f = &l->v[l->count - 1];
        if (class_name) f->label_name = strdup(class_name);
        else f->problem = format_new("%s: no class: the file is not in a sub-folder of the folder given", path);
      }
    }
    free(path);
  }
  for (int i = 0; i < n; i++) free(names[i]);
  free(names);
  return rc;
}

int prep_list_folder(prep_file_list *l, const char *folder, int want_classes, char *err, size_t err_size) {
  return walk(l, folder, 0, NULL, want_classes, err, err_size);
}

char *prep_folder_class(const char *file) {
  char copy[PATH_MAX];
  snprintf(copy, sizeof copy, "%s", file);
  char *slash = strrchr(copy, '/');
  if (slash) *slash = 0;
  char real[PATH_MAX];
  const char *folder = slash ? copy : ".";
  const char *base = realpath(folder, real) ? strrchr(real, '/') : NULL;
  return strdup(base && base[1] ? base + 1 : folder);
}

/* ---- labels ------------------------------------------------------------------------------------- */

static char *trim(char *s) {
  while (isspace((unsigned char)*s)) s++;
  char *e = s + strlen(s);
  while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
  if (e - s >= 2 && s[0] == '"' && e[-1] == '"') {
    e[-1] = 0;
    s++;
  }
  return s;
}

static int is_integer(const char *s) {
  long v;
  return prep_parse_long(s, 0, INT_MAX, &v) == 0;
}

int prep_read_csv(const char *csv, prep_csv_row **rows_out, int *count_out, char *err, size_t err_size) {
  FILE *f = fopen(csv, "r");
  if (!f) {
    snprintf(err, err_size, "%s: cannot open the labels file: %s", csv, strerror(errno));
    return -1;
  }
  char folder[PATH_MAX];
  snprintf(folder, sizeof folder, "%s", csv);
  char *slash = strrchr(folder, '/');
  if (slash) *slash = 0;
  else snprintf(folder, sizeof folder, ".");
  prep_csv_row *rows = NULL;
  int n = 0, cap = 0, line_no = 0;
  char *line = NULL;
  size_t line_cap = 0;
  while (getline(&line, &line_cap, f) > 0) {
    line_no++;
    char *comma = strrchr(line, ',');
    char *text = trim(line);
    if (!*text || *text == '#') continue;
    if (!comma) {
      snprintf(err, err_size, "%s: line %d: expected 'path,label', got '%.80s'", csv, line_no, text);
      goto fail;
    }
    *comma = 0;
    char *p = trim(line), *label = trim(comma + 1);
    if (line_no == 1 && !strcasecmp(p, "path") && (!strcasecmp(label, "label") || !strcasecmp(label, "class")))
      continue;
    if (!*p || !*label) {
      snprintf(err, err_size, "%s: line %d: empty path or label", csv, line_no);
      goto fail;
    }
    if (n == cap) {
      cap = cap ? 2 * cap : 64;
      prep_csv_row *grown = realloc(rows, sizeof *grown * (size_t)cap);
      if (!grown) goto oom;
      rows = grown;
    }
    prep_csv_row *r = &rows[n++];
    memset(r, 0, sizeof *r);
    if (p[0] == '/') r->path = strdup(p);
    else r->path = format_new("%s/%s", folder, p);
    r->label = strdup(label);
    if (!r->path || !r->label) goto oom;
    char real[PATH_MAX];
    r->resolved = strdup(realpath(r->path, real) ? real : r->path);
    if (!r->resolved) goto oom;
  }
  free(line);
  fclose(f);
  if (n == 0) {
    snprintf(err, err_size, "%s: no 'path,label' lines", csv);
    free(rows);
    return -1;
  }
  *rows_out = rows;
  *count_out = n;
  return 0;
oom:
  snprintf(err, err_size, "%s: out of memory", csv);
fail:
  free(line);
  fclose(f);
  *rows_out = rows; /* the caller frees what was read */
  *count_out = n;
  return -1;
}

void prep_label_from_csv(prep_file_list *l, const prep_csv_row *rows, int n_rows, const char *csv) {
  int all_integers = 1;
  for (int r = 0; r < n_rows; r++) all_integers &= is_integer(rows[r].label);
  for (int i = 0; i < l->count; i++) {
    char real[PATH_MAX];
    const char *key = realpath(l->v[i].path, real) ? real : l->v[i].path;
    int hit = -1;
    for (int r = 0; r < n_rows && hit < 0; r++)
      if (!strcmp(rows[r].resolved, key)) hit = r;
    if (hit < 0) {
      l->v[i].problem = format_new("%s: no label for it in %s", l->v[i].path, csv);
    } else if (all_integers) {
      l->v[i].label = atoi(rows[hit].label);
    } else {
      l->v[i].label_name = strdup(rows[hit].label);
    }
  }
}

int prep_number_classes(prep_file_list *l, char ***names_out, int *count_out) {
  char **names = malloc(sizeof *names * (size_t)(l->count + 1));
  int n = 0;
  if (!names) return -1;
  for (int i = 0; i < l->count; i++)
    if (l->v[i].label_name) names[n++] = l->v[i].label_name;
  if (n) qsort(names, (size_t)n, sizeof *names, compare_names);
  int u = 0;
  for (int i = 0; i < n; i++)
    if (u == 0 || strcmp(names[u - 1], names[i])) names[u++] = names[i];
  for (int i = 0; i < l->count; i++) {
    if (!l->v[i].label_name) continue;
    char **hit = bsearch(&l->v[i].label_name, names, (size_t)u, sizeof *names, compare_names);
    l->v[i].label = (int)(hit - names);
  }
  *names_out = names;
  *count_out = u;
  return 0;
}
