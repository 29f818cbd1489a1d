/**
 * Filter lists as a session applies them: rsync's check_filter() over the rules (compiled in
 * filter-rules.ts), per-directory merge files (dir-merge) with inheritance, and the CVS defaults. Names are byte strings relative to
 * the transfer root. The transfer root plays the role of a daemon module root: nothing outside it is
 * ever read or matched against.
 *
 * Merge files (". FILE" rules) are read once, when the FilterSet is built, via readMergeFile relative
 * to the transfer root (a name without '/' inside a per-directory file, too: that is where the
 * reference opens it, its working directory). Names that are absolute or contain ".." are refused.
 */
import { ExitCode, FileListAbort, ProtocolError } from '../protocol/errors.js';
import {
  CVS_DEFAULT_PATTERNS,
  FilterSyntaxError,
  mergeNameEscapes,
  NO_TEMPLATE,
  parseRuleWithTemplate,
  type FilterRule,
  type RuleTemplate,
} from '../protocol/filter.js';
import { quoted } from '../printable.js';
import { dirOf, joinRel } from './relpath.js';
import { errnoText, hasCode } from '../sandbox/errors.js';
import { compileMatch, entryMatches, type MatchEntry } from './filter-rules.js';
import { C_SLASH } from './wildmatch.js';
import { filterTraceLine, READ_EARLIER, ruleFrom } from './filter-trace.js';

/** A merge file's bytes, or null when it cannot be opened; a SandboxError 'EFBIG' when it is over the limit. */
export type MergeFileReader = (dirRel: string, fileName: string) => Buffer | null;

export interface FilterOptions {
  side: 'sender' | 'receiver';
  deleteExcluded?: boolean;
  cvsExclude?: boolean;
  protocol: number;
  readMergeFile?: MergeFileReader;
  /** Set when the client asked for the sender's filter traces (-vv): one MSG_INFO line per decided name. */
  trace?: (line: string) => void;
  /**
   * The length of a directory's absolute path on the server as the reference's dirbuf holds it
   * (with its trailing '/'): it decides when a per-directory merge name overflows MAXPATHLEN.
   * Only the boundary shows; the path itself is never printed.
   */
  dirPathLength?: (dirRel: string) => number;
  /** A non-fatal filter error (the reference's FERROR plus io_error |= IOERR_GENERAL). */
  reportError?: (message: string) => void;
}

export interface DirFilter {
  /** Sender building the file list: true if this child (path relative to the transfer root) is excluded (hidden). */
  excluded(relPath: string, isDir: boolean): boolean;
  /**
   * Receiver deciding deletions: is this existing destination entry protected (excluded by a
   * receiver-side rule), and is it protected only by perishable rules (i.e. not protected once
   * perishable rules are ignored, the reference's ignore_perishable).
   */
  protectedFromDelete(relPath: string, isDir: boolean): { protected: boolean; perishable: boolean };
}

export const MAX_MERGE_FILE_BYTES = 1024 * 1024;
/** Rules in one merge file (the same bound as the wire list). */
const MAX_MERGE_FILE_RULES = 100_000;
/** Rules held by cached directory states; older states are dropped (and rebuilt if asked again). */
const MAX_CACHED_RULES = 1_000_000;
/** The reference's MAX_MERGE_DEPTH (a merge file naming itself). */
const MAX_MERGE_DEPTH = 32;
/** Lines longer than the reference's line buffer are discarded, as it does. */
const MAX_MERGE_LINE = 4096 + 1024 - 1;
/** Directory states kept for parent lookups; older ones are rebuilt on demand. */
const DIR_CACHE_MAX = 8192;
/** The one filter syntax reason passed on for a merge file's rule (it quotes nothing of it). */
const UNKNOWN_RULE = 'Unknown filter rule';
/** The reference's MAXPATHLEN on Linux. */
const MAXPATHLEN = 4096;

