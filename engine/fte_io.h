/*
 * fte_io.h - model files: import and export.
 *
 * Contract shared by the engine and the model-formats code.  Every loader
 * checks sizes, offsets, shapes and dtypes against the file length and the
 * configuration before it reads, and fails with FTE_EFORMAT / FTE_ENOTSUP and
 * a message naming the file and the problem; it never returns a partial model.
 */
#ifndef FTE_IO_H
#define FTE_IO_H

#include "fte_model.h"

/* fte_model_load loads the model at path, choosing the reader by what is
 * there: a directory with config.json (Hugging Face layout, also what the
 * engine itself writes), or a llama2.c checkpoint file. */
int fte_model_load(const char *path, fte_model **out);

/* fte_llama2c_load reads a llama2.c legacy (version 0) checkpoint: 7 int32
 * header, fp32 weights grouped by type across layers, RoPE tables skipped.
 * The model gets rope_style FTE_ROPE_INTERLEAVED, bos 1 and eos 2. */
int fte_llama2c_load(const char *path, fte_model **out);

/* fte_hf_load reads a Hugging Face model directory (config.json plus
 * model.safetensors or a sharded index) into canonical layout. */
int fte_hf_load(const char *dir, fte_model **out);

/* fte_hf_save writes m as a Hugging Face directory (config.json,
 * model.safetensors in F32), atomically: a temporary file is written,
 * fsynced and renamed.  Tokenizer files are copied from tokenizer_dir when it
 * is not NULL. */
int fte_hf_save(fte_model *m, const char *tokenizer_dir, const char *dir);

#endif
