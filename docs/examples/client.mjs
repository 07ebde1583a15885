// A Spillway client in Node (18 or later, fetch built in): post records
// with an Idempotency-Key, retry 429/503 after Retry-After (the same key
// makes a repeat harmless), then wait for the commit with GET ?wait=N.
//
//   node client.mjs http://127.0.0.1:8080 orders '[{"id": 1, "total": 9.5}]'
//
// Prints the job's final status as JSON; exits 0 when committed, 1 when
// failed, 2 when it gave up. SPILLWAY_TOKEN, if set, is sent as a bearer
// token; SPILLWAY_MAX_RETRY_WAIT caps one Retry-After (default 30 s).
import { randomUUID } from "node:crypto";

const sleep = (s) => new Promise((r) => setTimeout(r, s * 1000));
const auth = process.env.SPILLWAY_TOKEN ? { Authorization: "Bearer " + process.env.SPILLWAY_TOKEN } : {};
const cap = Number(process.env.SPILLWAY_MAX_RETRY_WAIT || 30);

async function post(base, sink, records, attempts = 10) {
  // Made once: a retry after a lost answer or a 503 cannot queue twice.
  const key = randomUUID();
  for (let i = 0; i < attempts; i++) {
    const r = await fetch(`${base}/v1/sinks/${sink}/records`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Idempotency-Key": key, ...auth },
      body: JSON.stringify(records),
    });
    const body = await r.json();
    if (r.status === 200 || r.status === 202) return body.job_id;
    if (r.status === 429 || r.status === 503) {
      await sleep(Math.min(Number(r.headers.get("retry-after") || 1), cap));
      continue;
    }
    // Anything else will not get better by retrying: say what to fix.
    throw new Error(`refused (${r.status}): ${body.detail}`);
  }
  throw new Error(`gave up after ${attempts} attempts`);
}

async function wait(base, jobId, deadlineS = 120) {
  const end = Date.now() + deadlineS * 1000;
  while (Date.now() < end) {
    const r = await fetch(`${base}/v1/jobs/${jobId}?wait=10`, { headers: auth });
    const body = await r.json();
    if (r.status === 200 && body.status !== "queued") return body;
    if (r.status === 429 || r.status === 503) await sleep(Number(r.headers.get("retry-after") || 1));
    else if (r.status !== 200) throw new Error(`cannot read the job (${r.status}): ${body.detail}`);
  }
  return null;
}

const [base, sink, records] = [process.argv[2].replace(/\/$/, ""), process.argv[3], JSON.parse(process.argv[4])];
const final = await wait(base, await post(base, sink, records));
console.log(JSON.stringify(final));
process.exit(final === null ? 2 : final.status === "committed" ? 0 : 1);