interface MergeSlot {
  kind: 'dirMerge';
  fileName: string;
  /** The name came from a merge file's content (never shown in messages). */
  nameFromFile: boolean;
  template: RuleTemplate;
  noInherit: boolean;
  perishable: boolean;
  /** The trace suffix of its rules (exclude.c debug_type). */
  listType: string;
  /** The rule's name as written, until the first directory finished its setup (setup_merge_file). */
  pattern: string;
  /**
   * setup_merge_file() runs once, in the first directory: a name with '/' that overflowed there
   * stays whole (and unusable) for every directory.
   */
  setup: 'pending' | 'done' | 'overflowed';
}

type Entry = MatchEntry | MergeSlot;

/** A per-directory list: this directory's rules, then the inherited ones. */
interface MergeList {
  local: Entry[];
  parent: MergeList | null;
}

type DirState = Map<MergeSlot, MergeList>;

const EMPTY_LIST: MergeList = { local: [], parent: null };

function templateOf(rule: FilterRule): RuleTemplate {
  const mo = rule.mergeOptions;
  return {
    noPrefixes: mo?.onlyInclude ? 'include' : mo?.onlyExclude || mo?.cvs ? 'exclude' : null,
    cvs: mo?.cvs ?? false,
    wordSplit: (mo?.wordSplit ?? false) || (mo?.cvs ?? false),
    senderOnly: rule.senderSide && !rule.receiverSide,
    receiverOnly: rule.receiverSide && !rule.senderSide,
    perishable: rule.perishable,
    dirOnly: rule.dirOnly,
  };
}

function baseName(path: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? path : path.slice(i + 1);
}

/** clean_fname(CFN_COLLAPSE_DOT_DOT_DIRS) of a relative name: no empty or "." components, "x/.." folded. */
function cleanName(name: string): string {
  const out: string[] = [];
  for (const c of name.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..' && out.length > 0 && out[out.length - 1] !== '..') out.pop();
    else out.push(c);
  }
  return out.join('/');
}

/** Normalises a directory path relative to the transfer root: no leading "./" or '/', no trailing '/'. */
function normalizeDir(dirRel: string): string {
  let d = dirRel;
  while (d.startsWith('./')) d = d.slice(2);
  while (d.startsWith('/')) d = d.slice(1);
  while (d.endsWith('/')) d = d.slice(0, -1);
  if (d === '.') d = '';
  return d;
}

/** Where rules being parsed come from, for error messages that never quote file content. */
interface Source {
  /** Rule text came from a file (do not echo it, nor names it mentions). */
  fromFile: boolean;
  /** Anchored rules anchor here ('' = transfer root). */
  anchorDir: string;
  /** Directory a per-directory file was read from (relative merge names with '/' resolve here). */
  dir: string;
  depth: number;
  /** Basenames of active dir-merge files (a repeated one is ignored, as in the reference). */
  activeNames: Set<string>;
  /** The file being parsed, by a name safe to show (null: a file named it, or none). */
  file: string | null;
  /** Where the file being parsed was named, when a file named it (null: not known). */
  namedAt: string | null;
  /** The line (or, for word-split files, -1) of the rule being parsed. */
  line: number;
  /** The trace suffix of the list the rules go to ('' = the global list). */
  listType: string;
}

/** exclude.c rule_src_where(): where the rule being parsed comes from, never what it says. */
function sourceWhere(src: Source): string {
  if (src.file === null) return src.namedAt === null ? READ_EARLIER : `a file named at ${src.namedAt}`;
  return src.line < 0 ? src.file : `${src.file} line ${src.line}`;
}

/** The content of a file named by `src`'s rule `shown` (exclude.c parse_filter_file()'s provenance). */
function contentSource(src: Source, shown: string, wordSplit: boolean, rest: Pick<Source, 'anchorDir' | 'dir' | 'depth' | 'activeNames' | 'listType'>): Source {
  const line = wordSplit ? -1 : 0;
  if (src.fromFile) return { ...rest, fromFile: true, file: null, namedAt: sourceWhere(src), line };
  return { ...rest, fromFile: true, file: shown, namedAt: null, line };
}

