/* json_reader.h — a small strict JSON (RFC 8259) reader for file headers that tpdiff reads itself
 * (the safetensors header). It parses a bounded text into a flat array of nodes; nothing outside the
 * text is ever read, strings are checked UTF-8 with their escapes decoded, nesting is limited, and a
 * failure gives one line with the byte offset and what was expected. */
#ifndef TPDIFF_JSON_READER_H
#define TPDIFF_JSON_READER_H

#include <stddef.h>
#include <stdint.h>

/* Deeper nesting is refused: headers we read have depth 3, and a bound keeps the recursion safe. */
#define JSON_MAX_DEPTH 32

typedef enum { JSON_NULL, JSON_FALSE, JSON_TRUE, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT } json_type;

typedef struct {
  json_type type;
  /* JSON_STRING: the decoded text (NUL-terminated, owned by the document); len its bytes (it may hold
   * "\u0000", so len, not strlen, is the length). JSON_NUMBER: the number's source text, len bytes. */
  const char *text;
  size_t len;
  /* JSON_ARRAY / JSON_OBJECT: count children. An object's children are key, value, key, value, ... (keys
   * are JSON_STRING nodes), so it has 2 * members children. */
  size_t count;
  size_t first;  /* index of the first child; the next sibling of node i is at json_next(doc, i) */
  size_t end;    /* one past the last node of this node's subtree */
  size_t offset; /* byte offset of the node in the text, for messages */
} json_node;

typedef struct {
  json_node *nodes;
  size_t count;
  char *strings; /* decoded strings and number texts */
} json_doc;

/* Parses text[0..len) (one JSON value, whitespace around it allowed). Returns 0, or -1 with one line
 * in err "at byte N: <what was expected>" (the caller adds the file name). doc is freed by json_free
 * either way. */
int json_parse(json_doc *doc, const char *text, size_t len, char *err, size_t err_size);
void json_free(json_doc *doc);

/* Index of the next sibling of node i (the node after i's subtree). */
size_t json_next(const json_doc *doc, size_t i);

/* Object lookup: the index of the value for key in object node obj, or (size_t)-1 when absent. */
size_t json_object_get(const json_doc *doc, size_t obj, const char *key);

/* A JSON_NUMBER that is a plain non-negative integer (no sign, fraction or exponent) <= UINT64_MAX:
 * 0 with *out set, else -1. */
int json_as_u64(const json_node *n, uint64_t *out);

#endif
