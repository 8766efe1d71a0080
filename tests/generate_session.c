/*
 * generate_session.c - one streamed-Generate RPC, for test_generate.sh,
 * which needs session ids that ftctl never shows:
 *
 *   generate_session URL KEY open MODEL PROMPT   prints the session id
 *   generate_session URL KEY poll ID OFFSET      prints the new text ("OK done"
 *                                                 on stderr at the end)
 *   generate_session URL KEY cancel ID
 *
 * KEY is a signing key for a tcp:// URL (another uid), or "-".  Prints the
 * reply's code name on stderr; exits 0 for OK, 1 for another code, 2 when
 * the daemon cannot be reached.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "call.h"

int
main(int argc, char **argv)
{
	Ft__Request req = FT__REQUEST__INIT;
	Ft__GenerateRequest gr = FT__GENERATE_REQUEST__INIT;
	Ft__GeneratePollRequest pr = FT__GENERATE_POLL_REQUEST__INIT;
	Ft__GenerateCancelRequest cr = FT__GENERATE_CANCEL_REQUEST__INIT;
	Ft__Reply *rep;
	const char *key;
	char err[512];
	int code;

	if (argc < 5 || (strcmp(argv[3], "cancel") != 0 && argc != 6)) {
		fprintf(stderr, "usage: generate_session URL KEY open MODEL PROMPT | poll ID OFFSET | "
		    "cancel ID\n");
		return 2;
	}
	key = strcmp(argv[2], "-") == 0 ? NULL : argv[2];
	if (strcmp(argv[3], "open") == 0) {
		gr.model = argv[4];
		gr.prompt = argv[5];
		gr.raw = 1;
		gr.stream = 1;
		gr.max_new_tokens = 200;
		req.body_case = FT__REQUEST__BODY_GENERATE;
		req.generate = &gr;
	} else if (strcmp(argv[3], "poll") == 0) {
		pr.session = strtoull(argv[4], NULL, 10);
		pr.from_offset = strtoull(argv[5], NULL, 10);
		req.body_case = FT__REQUEST__BODY_GENERATE_POLL;
		req.generate_poll = &pr;
	} else {
		cr.session = strtoull(argv[4], NULL, 10);
		req.body_case = FT__REQUEST__BODY_GENERATE_CANCEL;
		req.generate_cancel = &cr;
	}
	if (ft_call(argv[1], &req, 10000, key, &rep, err, sizeof(err)) != 0) {
		fprintf(stderr, "generate_session: %s\n", err);
		return 2;
	}
	code = rep->code;
	fprintf(stderr, "%s%s%s%s\n", ft_code_name(code), rep->message[0] ? ": " : "", rep->message,
	    code == FT__CODE__OK && rep->body_case == FT__REPLY__BODY_GENERATE_POLL &&
	    rep->generate_poll->done ? " done" : "");
	if (code == FT__CODE__OK && rep->body_case == FT__REPLY__BODY_GENERATE)
		printf("%llu\n", (unsigned long long)rep->generate->session);
	else if (code == FT__CODE__OK && rep->body_case == FT__REPLY__BODY_GENERATE_POLL)
		printf("%s", rep->generate_poll->text);
	ft_reply_free(rep);
	return code == FT__CODE__OK ? 0 : 1;
}