export class FilterSet {
  readonly empty: boolean;
  private readonly top: Entry[];
  private readonly side: 'sender' | 'receiver';
  private readonly deleteExcluded: boolean;
  private readonly protocol: number;
  private readonly reader: MergeFileReader | undefined;
  readonly trace: ((line: string) => void) | undefined;
  private readonly hasDirMerge: boolean;
  private readonly dirPathLength: ((dirRel: string) => number) | undefined;
  private readonly reportError: ((message: string) => void) | undefined;
  private readonly rootFilter: DirFilterImpl;
  private readonly cache = new Map<string, DirFilterImpl>();
  /** Rules loaded while building the current directory state. */
  private buildRules = 0;
  private cachedRules = 0;

  constructor(rules: FilterRule[], opts: FilterOptions) {
    this.side = opts.side;
    this.deleteExcluded = opts.deleteExcluded ?? false;
    this.protocol = opts.protocol;
    this.reader = opts.readMergeFile;
    this.trace = opts.trace;
    this.dirPathLength = opts.dirPathLength;
    this.reportError = opts.reportError;
    const all = [...rules];
    if (opts.cvsExclude) {
      // recv_filter_list(): a server sender adds ":C" and "-C" itself (a client receiver keeps
      // them local); a receiver adds ":C" only below protocol 29, where it cannot be sent.
      if (opts.side === 'sender' || opts.protocol < 29) all.push(parseRuleWithTemplate(':C', 30, NO_TEMPLATE));
      if (opts.side === 'sender') all.push(parseRuleWithTemplate('-C', 30, NO_TEMPLATE));
    }
    const src: Source = { fromFile: false, anchorDir: '', dir: '', depth: 0, activeNames: new Set(), file: null, namedAt: null, line: 0, listType: '' };
    this.top = [];
    for (const rule of all) this.addRule(this.top, rule, src);
    this.hasDirMerge = this.top.some((e) => e.kind === 'dirMerge');
    if (this.hasDirMerge && !this.reader) {
      throw new ProtocolError('rrsyncd: per-directory filter merge files cannot be read here', ExitCode.FILEIO);
    }
    this.empty = this.top.length === 0;
    this.rootFilter = new DirFilterImpl(this, new Map(), 0);
  }

  /** Call for each directory while walking, parents before children ('' is the transfer root). */
  enterDir(dirRel: string): DirFilter {
    if (!this.hasDirMerge) return this.rootFilter;
    return this.dirFilterFor(normalizeDir(dirRel));
  }

  private dirFilterFor(dir: string): DirFilterImpl {
    const cached = this.cache.get(dir);
    if (cached) return cached;
    const parentState = dir === '' ? null : this.dirFilterFor(dirOf(dir)).state;
    this.buildRules = 0;
    const state: DirState = new Map();
    const activeNames = new Set<string>();
    for (const e of this.top) if (e.kind === 'dirMerge') activeNames.add(e.fileName);
    if (parentState) for (const slot of parentState.keys()) activeNames.add(slot.fileName);
    const visit = (entries: Iterable<Entry>): void => {
      for (const e of entries) if (e.kind === 'dirMerge') this.loadSlot(e, dir, parentState, state, activeNames, visit);
    };
    visit(this.top);
    const filter = new DirFilterImpl(this, state, this.buildRules);
    while (this.cache.size > 0 && (this.cache.size >= DIR_CACHE_MAX || this.cachedRules + filter.ruleCount > MAX_CACHED_RULES)) {
      const [oldestDir, oldest] = this.cache.entries().next().value as [string, DirFilterImpl];
      this.cache.delete(oldestDir);
      this.cachedRules -= oldest.ruleCount;
    }
    this.cache.set(dir, filter);
    this.cachedRules += filter.ruleCount;
    return filter;
  }

