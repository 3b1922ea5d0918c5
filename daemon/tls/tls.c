/* SPDX-License-Identifier: MIT */
/* The TLS settings of the NBD server: mode, credentials, access rules
 * (tls.h). Sessions and their I/O are in tls_conn.c. */
#include "daemon/tls/tls.h"

#include <ctype.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/tls/access.h"
#include "daemon/tls/tls_int.h"
#include "dlvm/log.h"

void nbd_tls_free(struct nbd_tls *t)
{
	if (!t)
		return;
	if (t->psk)
		gnutls_psk_free_server_credentials(t->psk);
	if (t->x509)
		gnutls_certificate_free_credentials(t->x509);
	if (t->prio)
		gnutls_priority_deinit(t->prio);
	for (size_t i = 0; i < t->nkeys; i++) {
		free(t->keys[i].id);
		explicit_bzero(t->keys[i].key, t->keys[i].len);
		free(t->keys[i].key);
	}
	free(t->keys);
	nbd_access_free(t->access);
	free(t->psk_file);
	free(t->cert_dir);
	free(t->access_file);
	free(t);
}

enum nbd_tls_mode nbd_tls_mode(const struct nbd_tls *t)
{
	return t->mode;
}

bool nbd_tls_offered(const struct nbd_tls *t)
{
	return t && t->mode != NBD_TLS_OFF && (t->psk || t->x509);
}

bool nbd_tls_has_rules(const struct nbd_tls *t)
{
	return t && t->access;
}

/* ---- the PSK file ---- */

