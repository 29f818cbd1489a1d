#!/usr/bin/env node
// Runs the tap suite and closes with a plain "N passed, N failed" line.
// Usage: npm test [-- test/unit/foo.test.ts ...]
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const tapBin = fileURLToPath(new URL('../node_modules/tap/dist/esm/run.mjs', import.meta.url));
const args = [tapBin, '--reporter=tap', ...process.argv.slice(2)];
const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });

let passed = 0;
let failed = 0;
let tail = '';
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  const text = tail + chunk.toString('utf8');
  const lines = text.split('\n');
  tail = lines.pop() ?? '';
  for (const line of lines) countTopLevel(line);
});

function countTopLevel(line) {
  // Top-level test points are one per test file: "ok 3 - test/x.test.ts # time=..."
  if (/^ok \d+/.test(line)) passed++;
  else if (/^not ok \d+/.test(line)) failed++;
  const summary = /^# \{ total: (\d+), pass: (\d+)(?:, fail: (\d+))?/.exec(line);
  if (summary) summaryLine = { pass: Number(summary[2]), fail: Number(summary[3] ?? 0) };
}
let summaryLine = null;

child.on('close', (code) => {
  if (tail) countTopLevel(tail);
  const p = summaryLine ? summaryLine.pass : passed;
  const f = summaryLine ? summaryLine.fail : failed;
  const bad = code !== 0 && f === 0 ? 1 : f;
  process.stdout.write(`\n${p} passed, ${bad} failed\n`);
  process.exit(code ?? 1);
});