  private loadSlot(
    slot: MergeSlot,
    dir: string,
    parentState: DirState | null,
    state: DirState,
    activeNames: Set<string>,
    visit: (entries: Iterable<Entry>) => void,
  ): void {
    if (state.has(slot)) return;
    const inherited = slot.noInherit ? null : (parentState?.get(slot) ?? null);
    if (this.pathOverflows(slot, dir)) {
      state.set(slot, inherited ?? EMPTY_LIST);
      return;
    }
    state.set(slot, { local: [], parent: inherited }); // placeholder against cycles
    // Anchored rules of a per-directory file anchor at its directory.
    // A name from a file's content is a deferred merge: the reference no longer knows where from.
    const file = slot.nameFromFile ? null : joinRel(dir, slot.fileName);
    const content: Source = { fromFile: true, anchorDir: dir, dir, depth: 1, activeNames, file, namedAt: null, line: slot.template.wordSplit ? -1 : 0, listType: slot.listType };
    const shown = file === null ? ruleFrom(READ_EARLIER) : quoted(file);
    const { entries, cleared } = this.readRules(dir, slot.fileName, slot.template, shown, content, false);
    const list: MergeList =
      entries.length === 0 && !cleared ? (inherited ?? EMPTY_LIST) : { local: entries, parent: cleared ? null : inherited };
    state.set(slot, list);
    for (let l: MergeList | null = list; l; l = l.parent) visit(l.local);
  }

  /**
   * exclude.c setup_merge_file()/parse_merge_name() and push_local_filters(): a per-directory name
   * that, joined to the directory's absolute path, reaches MAXPATHLEN is reported (never by its
   * text when a file named it) and not read in that directory; the transfer ends with exit 23.
   */
  private pathOverflows(slot: MergeSlot, dir: string): boolean {
    if (!this.dirPathLength) return false;
    const dirLen = this.dirPathLength(dir);
    if (slot.setup === 'pending') {
      const cleaned = cleanName(slot.pattern);
      slot.setup = slot.pattern.includes('/') && dirLen + cleaned.length >= MAXPATHLEN ? 'overflowed' : 'done';
      if (slot.setup === 'overflowed') this.report(`merge-file name overflows: ${slot.nameFromFile ? ruleFrom(READ_EARLIER) : cleaned}`);
    }
    const name = slot.setup === 'overflowed' ? slot.pattern : slot.fileName;
    if (dirLen + name.length < MAXPATHLEN) return false;
    this.report(`cannot add local filter rules in long-named directory: ${slot.nameFromFile ? ruleFrom(READ_EARLIER) : quoted(`${dir || '.'}/`)}`);
    return true;
  }

  private report(message: string): void {
    this.reportError?.(`${message}\n`);
  }

