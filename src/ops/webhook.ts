/**
 * The optional HTTP webhook of the event hooks: one JSON POST per event, a timeout per attempt,
 * a bounded number of retries with doubling backoff. A 2xx answer is success; anything else,
 * a network error or a timeout is retried, and the last failure is returned (never thrown).
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';

export interface WebhookOptions {
  url: string;
  timeoutMs: number;
  retries: number;
  /** First backoff; doubled after each failure, at most 30 s. */
  backoffMs?: number;
}

export interface WebhookOutcome {
  ok: boolean;
  attempts: number;
  /** The last status code, or the last error. */
  status?: number;
  error?: string;
}

const MAX_BACKOFF_MS = 30_000;

export async function postWebhook(body: unknown, opts: WebhookOptions): Promise<WebhookOutcome> {
  const payload = Buffer.from(JSON.stringify(body));
  let delay = opts.backoffMs ?? 1000;
  let last: WebhookOutcome = { ok: false, attempts: 0 };
  for (let attempt = 1; attempt <= opts.retries + 1; attempt++) {
    last = { ...(await postOnce(opts.url, payload, opts.timeoutMs)), attempts: attempt };
    if (last.ok) return last;
    if (attempt <= opts.retries) {
      await sleep(delay);
      delay = Math.min(delay * 2, MAX_BACKOFF_MS);
    }
  }
  return last;
}

function postOnce(url: string, payload: Buffer, timeoutMs: number): Promise<Omit<WebhookOutcome, 'attempts'>> {
  return new Promise((resolve) => {
    const send = url.startsWith('https:') ? httpsRequest : httpRequest;
    const req = send(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': payload.length, 'user-agent': 'rrsyncd' },
      timeout: timeoutMs,
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err) => resolve({ ok: false, error: err.message }));
    req.on('response', (res) => {
      res.resume(); // the answer's body is not needed
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        resolve({ ok: status >= 200 && status < 300, status });
      });
      res.on('error', (err) => resolve({ ok: false, status: res.statusCode, error: err.message }));
    });
    req.end(payload);
  });
}
