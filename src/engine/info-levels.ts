/**
 * options.c --info levels (INFO_GTE()): each -v adds a line of implied words, then the client's
 * `--info=WORD[N],…` (which it forwards for the words the server's role prints) overrides them.
 */

/** options.c info_verbosity[]: the words -v, -vv imply (level 1, or the digit). */
const BY_VERBOSITY = ['NONREG', 'COPY,DEL,FLIST,MISC,NAME,STATS,SYMSAFE', 'BACKUP,MISC2,MOUNT,NAME2,REMOVE,SKIP'];

const MAX_LEVEL = 4;

/** parse_output_words() for one word: its level after `spec` ("ALL", "NONE", "WORD", "WORDN"). */
function apply(levels: Map<string, number>, words: string[], spec: string): void {
  const m = /^(.*?)(\d*)$/.exec(spec)!;
  const [name, digits] = m[1] === '' ? [spec, ''] : [m[1]!.toUpperCase(), m[2]!];
  const level = digits === '' ? 1 : Math.min(Number(digits), MAX_LEVEL);
  if (name === 'NONE') for (const w of words) levels.set(w, 0);
  else if (name === 'ALL') for (const w of words) levels.set(w, level);
  else levels.set(name, level);
}

/** The level of each --info word the receiving or sending role checks. */
export class InfoLevels {
  private readonly levels = new Map<string, number>();

  constructor(verbose: number, info: readonly string[]) {
    const words = [...new Set(BY_VERBOSITY.join(',').split(',').map((w) => w.replace(/\d+$/, '')))];
    for (const line of BY_VERBOSITY.slice(0, Math.min(verbose, BY_VERBOSITY.length - 1) + 1)) {
      for (const spec of line.split(',')) apply(this.levels, words, spec);
    }
    for (const spec of info) if (spec !== '') apply(this.levels, words, spec);
  }

  /** INFO_GTE(word, level). */
  gte(word: 'BACKUP' | 'SKIP' | 'SYMSAFE', level = 1): boolean {
    return (this.levels.get(word) ?? 0) >= level;
  }
}