  /**
   * Reads and parses one merge file. `shown` names it in messages (never file content);
   * `content` describes the rules read; `required`: a missing file is an error (". FILE" rules).
   */
  private readRules(
    dir: string,
    fileName: string,
    template: RuleTemplate,
    shown: string,
    content: Source,
    required: boolean,
  ): { entries: Entry[]; cleared: boolean } {
    const buf = this.readMergeFile(dir, fileName, template, shown);
    if (buf === null) {
      if (required) throw this.failedOpen(template, shown, content);
      return { entries: [], cleared: false };
    }
    if (buf.length > MAX_MERGE_FILE_BYTES) throw this.tooLarge(template, shown);
    const entries: Entry[] = [];
    let cleared = false;
    const tokens = splitMergeFile(buf.toString('latin1'), template.wordSplit);
    if (tokens.length > MAX_MERGE_FILE_RULES) {
      throw new ProtocolError(`rrsyncd: too many rules in filter merge file ${shown} (more than ${MAX_MERGE_FILE_RULES})`, ExitCode.SYNTAX);
    }
    this.buildRules += tokens.length;
    let where = 0;
    for (const { rule: token, line } of tokens) {
      where++;
      content.line = line;
      let rule: FilterRule;
      try {
        rule = parseRuleWithTemplate(token, 32, template);
      } catch (err) {
        if (err instanceof ProtocolError) {
          // Never quote merge-file content: the peer picks the file (docs/attacks.md §2.4). A syntax
          // error reads as rsync's: "Unknown filter rule: <rule from FILE line N>".
          // Other reasons may quote a byte of the rule, so they are not passed on.
          if (err instanceof FilterSyntaxError && !template.wordSplit) {
            const reason = err.reason === UNKNOWN_RULE ? UNKNOWN_RULE : 'invalid filter rule';
            throw new ProtocolError(`${reason}: ${ruleFrom(sourceWhere(content))}`, ExitCode.SYNTAX);
          }
          const what = err instanceof FilterSyntaxError ? 'invalid filter rule' : 'unusable filter rule';
          throw new ProtocolError(`rrsyncd: ${what} in filter merge file ${shown} (${template.wordSplit ? `word ${where}` : `line ${line}`})`, ExitCode.SYNTAX);
        }
        throw err;
      }
      if (rule.action === 'clear') {
        entries.length = 0;
        cleared = true;
        continue;
      }
      this.addRule(entries, rule, content);
    }
    return { entries, cleared };
  }

  /**
   * One merge file's bytes, or null when it cannot be opened. A file over MAX_MERGE_FILE_BYTES is
   * fatal, as a merge file that cannot be read is for rsync (exclude.c parse_filter_file, exit 11):
   * skipping it would silently drop the protect rules it holds.
   */
  private readMergeFile(dir: string, fileName: string, template: RuleTemplate, shown: string): Buffer | null {
    const reader = this.reader;
    if (!reader) throw new ProtocolError(`rrsyncd: filter merge file ${shown} cannot be read here`, ExitCode.FILEIO);
    try {
      return reader(dir, fileName);
    } catch (err) {
      if (!hasCode(err, 'EFBIG')) throw err;
      throw this.tooLarge(template, shown);
    }
  }

  /** who_am_i() where filter files are read. */
  private who(): string {
    return this.side === 'sender' ? 'sender' : 'generator';
  }

  /**
   * exclude.c parse_filter_file(): a merge file that cannot be opened is fatal (exit 11); a name
   * that came from a file is shown by where it was named, without the errno (an existence oracle).
   */
  private failedOpen(template: RuleTemplate, shown: string, content: Source): ProtocolError {
    const kind = template.noPrefixes === 'include' ? 'include' : 'exclude';
    if (content.file === null) return this.fatal(`failed to open ${kind} file ${shown}`, ExitCode.FILEIO);
    return this.fatal(`rsync: [${this.who()}] failed to open ${kind} file ${content.file}: ${errnoText('ENOENT')}`, ExitCode.FILEIO);
  }

  /**
   * A filter file error that ends the session. On the sender the reference dies while building
   * its file list, before anything of it is written: the client sees the connection close (12).
   */
  private fatal(message: string, code: number): ProtocolError {
    return this.side === 'sender' ? new FileListAbort(message, code) : new ProtocolError(message, code);
  }

  private tooLarge(template: RuleTemplate, shown: string): ProtocolError {
    const who = this.who();
    const kind = template.noPrefixes === 'include' ? 'include' : 'exclude';
    return new ProtocolError(
      `rsync: [${who}] failed to open ${kind} file ${shown}: ${errnoText('EFBIG')} (larger than ${MAX_MERGE_FILE_BYTES} bytes)`,
      ExitCode.FILEIO,
    );
  }

