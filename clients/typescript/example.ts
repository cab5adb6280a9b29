// A user's calls through a client generated from the committed contract (openapi/openapi.json):
// types from openapi-typescript (`npm run generate`), calls with openapi-fetch. `npm run check`
// type-checks them; the test suite also compiles and runs them against a running service
// (BASE_URL, API_TOKEN) and fails on any mismatch it reports.
import createClient from "openapi-fetch";
import type { components, paths } from "./api.d.ts";

type Problem = components["schemas"]["Problem"];

const baseUrl = process.env.BASE_URL ?? "http://127.0.0.1:8000";
const api = createClient<paths>({ baseUrl });

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`check failed: ${what}`);
}

// A calculator: optional request fields may be left out (generated with --default-non-nullable false).
const params = await api.POST("/v1/params", { body: { model: { preset: "llama-2-70b" } } });
check(params.data !== undefined && params.data.total > 6.8e10 && params.data.total < 7.0e10, "llama-2-70b has 69.0B parameters");
const total: number = params.data!.total; // a required response field: no undefined to narrow away

const memory = await api.POST("/v1/memory/training", {
  body: { model: { preset: "llama-2-7b" }, gpu: "h100-sxm", seq_len: 4096, micro_batch_size: 1, parallelism: { tp: 2 } },
});
check(memory.data !== undefined && typeof memory.data.fits === "boolean", "training memory answers fits");

// A catalog read and its ETag, then an authenticated write with If-Match.
const read = await api.GET("/v1/gpus/{gpu_id}", { params: { path: { gpu_id: "h100-sxm" } } });
const etag = read.response.headers.get("ETag");
check(read.data !== undefined && read.data.id === "h100-sxm" && etag !== null, "a GPU read carries its ETag");

const writer = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${process.env.API_TOKEN ?? ""}` } });
const patched = await writer.PATCH("/v1/gpus/{gpu_id}", {
  params: { path: { gpu_id: "h100-sxm" }, header: { "If-Match": etag! } },
  body: { notes: "checked by the TypeScript example" },
});
check(patched.data !== undefined && patched.data.notes === "checked by the TypeScript example", "the write with If-Match applies");
const stale = await writer.PATCH("/v1/gpus/{gpu_id}", {
  params: { path: { gpu_id: "h100-sxm" }, header: { "If-Match": etag! } },
  body: { notes: "lost update" },
});
check(stale.response.status === 412, "a stale If-Match is 412");

// A typed 422: the error is a Problem with the field and the reason.
const bad = await api.POST("/v1/params", { body: { model: { n_layers: 0, d_model: 64, n_heads: 4, d_ff: 256, vocab_size: 1000 } } });
const problem: Problem | undefined = bad.error;
check(bad.response.status === 422 && problem !== undefined, "a bad field is a 422 problem");
const fields = (problem!.errors ?? []).map((e) => e.loc.join("."));
check(fields.some((loc) => loc.includes("n_layers")), `the 422 names the field (got ${fields.join(", ")})`);

console.log(JSON.stringify({ total_params: total, etag, problem_fields: fields }));
