/*
 * libopendkim as the second independent DKIM verifier of
 * tests/differential.rs.
 *
 *   opendkim_verify KEYS FILE...
 *
 * KEYS is a key file as libopendkim's DKIM_QUERY_FILE method reads it (the
 * method behind opendkim's TestPublicKeys): one "NAME RECORD" per line,
 * NAME being "selector._domainkey.domain". Each FILE is one message, fed
 * to libopendkim byte for byte (dkim_chunk). For each file one line is
 * printed:
 *
 *   FILE<TAB>d=D s=S pass|fail:REASON<TAB>d=... (one field per signature)
 *
 * "pass" is what the opendkim filter reports as dkim=pass: the signature
 * verified and its body hash matched (DKIM_SIG_CHECK). Built by the test
 * with `cc opendkim_verify.c -lopendkim` (Debian: libopendkim-dev).
 */
#include <opendkim/dkim.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	size_t cap = 1 << 16, n = 0;
	unsigned char *buf = malloc(cap);
	size_t got;
	while (buf != NULL && (got = fread(buf + n, 1, cap - n, f)) > 0) {
		n += got;
		if (n == cap) {
			cap *= 2;
			buf = realloc(buf, cap);
		}
	}
	fclose(f);
	*len = n;
	return buf;
}

static void verify(DKIM_LIB *lib, const char *path)
{
	size_t len;
	unsigned char *msg = read_file(path, &len);
	if (msg == NULL) {
		printf("%s\terror:cannot read\n", path);
		return;
	}
	DKIM_STAT status;
	DKIM *dkim = dkim_verify(lib, (const unsigned char *)"test", NULL, &status);
	if (dkim == NULL) {
		printf("%s\terror:dkim_verify %s\n", path, dkim_getresultstr(status));
		free(msg);
		return;
	}
	status = dkim_chunk(dkim, msg, len);
	if (status == DKIM_STAT_OK)
		status = dkim_chunk(dkim, NULL, 0);
	if (status == DKIM_STAT_OK || status == DKIM_STAT_NOSIG) {
		_Bool testkey = 0;
		dkim_eom(dkim, &testkey);
	}
	printf("%s", path);
	DKIM_SIGINFO **sigs = NULL;
	int nsigs = 0;
	if (dkim_getsiglist(dkim, &sigs, &nsigs) == DKIM_STAT_OK) {
		for (int i = 0; i < nsigs; i++) {
			const unsigned char *d = dkim_sig_getdomain(sigs[i]);
			const unsigned char *s = dkim_sig_getselector(sigs[i]);
			printf("\td=%s s=%s ", d ? (const char *)d : "", s ? (const char *)s : "");
			if (DKIM_SIG_CHECK(sigs[i]))
				printf("pass");
			else if (dkim_sig_getbh(sigs[i]) == DKIM_SIGBH_MISMATCH)
				printf("fail:body hash mismatch");
			else
				printf("fail:%s", dkim_sig_geterrorstr(dkim_sig_geterror(sigs[i])));
		}
	}
	printf("\n");
	dkim_free(dkim);
	free(msg);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s KEYS FILE...\n", argv[0]);
		return 2;
	}
	DKIM_LIB *lib = dkim_init(NULL, NULL);
	if (lib == NULL) {
		fprintf(stderr, "dkim_init failed\n");
		return 1;
	}
	unsigned int method = DKIM_QUERY_FILE;
	dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYMETHOD, &method, sizeof method);
	dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYINFO, argv[1], strlen(argv[1]));
	for (int i = 2; i < argc; i++)
		verify(lib, argv[i]);
	dkim_close(lib);
	return 0;
}
