/*
 * fte_io_internal.h - helpers shared by the model-format files (safetensors,
 * Hugging Face, GGUF, PEFT) and their tests: the safetensors reader and
 * writer, atomic file writes and float16/bfloat16 conversion.
 *
 * safetensors layout: an 8-byte little-endian header length N, N bytes of
 * JSON mapping each tensor name to {"dtype", "shape", "data_offsets":
 * [begin, end]} (offsets relative to the data section that follows the
 * header), plus an optional "__metadata__" object of string values.
 */
#ifndef FTE_IO_INTERNAL_H
#define FTE_IO_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "fte_io.h"

struct fte_tokenizer;

#define FTE_ST_MAX_DIMS 8
/* The reference implementation refuses headers over 100 MB; so do we. */
#define FTE_ST_MAX_HEADER (100u << 20)

enum fte_st_dtype {
	FTE_ST_F32, FTE_ST_F16, FTE_ST_BF16, FTE_ST_F64,
	FTE_ST_I64, FTE_ST_I32, FTE_ST_I16, FTE_ST_I8, FTE_ST_U8, FTE_ST_BOOL,
	FTE_ST_F8_E4M3, FTE_ST_F8_E5M2,
	FTE_ST_NDTYPES
};

typedef struct fte_st_tensor {
	char *name;
	int dtype;                        /* enum fte_st_dtype */
	int ndim;
	int64_t shape[FTE_ST_MAX_DIMS];
	size_t numel;
	size_t begin, end;                /* byte span inside the data section */
} fte_st_tensor;

typedef struct fte_st_file {
	char *path;
	const uint8_t *data;              /* data section (after the header) */
	size_t data_len;
	int n_tensors;
	fte_st_tensor *tensors;           /* in header order */
	json_t *metadata;                 /* "__metadata__" object or NULL */
	void *map;                        /* whole-file mapping, NULL if borrowed */
	size_t map_len;
} fte_st_file;

/* fte_st_parse validates a safetensors image of len bytes at buf (which must
 * outlive the result): header length against len, JSON syntax, every entry's
 * dtype, shape, and data_offsets (in bounds, shape product * dtype size ==
 * end - begin, no two spans overlapping).  path only names the file in
 * messages.  On success *out describes the file; free it with fte_st_close. */
int fte_st_parse(const char *path, const uint8_t *buf, size_t len,
    fte_st_file **out);

/* fte_st_open memory-maps the file at path and parses it as fte_st_parse. */
int fte_st_open(const char *path, fte_st_file **out);

/* fte_st_close unmaps and frees. NULL is allowed. */
void fte_st_close(fte_st_file *f);

/* fte_st_find returns the tensor called name, or NULL. */
const fte_st_tensor *fte_st_find(const fte_st_file *f, const char *name);

/* fte_st_metadata returns the __metadata__ string for key, or NULL. */
const char *fte_st_metadata(const fte_st_file *f, const char *key);

/* fte_st_dtype_name / fte_st_dtype_size describe a dtype ("F32", 4). */
const char *fte_st_dtype_name(int dtype);
size_t fte_st_dtype_size(int dtype);

/* fte_st_read_f32 converts tensor t of f into t->numel float32 values at dst.
 * F32, F16, BF16, F64 and the integer dtypes convert; BOOL and the F8 types
 * give FTE_ENOTSUP. */
int fte_st_read_f32(const fte_st_file *f, const fte_st_tensor *t, float *dst);

/* One tensor to write: float32 data of shape[0..ndim) in row-major order. */
typedef struct fte_st_entry {
	char name[128];
	int ndim;
	int64_t shape[FTE_ST_MAX_DIMS];
	const float *data;
} fte_st_entry;

/* fte_st_write writes n tensors to path as dtype (FTE_ST_F32, FTE_ST_F16 or
 * FTE_ST_BF16, rounding to nearest even), in the given order, with
 * __metadata__ {"format": "pt"} plus the key/value pairs of meta (NULL or a
 * NULL-terminated list of alternating keys and values).  The file appears
 * atomically: written to a temporary, fsynced, renamed, directory fsynced. */
int fte_st_write(const char *path, const fte_st_entry *e, int n, int dtype,
    const char *const *meta);

/* Atomic file: write to a temporary beside path whose name holds 48 random
 * bits, created O_EXCL | O_NOFOLLOW (a link planted at a guessed name is
 * never followed), then commit (fflush, fsync, renameat over path, fsync the
 * directory) or abort (remove the temporary).  The directory is opened once,
 * so the temporary and the final name are in the same one. */
typedef struct fte__afile {
	FILE *fp;
	char *path;
	const char *base;                 /* last component of path */
	char *tmp;                        /* temporary's name inside dfd */
	int dfd;                          /* the directory of path */
	int failed;                       /* a write failed; commit will refuse */
} fte__afile;

