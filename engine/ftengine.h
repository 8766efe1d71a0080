/*
 * ftengine.h - subcommands of the ftengine tool, one function each.
 * Each takes the arguments after the subcommand name (argv[0] is the
 * subcommand) and returns the process exit status: 0 success, 1 failure
 * (message on stderr), 2 usage error.
 */
#ifndef FTENGINE_H
#define FTENGINE_H

/* model, training and inference (ftengine.c) */
int ftengine_init(int argc, char **argv);
int ftengine_loss(int argc, char **argv);
int ftengine_train(int argc, char **argv);
int ftengine_generate(int argc, char **argv);
int ftengine_bench(int argc, char **argv);

/* tokenizers (ftengine_tok.c) */
int ftengine_tokenize(int argc, char **argv);
int ftengine_detokenize(int argc, char **argv);
int ftengine_tokenizer_train(int argc, char **argv); /* ftengine_train_tok.c */

/* model formats (ftengine_io.c) */
int ftengine_inspect(int argc, char **argv);
int ftengine_export(int argc, char **argv);

#endif
