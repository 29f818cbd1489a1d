/** Helpers for root-relative byte-string paths ('' is the root). */

export function joinRel(dir: string, name: string): string {
  if (name === '.' || name === '') return dir === '.' ? '' : dir;
  if (dir === '' || dir === '.') return name;
  return dir.endsWith('/') ? dir + name : `${dir}/${name}`;
}

export function dirOf(rel: string): string {
  const i = rel.lastIndexOf('/');
  return i < 0 ? '' : rel.slice(0, i);
}

export function baseOf(rel: string): string {
  const i = rel.lastIndexOf('/');
  return i < 0 ? rel : rel.slice(i + 1);
}

/**
 * The length of the reference's dirbuf for root-relative directory `rel` below the server's
 * `rootPath`: the absolute path, cleaned, with a trailing '/' (exclude.c set_filter_dir()).
 */
export function dirbufLength(rootPath: string, rel: string): number {
  const parts = `${rootPath}/${rel}`.split('/').filter((c) => c !== '' && c !== '.');
  return parts.length === 0 ? 1 : parts.reduce((n, c) => n + c.length + 1, 1);
}
