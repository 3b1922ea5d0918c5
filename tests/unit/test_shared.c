/* SPDX-License-Identifier: MIT */
/*
 * Shared VGs through the command layer: vgcreate --shared on PV files, the
 * hidden lockspace LV, refusals without a host id, and two contexts joined
 * as host 1 and host 2 (two "hosts" in one process, real clock, io_timeout
 * 1 s) seeing each other's changes.
 */
#include "helpers.h"

#include <unistd.h>

#include "dlvm/cmd.h"
#include "dlvm/lease.h"

struct files {
	char dir[64];
	char a[96], b[96], list[200];
};

static void files_make(struct files *f)
{
	snprintf(f->dir, sizeof(f->dir), "/tmp/dlvm-test-shared-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->a, sizeof(f->a), "%s/a.img", f->dir);
	snprintf(f->b, sizeof(f->b), "%s/b.img", f->dir);
	snprintf(f->list, sizeof(f->list), "%s,%s", f->a, f->b);
}

static void files_remove(struct files *f)
{
	unlink(f->a);
	unlink(f->b);
	rmdir(f->dir);
}

/* Run one command in a context; returns its result, resp in *out (or freed). */
static int run(struct dlvm_ctx *ctx, const char *cmd, const char *req_json, json_t **out,
	       struct dlvm_err *e)
{
	json_error_t je;
	json_t *req = json_loads(req_json, 0, &je), *resp = json_object();
	assert_non_null(req);
	dlvm_err_clear(e);
	int r = dlvm_cmd_run(ctx, cmd, req, resp, e);
	json_decref(req);
	if (out)
		*out = resp;
	else
		json_decref(resp);
	return r;
}

/* A one-shot context, as the CLI makes when no daemon runs. */
static int offline(struct files *f, const char *cmd, const char *req, json_t **out,
		   struct dlvm_err *e)
{
	struct dlvm_ctx_opts o = { .devices = f->list };
	struct dlvm_ctx *ctx;
	assert_ok(dlvm_ctx_new(&o, &ctx, e), e);
	int r = run(ctx, cmd, req, out, e);
	dlvm_ctx_free(ctx);
	return r;
}

static void make_shared_vg(struct files *f)
{
	struct dlvm_err e = { 0 };
	char req[400];

	files_make(f);
	snprintf(req, sizeof(req), "{\"opts\": {\"size\": \"64m\"}, \"args\": [\"%s\", \"%s\"]}",
		 f->a, f->b);
	assert_ok(offline(f, "pvcreate", req, NULL, &e), &e);
	snprintf(req, sizeof(req),
		 "{\"opts\": {\"shared\": true, \"max-hosts\": \"4\"}, "
		 "\"args\": [\"vgs\", \"%s\", \"%s\"]}",
		 f->a, f->b);
	assert_ok(offline(f, "vgcreate", req, NULL, &e), &e);
}

static size_t report_rows(json_t *resp)
{
	return json_array_size(json_object_get(json_object_get(resp, "report"), "rows"));
}

static const char *row_str(json_t *resp, size_t i, const char *key)
{
	json_t *rows = json_object_get(json_object_get(resp, "report"), "rows");
	return json_string_value(json_object_get(json_array_get(rows, i), key));
}

static void test_vgcreate_shared_offline(void **state)
{
	struct files f;
	struct dlvm_err e = { 0 };
	json_t *resp;
	(void)state;

	make_shared_vg(&f);
	/* the lockspace LV is hidden unless -a, and shown in brackets */
	assert_ok(offline(&f, "lvs", "{\"args\": [\"vgs\"]}", &resp, &e), &e);
	assert_int_equal(report_rows(resp), 0);
	json_decref(resp);
	assert_ok(offline(&f, "lvs", "{\"opts\": {\"all\": true}, \"args\": [\"vgs\"]}", &resp, &e),
		  &e);
	assert_int_equal(report_rows(resp), 1);
	assert_string_equal(row_str(resp, 0, "lv_name"), "[lvmlock]");
	json_decref(resp);
	assert_ok(offline(&f, "vgs", "{\"args\": [\"vgs\"]}", &resp, &e), &e);
	assert_string_equal(row_str(resp, 0, "vg_attr"), "wz--ns");
	json_decref(resp);
	/* the offline CLI changes nothing in a shared VG, reports still work */
	assert_err(offline(&f, "lvcreate", "{\"opts\": {\"size\": \"4m\"}, \"args\": [\"vgs\"]}",
			   NULL, &e),
		   &e, -EROFS,
		   "shared VG vgs: needs a running dlvmd with "
		   "--host-id");
	assert_err(offline(&f, "lvremove", "{\"args\": [\"vgs/lvmlock\"]}", NULL, &e), &e, -EROFS,
		   "needs a running dlvmd");
	assert_ok(offline(&f, "hosts", "{\"args\": [\"vgs\"]}", &resp, &e), &e);
	assert_int_equal(report_rows(resp), 0); /* no host ever joined */
	json_decref(resp);
	assert_ok(offline(&f, "check", "{\"args\": [\"vgs\"]}", NULL, &e), &e);
	files_remove(&f);
}

static void test_bad_options(void **state)
{
	struct files f;
	struct dlvm_err e = { 0 };
	char req[400];
	(void)state;

	files_make(&f);
	snprintf(req, sizeof(req), "{\"opts\": {\"size\": \"64m\"}, \"args\": [\"%s\"]}", f.a);
	assert_ok(offline(&f, "pvcreate", req, NULL, &e), &e);
	snprintf(req, sizeof(req), "{\"opts\": {\"max-hosts\": \"4\"}, \"args\": [\"v\", \"%s\"]}",
		 f.a);
	assert_err(offline(&f, "vgcreate", req, NULL, &e), &e, -EINVAL,
		   "--max-hosts needs "
		   "--shared");
	snprintf(req, sizeof(req),
		 "{\"opts\": {\"shared\": true, \"max-hosts\": \"2001\"}, "
		 "\"args\": [\"v\", \"%s\"]}",
		 f.a);
	assert_err(offline(&f, "vgcreate", req, NULL, &e), &e, -EINVAL, "must be 1 to 2000");
	files_remove(&f);
}

/* A daemon's context as host id (0: none) under lease name `name` (NULL:
 * "unit:hostID"), a change waiting up to wait_ms for a busy VG lease. */
static struct dlvm_ctx *host_ctx(struct files *f, uint32_t id, const char *name, uint32_t wait_ms)
{
	char lease_name[64];
	struct dlvm_ctx_opts o = { .devices = f->list,
				   .daemon = true,
				   .host_id = id,
				   .io_timeout = 1,
				   .lease_name = lease_name,
				   .lease_wait_ms = wait_ms };
	struct dlvm_err e = { 0 };
	struct dlvm_ctx *ctx;

	if (name)
		snprintf(lease_name, sizeof(lease_name), "%s", name);
	else
		snprintf(lease_name, sizeof(lease_name), "unit:host%u", id);
	assert_ok(dlvm_ctx_new(&o, &ctx, &e), &e);
	assert_ok(dlvm_ctx_load(ctx, &e), &e);
	return ctx;
}

static void test_two_hosts(void **state)
{
	struct files f;
	struct dlvm_ctx *h1, *h2, *ro;
	struct dlvm_err e = { 0 };
	json_t *resp;
	(void)state;

	make_shared_vg(&f);
	/* host 1 waits 2T for a busy VG lease: well before host 3 below
	 * could be judged dead */
	h1 = host_ctx(&f, 1, NULL, 2000);
	h2 = host_ctx(&f, 2, NULL, 0);
	assert_ok(dlvm_ctx_join(h1, &e), &e);
	assert_ok(dlvm_ctx_join(h2, &e), &e);

	assert_ok(run(h1, "lvcreate",
		      "{\"opts\": {\"name\": \"a\", \"size\": \"4m\"}, "
		      "\"args\": [\"vgs\"]}",
		      &resp, &e),
		  &e);
	json_decref(resp);
	/* host 2 appends after host 1's record: it must have caught up */
	assert_ok(run(h2, "lvextend", "{\"opts\": {\"size\": \"+4m\"}, \"args\": [\"vgs/a\"]}",
		      NULL, &e),
		  &e);
	assert_ok(run(h1, "lvs", "{\"args\": [\"vgs/a\"]}", &resp, &e), &e);
	assert_int_equal(json_integer_value(json_object_get(
					 json_array_get(json_object_get(json_object_get(resp,
											"report"),
									"rows"),
							0),
					 "lv_size")),
			 8 << 20);
	json_decref(resp);
	/* (no export hooks here: the system tests see the shared VG message) */
	assert_err(run(h2, "lvchange", "{\"opts\": {\"activate\": \"y\"}, \"args\": [\"vgs/a\"]}",
		       NULL, &e),
		   &e, -ENOTSUP, "activation");
	assert_err(run(h2, "lvrename", "{\"args\": [\"vgs/lvmlock\", \"x\"]}", NULL, &e), &e,
		   -EPERM, "holds the lease area of shared VG vgs");

	assert_ok(run(h2, "hosts", "{\"args\": [\"vgs\"]}", &resp, &e), &e);
	assert_int_equal(report_rows(resp), 2);
	assert_string_equal(row_str(resp, 0, "host_state"), "live");
	assert_string_equal(row_str(resp, 0, "host_this"), "");
	assert_string_equal(row_str(resp, 1, "host_this"), "yes");
	json_decref(resp);

	/* while another host holds the VG lease, a change waits 2T, then fails
	 * naming the holder; once released it goes through */
	const struct dlvm_vg *vg = dlvm_ctx_vg_at(h1, 0);
	struct dlvm_lv *lsl = NULL;
	for (size_t i = 0; i < vg->nlv; i++)
		if (vg->lvs[i]->flags & DLVM_LV_LOCKSPACE)
			lsl = vg->lvs[i];
	assert_non_null(lsl);
	struct dlvm_pv *pv = dlvm_pv_find_id(vg, lsl->segs[0]->area[0].pv_id);
	struct dlvm_lease_area *area;
	struct dlvm_lockspace *ls3;
	struct dlvm_paxos_lease held;
	assert_ok(dlvm_lease_area_open(pv->dev,
				       pv->d.pe_start + lsl->segs[0]->area[0].pe_start *
									vg->info.extent_size,
				       lsl->le_count * vg->info.extent_size, &area, &e),
		  &e);
	assert_ok(dlvm_lockspace_new(area, NULL, 1, &ls3, &e), &e);
	assert_ok(dlvm_lockspace_acquire(ls3, 3, "unit:host3", NULL, &e), &e);
	assert_ok(dlvm_paxos_acquire(ls3, 0, DLVM_LEASE_EXCLUSIVE, &held, &e), &e);
	assert_ok(dlvm_lockspace_renew(ls3, &e), &e);
	assert_err(run(h1, "lvcreate",
		       "{\"opts\": {\"name\": \"b\", \"size\": \"4m\"}, "
		       "\"args\": [\"vgs\"]}",
		       NULL, &e),
		   &e, -EBUSY, "held by host id 3");
	assert_ok(dlvm_lockspace_renew(ls3, &e), &e);
	assert_ok(dlvm_paxos_release(ls3, &held, &e), &e);
	assert_ok(dlvm_lockspace_release(ls3, &e), &e);
	dlvm_lockspace_free(ls3);
	dlvm_lease_area_close(area);
	assert_ok(run(h1, "lvcreate",
		      "{\"opts\": {\"name\": \"b\", \"size\": \"4m\"}, "
		      "\"args\": [\"vgs\"]}",
		      NULL, &e),
		  &e);

	/* a daemon context without a host id may not change it */
	ro = host_ctx(&f, 0, NULL, 0);
	assert_err(run(ro, "lvremove", "{\"args\": [\"vgs/a\"]}", NULL, &e), &e, -EROFS,
		   "vgs: shared VG: start dlvmd with --host-id to change it");
	dlvm_ctx_free(ro);

	/* the same host id under another name is refused, naming the holder */
	struct dlvm_ctx *dup = host_ctx(&f, 1, "unit:other", 0);
	assert_err(dlvm_ctx_join(dup, &e), &e, -EBUSY, "held by host 'unit:host1'");
	dlvm_ctx_free(dup);

	/* vgremove waits for the other hosts to leave */
	assert_err(run(h1, "vgremove", "{\"opts\": {\"force\": true}, \"args\": [\"vgs\"]}", NULL,
		       &e),
		   &e, -EBUSY, "still in the lockspace");
	dlvm_ctx_free(h2);
	usleep(1200 * 1000); /* host 1 sees the release at its next renewal (T/2) */
	assert_ok(run(h1, "vgremove", "{\"opts\": {\"force\": true}, \"args\": [\"vgs\"]}", NULL,
		      &e),
		  &e);
	dlvm_ctx_free(h1);
	files_remove(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vgcreate_shared_offline),
		cmocka_unit_test(test_bad_options),
		cmocka_unit_test(test_two_hosts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