  /** add_rule() for one parsed rule: side filtering, CVS expansion, merge expansion, compilation. */
  private addRule(list: Entry[], rule: FilterRule, src: Source): void {
    switch (rule.action) {
      case 'clear':
        list.length = 0;
        return;
      case 'merge':
      case 'dirMerge':
        this.addMergeRule(list, rule, src);
        return;
      default:
        break;
    }
    if (rule.xattr || !this.appliesHere(rule)) return;
    if (rule.cvs) {
      this.addCvsDefaults(list, rule, src.listType);
      return;
    }
    list.push(compileMatch(rule, src.anchorDir, src.fromFile, src.listType));
  }

  private appliesHere(rule: FilterRule): boolean {
    let receiver = rule.receiverSide;
    const plain = rule.senderSide && rule.receiverSide && !rule.sideExplicit;
    // --delete-excluded turns a plain rule into a sender-side one (parse_rule_tok).
    if (plain && this.deleteExcluded && rule.action !== 'merge' && rule.action !== 'dirMerge') receiver = false;
    return this.side === 'sender' ? rule.senderSide : receiver;
  }

  /** "-C": the default CVS list at this position; perishable from protocol 30. */
  private addCvsDefaults(list: Entry[], rule: FilterRule, listType: string): void {
    const template: RuleTemplate = {
      noPrefixes: rule.action === 'include' ? 'include' : 'exclude',
      cvs: true,
      wordSplit: true,
      senderOnly: rule.senderSide && !rule.receiverSide,
      receiverOnly: rule.receiverSide && !rule.senderSide,
      perishable: rule.perishable || this.protocol >= 30,
      dirOnly: rule.dirOnly,
    };
    for (const pat of CVS_DEFAULT_PATTERNS) {
      const r = parseRuleWithTemplate(pat, 32, template);
      if (this.appliesHere(r)) list.push(compileMatch(r, '', false, listType));
    }
  }

  private addMergeRule(list: Entry[], rule: FilterRule, src: Source): void {
    if (mergeNameEscapes(rule.pattern, rule.action)) {
      // Named as the reference would name it when it reads the file (a dir-merge: later).
      const shown = src.fromFile ? ruleFrom(rule.action === 'dirMerge' ? READ_EARLIER : sourceWhere(src)) : quoted(rule.pattern);
      throw this.fatal(`rrsyncd: filter merge file ${shown} is outside the transfer`, ExitCode.SYNTAX);
    }
    if (src.depth >= MAX_MERGE_DEPTH) {
      const at = src.fromFile ? ruleFrom(sourceWhere(src)) : rule.pattern;
      throw this.fatal(`[${this.who()}] merge-file include depth limit (${MAX_MERGE_DEPTH}) exceeded at ${at}`, ExitCode.FILEIO);
    }
    const name = baseName(rule.pattern);
    // A merge rule whose rules all belong to the other side contributes nothing here.
    const oneSided = rule.senderSide !== rule.receiverSide;
    const usable = !oneSided || (this.side === 'sender' ? rule.senderSide : rule.receiverSide);
    if (rule.mergeOptions?.excludeSelf) {
      // 'e': exclude the merge file itself (a plain rule, both sides), just before the merge rule;
      // its text is the merge rule's, so it keeps that rule's provenance.
      list.push(compileMatch(excludeSelfRule(name), src.anchorDir, src.fromFile, src.listType));
    }
    if (!usable) return;
    const template = templateOf(rule);
    if (rule.action === 'dirMerge') {
      if (src.activeNames.has(name)) return; // the reference ignores a repeated dir-merge file
      src.activeNames.add(name);
      list.push({
        kind: 'dirMerge',
        fileName: name,
        nameFromFile: src.fromFile,
        template,
        noInherit: rule.mergeOptions?.noInherit ?? false,
        perishable: rule.perishable,
        listType: ` [per-dir ${src.fromFile ? ruleFrom(sourceWhere(src)) : name}]`,
        pattern: rule.pattern,
        setup: 'pending',
      });
      return;
    }
    // ". FILE": read now. A name with '/' is relative to the current directory, a bare name to the
    // transfer root (the reference opens a bare name relative to its working directory).
    const path = rule.pattern.includes('/') ? joinRel(src.dir, rule.pattern) : rule.pattern;
    const clean = path.split('/').filter((c) => c !== '' && c !== '.');
    const fileName = clean.pop();
    if (fileName === undefined) throw new ProtocolError('rrsyncd: empty filter merge file name', ExitCode.SYNTAX);
    // Anchored rules of a ". FILE" anchor at the transfer root (no XFLG_ANCHORED2ABS in the reference).
    const content = contentSource(src, rule.pattern, template.wordSplit, {
      anchorDir: '',
      dir: src.dir,
      depth: src.depth + 1,
      activeNames: src.activeNames,
      listType: src.listType,
    });
    const shown = src.fromFile ? ruleFrom(sourceWhere(src)) : quoted(rule.pattern);
    const { entries, cleared } = this.readRules(clean.join('/'), fileName, template, shown, content, true);
    if (cleared) list.length = 0;
    for (const e of entries) list.push(e);
  }

