/*
 * tok_spm.c - SentencePiece tokenizer.model files (a ModelProto, read
 * through protobuf-c with the fields of sp_model.proto).
 *
 * A BPE model whose text pipeline the engine reproduces exactly loads as
 * the same tokenizer as its llama2.c tokenizer.bin export (tok_sp_build):
 * the identity normalization, a dummy prefix, whitespace kept as it is and
 * escaped as U+2581 (after remove_extra_whitespaces when the model asks for
 * it), pieces merged best score first, byte fallback.  Every other setting
 * that changes the ids is refused with its name: a Unigram model,
 * NFKC-style normalization rules, whitespace as a suffix, user-defined
 * pieces, split digits over a vocabulary that has multi-digit pieces.
 */
#include <stdlib.h>
#include <string.h>

#include "sp_model.pb-c.h"
#include "tok_internal.h"

typedef FteSp__ModelProto__SentencePiece sp_piece;

/* The first setting that makes the ids differ from tok_sp_build's, or NULL. */
static const char *
unsupported(const FteSp__ModelProto *m)
{
	const FteSp__ModelProto__TrainerSpec *tr = m->trainer_spec;
	const FteSp__ModelProto__NormalizerSpec *no = m->normalizer_spec;

	if (tr == NULL || !tr->has_model_type ||
	    tr->model_type != FTE_SP__MODEL_PROTO__TRAINER_SPEC__MODEL_TYPE__BPE)
		return "a model type other than BPE (Unigram, word, char)";
	if (tr->treat_whitespace_as_suffix)
		return "treat_whitespace_as_suffix";
	if (no != NULL && no->name != NULL && no->name[0] && strcmp(no->name, "identity") != 0)
		return "a normalization rule other than identity";
	if (no != NULL && no->has_precompiled_charsmap && no->precompiled_charsmap.len > 0)
		return "a precompiled normalization charsmap";
	/* without a normalizer_spec, SentencePiece's defaults hold */
	if (no != NULL && no->has_add_dummy_prefix && !no->add_dummy_prefix)
		return "add_dummy_prefix false";
	if (no != NULL && no->has_escape_whitespaces && !no->escape_whitespaces)
		return "escape_whitespaces false";
	for (size_t i = 0; i < m->n_pieces; i++) {
		const sp_piece *p = m->pieces[i];

		if (p->has_type && p->type == FTE_SP__MODEL_PROTO__SENTENCE_PIECE__TYPE__USER_DEFINED)
			return "user-defined pieces";
		if (p->has_type && p->type != FTE_SP__MODEL_PROTO__SENTENCE_PIECE__TYPE__NORMAL)
			continue;
		/* split_digits only matters where a piece could join digits */
		for (const char *c = p->piece; tr->split_digits && c && c[0] && c[1]; c++)
			if (c[0] >= '0' && c[0] <= '9' && c[1] >= '0' && c[1] <= '9')
				return "split_digits with pieces of several digits";
	}
	return NULL;
}

int
tok_spm_load(const char *path, const unsigned char *data, size_t size, fte_tokenizer **out)
{
	FteSp__ModelProto *m = fte_sp__model_proto__unpack(NULL, size, data);
	struct tok_sp_piece *pc;
	const char *why;
	int rc;

	if (m == NULL)
		return fte_error_set(FTE_EFORMAT, "%s: not a SentencePiece model (the protobuf does not parse)",
		    path);
	if (m->n_pieces < 3 || m->n_pieces > (1 << 24)) {
		rc = fte_error_set(FTE_EFORMAT, "%s: a SentencePiece model of %zu pieces", path, m->n_pieces);
		goto out;
	}
	if ((why = unsupported(m)) != NULL) {
		rc = fte_error_set(FTE_ENOTSUP, "%s: SentencePiece model with %s is not supported", path, why);
		goto out;
	}
	if ((pc = calloc(m->n_pieces, sizeof(*pc))) == NULL) {
		rc = fte_error_set(FTE_ENOMEM, "%s: out of memory", path);
		goto out;
	}
	rc = FTE_OK;
	for (size_t i = 0; i < m->n_pieces && rc == FTE_OK; i++) {
		const sp_piece *p = m->pieces[i];
		int type = p->has_type ? (int)p->type : FTE_SP__MODEL_PROTO__SENTENCE_PIECE__TYPE__NORMAL;

		pc[i].s = p->piece ? p->piece : "";
		pc[i].len = strlen(pc[i].s);
		pc[i].score = p->has_score ? p->score : 0.0f;
		pc[i].kind = type == FTE_SP__MODEL_PROTO__SENTENCE_PIECE__TYPE__UNKNOWN ? TOK_SP_UNKNOWN :
		    type == FTE_SP__MODEL_PROTO__SENTENCE_PIECE__TYPE__CONTROL ? TOK_SP_CONTROL :
		    type == FTE_SP__MODEL_PROTO__SENTENCE_PIECE__TYPE__UNUSED ? TOK_SP_UNUSED : TOK_SP_NORMAL;
		if (tok_utf8_check(pc[i].s, pc[i].len) != pc[i].len)
			rc = fte_error_set(FTE_EFORMAT, "%s: piece %zu is not valid UTF-8", path, i);
		else if (pc[i].len == 0)
			rc = fte_error_set(FTE_EFORMAT, "%s: piece %zu is empty", path, i);
	}
	if (rc == FTE_OK)
		rc = tok_sp_build(path, pc, (int)m->n_pieces, m->normalizer_spec == NULL ||
		    !m->normalizer_spec->has_remove_extra_whitespaces ||
		    m->normalizer_spec->remove_extra_whitespaces, out);
	free(pc);
out:
	fte_sp__model_proto__free_unpacked(m, NULL);
	return rc;
}