int fte__afile_open(fte__afile *af, const char *path);
/* fte__afile_write appends n bytes; errors are remembered for commit. */
void fte__afile_write(fte__afile *af, const void *p, size_t n);
int fte__afile_commit(fte__afile *af);
void fte__afile_abort(fte__afile *af);

/* fte__json_save writes j (indented, keys in insertion order) atomically. */
int fte__json_save(const json_t *j, const char *path);

/* fte__file_copy copies src to dst atomically. */
int fte__file_copy(const char *src, const char *dst);

/* fte__file_open opens path for reading with O_NOFOLLOW: a symbolic link
 * at its last component and anything but a regular file are refused
 * (FTE_EFORMAT), absence is FTE_ENOENT.  Every reader of the engine opens
 * its files so; fte__fopen gives a stdio stream of the same. */
int fte__file_open(const char *path, int *fd);
int fte__fopen(const char *path, FILE **fp);

/* fte__file_read reads the whole file at path (opened as fte__fopen does)
 * into a malloc'd *out of *out_len bytes; FTE_* codes, *out untouched on
 * failure. */
int fte__file_read(const char *path, char **out, size_t *out_len);

/* fte__json_parse_error reports a JSON syntax error by line and column
 * only: jansson's text quotes the bytes it stopped at, and a message must
 * never show a file's contents. */
int fte__json_parse_error(const char *label, const json_error_t *err);

/* fte__json_loadb parses len bytes of JSON, duplicate keys refused; a file
 * with an integer too large for int64 is read with every number a real.
 * fte__json_load reads a JSON object from path, FTE_ENOENT if absent,
 * FTE_EFORMAT with line and column if it does not parse or is not an object. */
json_t *fte__json_loadb(const char *buf, size_t len, json_error_t *err);
int fte__json_load(const char *path, json_t **out);

/* fte__json_float makes a JSON number of f written as the shortest decimal
 * that reads back as the same float (1e-05, not 9.99999975e-06). */
json_t *fte__json_float(float f);

/* IEEE half and bfloat16 conversions; to-narrow rounds to nearest even. */
float fte__f16_to_f32(uint16_t h);
uint16_t fte__f32_to_f16(float f);
float fte__bf16_to_f32(uint16_t h);
uint16_t fte__f32_to_bf16(float f);
/* Bulk versions, bit-identical to the scalar ones (F16C when the CPU has
 * it); src of fte__f16_to_f32_n may be unaligned. */
void fte__f32_to_f16_n(uint16_t *dst, const float *src, size_t n);
void fte__f16_to_f32_n(float *dst, const void *src, size_t n);

/* ggml tensor types (ggml.h numbering) and their block formats
 * (gguf_quant.c).  fte__ggml_block gives the values per block and *bytes per
 * block, 0 for a type not handled; dequantize reads n values (whole blocks)
 * into float32, quantize writes them as llama.cpp's reference quantizer does
 * (F32, F16, BF16, Q4_0, Q5_0, Q8_0, Q4_K, Q5_K, Q6_K; ENOTSUP otherwise). */
enum fte_ggml_type {
	FTE_GGML_F32 = 0, FTE_GGML_F16 = 1, FTE_GGML_Q4_0 = 2, FTE_GGML_Q5_0 = 6,
	FTE_GGML_Q8_0 = 8, FTE_GGML_Q4_K = 12, FTE_GGML_Q5_K = 13, FTE_GGML_Q6_K = 14,
	FTE_GGML_BF16 = 30,
};
/* fte__ggml_type_name names any ggml type, handled or not (NULL for an
 * id ggml does not define). */
const char *fte__ggml_type_name(int type);
int fte__ggml_block(int type, int *bytes);
int fte__ggml_dequantize(int type, const void *src, float *dst, size_t n);
int fte__ggml_quantize(int type, const float *src, void *dst, size_t n);

/* GGUF reader (gguf_read.c, gguf.c), enough to check and inspect GGUF files: header,
 * metadata, tensor infos and F32/F16 tensor data, every size and offset
 * checked against the file. */
enum fte_gguf_type {
	FTE_GGUF_UINT8, FTE_GGUF_INT8, FTE_GGUF_UINT16, FTE_GGUF_INT16,
	FTE_GGUF_UINT32, FTE_GGUF_INT32, FTE_GGUF_FLOAT32, FTE_GGUF_BOOL,
	FTE_GGUF_STRING, FTE_GGUF_ARRAY, FTE_GGUF_UINT64, FTE_GGUF_INT64,
	FTE_GGUF_FLOAT64,
};

typedef struct fte_gguf_kv {
	char *key;
	int type;                         /* enum fte_gguf_type */
	int arr_type;                     /* element type of an ARRAY */
	uint64_t n;                       /* ARRAY length (1 otherwise) */
	const uint8_t *val;               /* value bytes (after the array header) */
} fte_gguf_kv;

