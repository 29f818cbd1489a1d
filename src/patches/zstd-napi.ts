/**
 * zstd-napi's low-level binding (zstd-napi 0.0.13, `zstd-napi/binding`): the streaming contexts
 * the zstd token codec drives directly, one per session, never reset (as rsync does).
 */
import { createRequire } from 'node:module';
import type * as ZstdBinding from 'zstd-napi/binding.js';

const require = createRequire(import.meta.url);

export const zstdBinding = require('zstd-napi/binding') as typeof ZstdBinding;

/** Self-check: problems with the installed binding's shape ([] when none). */
export function checkZstdBinding(b: Partial<typeof ZstdBinding> = zstdBinding): string[] {
  const problems: string[] = [];
  for (const name of ['CCtx', 'DCtx', 'minCLevel', 'maxCLevel'] as const) {
    if (typeof b[name] !== 'function') problems.push(`zstd-napi/binding: ${name} is missing`);
  }
  if (b.CParameter?.compressionLevel === undefined) problems.push('zstd-napi/binding: CParameter.compressionLevel is missing');
  if (b.DParameter?.windowLogMax === undefined) problems.push('zstd-napi/binding: DParameter.windowLogMax is missing');
  if (b.EndDirective?.flush === undefined || b.EndDirective?.continue === undefined) {
    problems.push('zstd-napi/binding: EndDirective.flush/continue are missing');
  }
  return problems;
}