static int hex_val(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* "identity:hexkey" into t->keys; -EINVAL with file:line otherwise. */
static int psk_line(struct nbd_tls *t, char *s, unsigned ln, struct dlvm_err *err)
{
	const char *f = t->psk_file;
	char *colon = strrchr(s, ':'), *hex;
	size_t hl;
	struct psk_key *k;

	if (!colon || colon == s)
		return dlvm_err_set(err, -EINVAL, "%s:%u: expected 'IDENTITY:HEXKEY' (psktool)", f,
				    ln);
	*colon = '\0';
	hex = colon + 1;
	hl = strlen(hex);
	if (!hl || hl % 2 || hl > 2 * 512)
		return dlvm_err_set(err, -EINVAL,
				    "%s:%u: the key must be an even number of hex "
				    "digits, up to 1024",
				    f, ln);
	for (size_t i = 0; i < t->nkeys; i++)
		if (!strcmp(t->keys[i].id, s))
			return dlvm_err_set(err, -EINVAL, "%s:%u: identity '%s' given twice", f, ln,
					    s);
	k = realloc(t->keys, (t->nkeys + 1) * sizeof(*k));
	if (!k)
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	t->keys = k;
	k = &t->keys[t->nkeys];
	k->id = strdup(s);
	k->key = malloc(hl / 2);
	k->len = hl / 2;
	if (!k->id || !k->key) {
		free(k->id);
		free(k->key);
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	}
	t->nkeys++;
	for (size_t i = 0; i < hl / 2; i++) {
		int hi = hex_val(hex[2 * i]), lo = hex_val(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return dlvm_err_set(err, -EINVAL, "%s:%u: the key is not hexadecimal", f,
					    ln);
		k->key[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

static int psk_load(struct nbd_tls *t, struct dlvm_err *err)
{
	FILE *f = fopen(t->psk_file, "re");
	char *line = NULL;
	size_t cap = 0;
	unsigned ln = 0;
	struct stat st;
	int r = 0;

	if (!f)
		return dlvm_err_set(err, -errno, "%s: %s", t->psk_file, strerror(errno));
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & 0077))
		log_warning(DLVM_LOG_NBD, "%s: others than its owner may read these keys (mode %o)",
			    t->psk_file, (unsigned)(st.st_mode & 0777));
	while (r == 0 && getline(&line, &cap, f) >= 0) {
		size_t n = strcspn(line, "\r\n");
		ln++;
		line[n] = '\0';
		if (*line && *line != '#')
			r = psk_line(t, line, ln, err);
	}
	if (line)
		explicit_bzero(line, cap);
	free(line);
	fclose(f);
	if (!r && !t->nkeys)
		r = dlvm_err_set(err, -EINVAL, "%s: no keys", t->psk_file);
	if (r)
		return r;
	if (gnutls_psk_allocate_server_credentials(&t->psk) < 0)
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	gnutls_psk_set_server_credentials_function(t->psk, nbd_tls_psk_key);
	gnutls_psk_set_server_known_dh_params(t->psk, GNUTLS_SEC_PARAM_MEDIUM);
	return 0;
}

const struct psk_key *nbd_tls_find_key(const struct nbd_tls *t, const char *id)
{
	for (size_t i = 0; i < t->nkeys; i++)
		if (!strcmp(t->keys[i].id, id))
			return &t->keys[i];
	return NULL;
}

/* ---- the certificate directory ---- */

static int x509_file(const struct nbd_tls *t, const char *name, char *path, size_t len)
{
	snprintf(path, len, "%s/%s", t->cert_dir, name);
	return access(path, R_OK);
}

static int x509_load(struct nbd_tls *t, struct dlvm_err *err)
{
	char cert[4096], key[4096], ca[4096];
	int r;

	if (x509_file(t, "server-cert.pem", cert, sizeof(cert)) < 0)
		return dlvm_err_set(err, -errno, "%s: %s", cert, strerror(errno));
	if (x509_file(t, "server-key.pem", key, sizeof(key)) < 0)
		return dlvm_err_set(err, -errno, "%s: %s", key, strerror(errno));
	if (gnutls_certificate_allocate_credentials(&t->x509) < 0)
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	r = gnutls_certificate_set_x509_key_file(t->x509, cert, key, GNUTLS_X509_FMT_PEM);
	if (r < 0)
		return dlvm_err_set(err, -EINVAL, "%s, %s: %s", cert, key, gnutls_strerror(r));
	if (x509_file(t, "ca-cert.pem", ca, sizeof(ca)) == 0) {
		r = gnutls_certificate_set_x509_trust_file(t->x509, ca, GNUTLS_X509_FMT_PEM);
		if (r <= 0)
			return dlvm_err_set(err, -EINVAL, "%s: %s", ca,
					    r ? gnutls_strerror(r) : "no certificate");
		t->x509_ca = true;
		if (x509_file(t, "ca-crl.pem", ca, sizeof(ca)) == 0 &&
		    (r = gnutls_certificate_set_x509_crl_file(t->x509, ca, GNUTLS_X509_FMT_PEM)) <
				    0)
			return dlvm_err_set(err, -EINVAL, "%s: %s", ca, gnutls_strerror(r));
	}
	gnutls_certificate_set_known_dh_params(t->x509, GNUTLS_SEC_PARAM_MEDIUM);
	return 0;
}

/* ---- the whole ---- */

static int mode_parse(const char *s, enum nbd_tls_mode *m, struct dlvm_err *err)
{
	if (!s || !strcmp(s, "require"))
		*m = NBD_TLS_REQUIRE;
	else if (!strcmp(s, "on"))
		*m = NBD_TLS_ON;
	else if (!strcmp(s, "off"))
		*m = NBD_TLS_OFF;
	else
		return dlvm_err_set(err, -EINVAL, "--tls %s: expected off, on or require", s);
	return 0;
}

static int dup_opt(char **dst, const char *src, struct dlvm_err *err)
{
	if (src && !(*dst = strdup(src)))
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	return 0;
}

/* The mode against the credentials: TLS cannot be offered without them. */
static int check_mode(const struct nbd_tls *t, bool tcp, struct dlvm_err *err)
{
	bool creds = t->psk || t->x509;

	if (t->mode == NBD_TLS_OFF && creds)
		log_warning(DLVM_LOG_NBD, "--tls off: the TLS credentials given are not used");
	if (creds || t->mode == NBD_TLS_OFF)
		return 0;
	if (t->mode == NBD_TLS_ON)
		return dlvm_err_set(err, -EINVAL,
				    "--tls on: no credentials to offer: give "
				    "--tls-psk FILE or --tls-certificates DIR");
	if (tcp)
		return dlvm_err_set(err, -EINVAL,
				    "the NBD TCP listener requires TLS (--tls require, the "
				    "default) but no credentials are configured: give --tls-psk "
				    "FILE or --tls-certificates DIR, or --nbd-listen none, or "
				    "--tls off to serve plain TCP (then every local user can "
				    "open every export)");
	return 0;
}

/* Does the CPU encrypt AES in hardware? */
static bool aes_in_hardware(void)
{
#if defined(__x86_64__) || defined(__i386__)
	return __builtin_cpu_supports("aes") && __builtin_cpu_supports("pclmul");
#else
	return false;
#endif
}

/*
 * GnuTLS's defaults, and:
 * - the PSK key exchanges with (EC)DHE, for forward secrecy (PSK is not in
 *   the defaults);
 * - where the CPU has AES instructions, AES-GCM before ChaCha20-Poly1305,
 *   chosen by the server: GnuTLS may prefer ChaCha20 even there, at a
 *   fraction of AES-GCM's speed.
 */
static int priority_init(struct nbd_tls *t, const char **pos)
{
	char prio[128];

	snprintf(prio, sizeof(prio), "%s%s", t->psk ? "+ECDHE-PSK:+DHE-PSK" : "",
		 aes_in_hardware() ? ":-CHACHA20-POLY1305:+CHACHA20-POLY1305:%SERVER_PRECEDENCE"
				   : "");
	if (!prio[0])
		return gnutls_priority_init(&t->prio, NULL, pos);
	return gnutls_priority_init2(&t->prio, prio + (prio[0] == ':'), pos,
				     GNUTLS_PRIORITY_INIT_DEF_APPEND);
}

int nbd_tls_new(const struct nbd_tls_opts *o, struct nbd_tls **out, struct dlvm_err *err)
{
	struct nbd_tls *t = calloc(1, sizeof(*t));
	const char *pos = NULL;
	int r;

	if (!t)
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	if ((r = mode_parse(o->mode, &t->mode, err)) < 0 ||
	    (r = dup_opt(&t->psk_file, o->psk_file, err)) < 0 ||
	    (r = dup_opt(&t->cert_dir, o->cert_dir, err)) < 0 ||
	    (r = dup_opt(&t->access_file, o->access_file, err)) < 0)
		goto fail;
	if ((t->psk_file && (r = psk_load(t, err)) < 0) ||
	    (t->cert_dir && (r = x509_load(t, err)) < 0) ||
	    (t->access_file && (r = nbd_access_load(t->access_file, &t->access, err)) < 0) ||
	    (r = check_mode(t, o->tcp, err)) < 0)
		goto fail;
	r = priority_init(t, &pos);
	if (r < 0) {
		t->prio = NULL;
		r = dlvm_err_set(err, -EINVAL, "TLS priorities: %s", gnutls_strerror(r));
		goto fail;
	}
	*out = t;
	return 0;
fail:
	nbd_tls_free(t);
	return r;
}

void nbd_tls_describe(const struct nbd_tls *t, bool tcp, char *buf, size_t len)
{
	static const char *const tcp_mode[] = {
		[NBD_TLS_OFF] = "plain TCP, no TLS (--tls off)",
		[NBD_TLS_ON] = "TLS offered, not required (--tls on)",
		[NBD_TLS_REQUIRE] = "TLS required",
	};
	size_t o;

	if (tcp)
		o = (size_t)snprintf(buf, len, "%s", tcp_mode[t->mode]);
	else
		o = (size_t)snprintf(buf, len, "no TLS needed, STARTTLS %s",
				     nbd_tls_offered(t) ? "accepted" : "refused");
	if (nbd_tls_offered(t) && t->psk && o < len)
		o += (size_t)snprintf(buf + o, len - o, "; PSK: %zu identit%s from %s", t->nkeys,
				      t->nkeys == 1 ? "y" : "ies", t->psk_file);
	if (nbd_tls_offered(t) && t->x509 && o < len)
		o += (size_t)snprintf(buf + o, len - o, "; X.509 from %s, client certificates %s",
				      t->cert_dir,
				      t->x509_ca ? "verified against ca-cert.pem"
						 : "not asked for");
	if (tcp && t->access && o < len)
		snprintf(buf + o, len - o, "; access rules from %s (%zu)", t->access_file,
			 nbd_access_count(t->access));
	else if (tcp && o < len)
		snprintf(buf + o, len - o, "; no access rules: %s every export",
			 t->mode == NBD_TLS_REQUIRE ? "every TLS identity opens"
						    : "every client opens");
}

bool nbd_tls_allows(const struct nbd_tls *t, const struct nbd_tls_conn *tc, const char *export)
{
	const char *const *ids = NULL;
	size_t nids = 0;

	if (!t || !t->access)
		return true;
	if (tc)
		nbd_tls_conn_ids(tc, &ids, &nids);
	return nbd_access_allows(t->access, ids, nids, export);
}