  /** First rule that decides `path` in a directory state, or null. */
  firstMatch(state: DirState, path: string, isDir: boolean, skipPerishable: boolean): MatchEntry | null {
    if (path.charCodeAt(0) === C_SLASH) path = path.slice(1);
    const base = baseName(path);
    return this.scan(this.top, state, path, base, isDir, skipPerishable);
  }

  private scan(entries: Entry[], state: DirState, path: string, base: string, isDir: boolean, skipPerishable: boolean): MatchEntry | null {
    for (const e of entries) {
      if (skipPerishable && e.perishable) continue;
      if (e.kind === 'dirMerge') {
        for (let l = state.get(e) ?? null; l; l = l.parent) {
          const hit = this.scan(l.local, state, path, base, isDir, skipPerishable);
          if (hit) return hit;
        }
        continue;
      }
      if (entryMatches(e, path, base, isDir)) return e;
    }
    return null;
  }
}

function excludeSelfRule(name: string): FilterRule {
  return {
    action: 'exclude',
    pattern: name,
    dirOnly: false,
    anchored: false,
    negate: false,
    senderSide: true,
    receiverSide: true,
    sideExplicit: true, // built directly by the reference, so --delete-excluded leaves it two-sided
    perishable: false,
    cvs: false,
    xattr: false,
  };
}

/** Splits merge-file text into rule strings: words, or lines without comments (parse_filter_file). */
function splitMergeFile(text: string, wordSplit: boolean): Array<{ rule: string; line: number }> {
  const out: Array<{ rule: string; line: number }> = [];
  if (wordSplit) {
    for (const w of text.split(/[ \t\n\v\f\r]+/)) if (w.length > 0 && w.length <= MAX_MERGE_LINE) out.push({ rule: w, line: -1 });
    return out;
  }
  const lines = text.split(/\r\n|\r|\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.length === 0 || line.length > MAX_MERGE_LINE) continue;
    if (line.startsWith(';') || line.startsWith('#')) continue;
    out.push({ rule: line, line: i + 1 });
  }
  return out;
}

class DirFilterImpl implements DirFilter {
  constructor(
    private readonly set: FilterSet,
    readonly state: DirState,
    readonly ruleCount: number,
  ) {}

  excluded(relPath: string, isDir: boolean): boolean {
    const hit = this.set.firstMatch(this.state, relPath, isDir, false);
    if (hit !== null && this.set.trace) this.set.trace(filterTraceLine(hit, relPath, isDir));
    return hit !== null && !hit.include;
  }

  protectedFromDelete(relPath: string, isDir: boolean): { protected: boolean; perishable: boolean } {
    const hit = this.set.firstMatch(this.state, relPath, isDir, false);
    if (hit === null || hit.include) return { protected: false, perishable: false };
    if (!hit.perishable) return { protected: true, perishable: false };
    const solid = this.set.firstMatch(this.state, relPath, isDir, true);
    return { protected: true, perishable: solid === null || solid.include };
  }
}