typedef struct fte_gguf_tensor {
	char *name;
	int ndim;
	int64_t ne[4];                    /* ne[0] varies fastest (columns) */
	int type;                         /* ggml type: 0 F32, 1 F16, ... */
	uint64_t offset;                  /* from the start of the data section */
	size_t numel;
} fte_gguf_tensor;

typedef struct fte_gguf_file {
	char *path;
	uint32_t version;
	int n_kv;
	fte_gguf_kv *kv;
	int n_tensors;
	fte_gguf_tensor *tensors;
	uint32_t alignment;
	const uint8_t *data;
	size_t data_len;
	void *map;
	size_t map_len;
} fte_gguf_file;

/* fte_gguf_parse validates a GGUF image of len bytes at buf (which must
 * outlive the result); fte_gguf_open memory-maps path and parses it.  Both
 * check every tensor's rows and extent against its block format (gguf.c);
 * fte__gguf_read and fte__gguf_map (gguf_read.c, in the tokenizer library)
 * parse the same without knowing block formats, for readers of the
 * metadata alone. */
int fte__gguf_read(const char *path, const uint8_t *buf, size_t len,
    fte_gguf_file **out);
int fte__gguf_map(const char *path, fte_gguf_file **out);
int fte_gguf_parse(const char *path, const uint8_t *buf, size_t len,
    fte_gguf_file **out);
int fte_gguf_open(const char *path, fte_gguf_file **out);
void fte_gguf_close(fte_gguf_file *f);
const fte_gguf_kv *fte_gguf_kv_find(const fte_gguf_file *f, const char *key);
const fte_gguf_tensor *fte_gguf_tensor_find(const fte_gguf_file *f, const char *name);
/* Scalar values converted to int64 / double; 0 when the type or value
 * does not fit. */
int64_t fte_gguf_kv_int(const fte_gguf_kv *kv);
double fte_gguf_kv_float(const fte_gguf_kv *kv);
/* fte_gguf_kv_str gives the i-th string of a STRING (i == 0) or an array of
 * strings, with its length in *len; NULL when out of range. */
const char *fte_gguf_kv_str(const fte_gguf_kv *kv, uint64_t i, uint64_t *len);
/* fte_gguf_kv_strs lists every string of an array of strings in s and len
 * (kv->n entries each, the caller's), in one pass; FTE_EINVAL for another
 * type. */
int fte_gguf_kv_strs(const fte_gguf_kv *kv, const char **s, uint64_t *len);
/* fte_gguf_kv_arr_num gives the i-th element of a numeric array as double. */
double fte_gguf_kv_arr_num(const fte_gguf_kv *kv, uint64_t i);
/* fte_gguf_read_f32 converts a tensor of any type fte__ggml_block knows to
 * float32 (ENOTSUP for others). */
int fte_gguf_read_f32(const fte_gguf_file *f, const fte_gguf_tensor *t, float *dst);
/* fte__gguf_source names the GGUF tensor that holds the canonical tensor
 * canon of an arch (enum fte_arch) model, with *part 0, or 1..3 for the
 * rows of GPT-2's fused attn_qkv (q, k, v); fte__gguf_to_canon is the
 * reverse for one part (0 for unfused tensors).  FTE_ENOENT for names with
 * no counterpart. */
int fte__gguf_source(int arch, const char *canon, char *gname, size_t len, int *part);
int fte__gguf_to_canon(int arch, const char *gname, int part, char *out, size_t len);

/* fte__gguf_shown gives a short name read from a GGUF file (an
 * architecture, a tokenizer model) as an error message may show it: only
 * letters, digits, '.', '_' and '-', under 32 bytes, else "?", so a message
 * never quotes other bytes of a file.  out holds 32 bytes. */
const char *fte__gguf_shown(const char *s, size_t len, char out[32]);
/* fte__gguf_vocab reads the vocabulary of f's tokenizer.ggml.* keys
 * (SentencePiece "llama" or byte-level BPE "gpt2", merges, special ids,
 * add_bos, pre, chat template): FTE_ENOTSUP naming any other model,
 * FTE_EFORMAT for missing or inconsistent keys. */
int fte__gguf_vocab(const fte_gguf_file *f, fte_vocab **out);
/* fte__vocab_tokenizer makes the tokenizer a vocabulary describes:
 * SentencePiece pieces by score, or byte-level BPE with the pre-tokenizer
 * llama.cpp names v->pre (gpt-2, llama-bpe, qwen2, smollm). */
int fte__vocab_tokenizer(const char *path, const fte_vocab *v, struct fte_tokenizer **out);
/* fte__gguf_tokenizer_memory is fte_gguf_tokenizer_load of a GGUF image in
 * memory (a vocabulary-only file or a whole model). */
int fte__gguf_tokenizer_memory(const char *name, const void *buf, size_t len,
    struct fte_tokenizer **out);

#endif
