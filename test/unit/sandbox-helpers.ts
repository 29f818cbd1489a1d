import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** A fresh temp directory removed when the test ends. */
export function tmpDir(t: { teardown(fn: () => void): void }, prefix = 'sbx-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Absolute Buffer path of a byte-string rel under root (for checking with plain node:fs). */
export function abs(root: string, rel: string): Buffer {
  return Buffer.concat([Buffer.from(root + '/'), Buffer.from(rel, 'latin1')]);
}

/** Recursive listing with mode/mtime/content digest, to prove a directory was left untouched. */
export function snapshot(dir: string): string {
  const out: string[] = [];
  const walk = (p: string, rel: string): void => {
    const st = fs.lstatSync(p, { bigint: true });
    let extra = '';
    if (st.isFile()) extra = fs.readFileSync(p).toString('base64');
    if (st.isSymbolicLink()) extra = fs.readlinkSync(p);
    out.push(`${rel} ${st.mode} ${st.uid}:${st.gid} ${st.mtimeNs} ${st.size} ${extra}`);
    if (st.isDirectory()) for (const name of fs.readdirSync(p).sort()) walk(path.join(p, name), `${rel}/${name}`);
  };
  walk(dir, '.');
  return out.join('\n');
}
