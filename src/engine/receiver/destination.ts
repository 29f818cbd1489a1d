/**
 * Where a push goes (main.c get_local_name()) and the helper directories it uses (the path
 * options, checked as main.c/options.c do): settled once the first list is in, before the
 * generator starts.
 */
import { confinePath } from '../../policy/paths.js';
import { ExitCode, RsyncError } from '../../protocol/errors.js';
import { isDir } from '../../protocol/flist/entry.js';
import { SandboxError, type EntryStat } from '../../sandbox/sandbox.js';
import { sendInfo, sendWarning } from '../messages.js';
import { baseOf, dirOf, joinRel } from '../relpath.js';
import { printable } from '../../printable.js';
import { altDestOption, auxDir, MAX_BASIS_DIRS, PartialDir, type AltDestType } from './basis-dirs.js';
import type { FileList } from './state.js';
import { describe, type ReceiverState } from './state.js';

/** What get_local_name() made: the destination directory, and (so) the transfer root. */
export interface Made {
  destinationDir: boolean;
  rootDir: boolean;
}

/** rsync's get_local_name: a single file may be written under the destination name itself. */
export function resolveDestination(s: ReceiverState, firstList: FileList): Made {
  const made: Made = { destinationDir: false, rootDir: false };
  const arg = s.opts.args[0] ?? '.';
  const dest = confinePath(arg, s.ctx.grant, 'destination');
  const destRel = physicalDestination(s, dest.rel);
  s.places.destRel = destRel;
  const first = firstList.entries.filter((e) => !e.inactive);
  let st: EntryStat | null;
  try {
    st = s.sandbox.lstat(destRel);
  } catch (err) {
    // e.g. a parent of the destination is a symlink (never followed): a clean refusal.
    if (!(err instanceof SandboxError)) throw err;
    throw new RsyncError(`rsync: [Receiver] change_dir "${printable(arg)}" failed: ${describe(err)}`, ExitCode.FILESELECT);
  }
  if (s.opts.mkpath && !st) st = makePath(s, arg, dest.trailingSlash, first.length);
  const onlyOneFile = first.length === 1 && !isDir(first[0]!);
  if (onlyOneFile && !dest.trailingSlash && (!st || st.type !== 'dir')) {
    s.places.singleFile = true;
    return made;
  }
  if (st && st.type !== 'dir') {
    throw new RsyncError('ERROR: destination must be a directory when copying more than 1 file', ExitCode.FILESELECT);
  }
  if (!st && destRel !== '') {
    if (!s.opts.dryRun) {
      try {
        s.fs.mkdir(destRel, 0o777);
        made.destinationDir = true;
      } catch (err) {
        throw new RsyncError(`rsync: [Receiver] mkdir "${printable(arg)}" failed: ${describe(err)}`, ExitCode.FILEIO);
      }
    }
    // As get_local_name (also in a dry run): the transfer root "." counts as created (itemized cd+++++++++).
    if (first.some((e) => e.name === '.')) made.rootDir = true;
    if (s.infoName > 0 || s.hasI > 0) sendInfo(s.ctx, `created directory ${arg.replace(/(.)\/+$/, '$1')}\n`);
  }
  return made;
}

/**
 * At a root of `/`, get_local_name() stats the destination through symlinks: a destination that
 * is (or lies below) a trusted symlink to a directory is gone through; a symlink as the name of a
 * single file is replaced, as rsync's rename does.
 */
function physicalDestination(s: ReceiverState, rel: string): string {
  const links = s.dirLinks;
  if (!links.rootIsSlash || rel === '') return rel;
  const full = links.atSlash(rel);
  if (s.lstatQuiet(full)?.type === 'dir') return full;
  return joinRel(links.atSlash(dirOf(rel)), baseOf(rel));
}

/**
 * --mkpath (get_local_name): the missing leading dirs (all of them with a trailing slash or
 * several files, else all but the last component), reported as "created N directories for X".
 * Returns the destination's stat afterwards.
 */
function makePath(s: ReceiverState, arg: string, trailingSlash: boolean, files: number): EntryStat | null {
  const destRel = s.places.destRel;
  const hasSlash = arg.includes('/');
  if (!hasSlash && files <= 1) return null;
  const dropName = !(files > 1 && !trailingSlash);
  const target = dropName && !trailingSlash ? dirOf(destRel) : destRel;
  let missing = 0;
  for (let d = target; d !== ''; d = dirOf(d)) {
    if (s.lstatQuiet(d)) break;
    missing++;
  }
  if (missing === 0) return null;
  if (!s.opts.dryRun) {
    try {
      s.fs.mkdirp(target, 0o777);
    } catch (err) {
      throw new RsyncError(`rsync: [Receiver] mkdir "${printable(arg)}" failed: ${describe(err)}`, ExitCode.FILEIO);
    }
  }
  if (s.infoName > 0 || s.hasI > 0) {
    const shown = hasSlash && (files === 1 || trailingSlash) ? arg.slice(0, arg.lastIndexOf('/')) : arg;
    sendInfo(s.ctx, `created ${missing} director${missing === 1 ? 'y' : 'ies'} for ${printable(shown)}\n`);
  }
  return s.opts.dryRun ? null : s.lstatQuiet(destRel);
}

/**
 * Resolves the path options against the destination (the reference chdir()s into it, so
 * relative values are relative to it) and checks them as main.c/options.c do.
 */
export function setupBasisOptions(s: ReceiverState): void {
  const o = s.opts;
  const grant = s.ctx.grant;
  const places = s.places;
  places.baseDir = places.singleFile ? dirOf(places.destRel) : places.destRel;
  const atSlash = (rel: string): string => s.dirLinks.atSlash(rel);
  // util1.c handle_partial_dir() lstat()s the partial dir itself: only its parents are followed.
  const parentAtSlash = (rel: string): string => joinRel(atSlash(dirOf(rel)), baseOf(rel));
  if (o.partialDir !== undefined && PartialDir.usable(o.partialDir, grant)) places.partialDir = new PartialDir(o.partialDir, grant, parentAtSlash);
  if (o.tempDir !== undefined) {
    places.tempDirRel = atSlash(auxDir(o.tempDir, grant, places.baseDir, '--temp-dir'));
    const st = auxDirStat(s, places.tempDirRel, o.tempDir, '--temp-dir');
    if (!st || st.type !== 'dir') {
      throw new RsyncError(`rsync: the --temp-dir path is not a directory: ${printable(o.tempDir)}`, ExitCode.SYNTAX);
    }
  }
  if (o.backup && o.backupDir !== undefined) setupBackupDir(s, o.backupDir);
  setupAltDest(s);
  if (s.protocol < 29) {
    if (o.fuzzy > 0) {
      throw new RsyncError(`--fuzzy requires protocol 29 or higher (negotiated ${s.protocol}).`, ExitCode.PROTOCOL);
    }
    if (places.altType !== undefined && o.inplace) {
      throw new RsyncError(
        `${altDestOption(places.altType)} with --inplace requires protocol 29 or higher (negotiated ${s.protocol}).`,
        ExitCode.PROTOCOL,
      );
    }
  }
  // Fuzzy matching needs the basis type in the request (protocol >= 29).
  if (o.fuzzy > 0 && s.protocol >= 29) places.fuzzyLevels = o.fuzzy > 1 ? places.basisDirs.length + 1 : 1;
  if (o.pruneEmptyDirs && s.protocol < 29) {
    throw new RsyncError(`--prune-empty-dirs requires protocol 29 or higher (negotiated ${s.protocol}).`, ExitCode.PROTOCOL);
  }
}

function setupBackupDir(s: ReceiverState, backupDir: string): void {
  const grant = s.ctx.grant;
  const places = s.places;
  const rel = auxDir(backupDir, grant, places.baseDir, '--backup-dir');
  if (rel !== places.baseDir || confinePath(backupDir, grant, '--backup-dir').anchored) places.backupDirRel = rel;
  if (places.backupDirRel === undefined) return;
  places.backupDirRel = s.dirLinks.atSlash(places.backupDirRel);
  const st = auxDirStat(s, places.backupDirRel, backupDir, '--backup-dir');
  if (st && st.type !== 'dir') {
    throw new RsyncError(`The backup-dir is not a directory: ${printable(backupDir)}`, ExitCode.SYNTAX);
  }
  if (s.info.gte('BACKUP')) sendInfo(s.ctx, `${st ? '' : '(new) '}backup_dir is ${printable(backupDir.replace(/\/+$/, ''))}\n`);
}

function setupAltDest(s: ReceiverState): void {
  const o = s.opts;
  const places = s.places;
  const alt: Array<[AltDestType, string[]]> = [
    ['compare', o.compareDest],
    ['copy', o.copyDest],
    ['link', o.linkDest],
  ];
  for (const [type, dirs] of alt) {
    if (dirs.length === 0) continue;
    if (places.altType !== undefined) {
      throw new RsyncError(`You may not mix ${altDestOption(places.altType)} with ${altDestOption(type)}.`, ExitCode.SYNTAX);
    }
    places.altType = type;
    if (dirs.length > MAX_BASIS_DIRS) {
      throw new RsyncError(`ERROR: at most ${MAX_BASIS_DIRS} basis dirs can be specified`, ExitCode.SYNTAX);
    }
    if (dirs.length > 1 && s.protocol < 29) {
      throw new RsyncError(
        `Using more than one ${altDestOption(type)} option requires protocol 29 or higher (negotiated ${s.protocol}).`,
        ExitCode.PROTOCOL,
      );
    }
    for (const d of dirs) {
      const rel = s.dirLinks.atSlash(auxDir(d, s.ctx.grant, places.baseDir, altDestOption(type)));
      places.basisDirs.push(rel);
      const st = s.lstatQuiet(rel);
      const shown = printable(d.length > 1 ? d.replace(/\/+$/, '') : d);
      if (!st) sendWarning(s.ctx, `${altDestOption(type)} arg does not exist: ${shown}`);
      else if (st.type !== 'dir') sendWarning(s.ctx, `${altDestOption(type)} arg is not a dir: ${shown}`);
    }
  }
}

/** lstat of a client-named helper dir; a symlinked parent (never followed) is a clean refusal. */
function auxDirStat(s: ReceiverState, rel: string, arg: string, what: string): EntryStat | null {
  try {
    return s.sandbox.lstat(rel);
  } catch (err) {
    if (!(err instanceof SandboxError)) throw err;
    throw new RsyncError(`rsync: the ${what} path ${printable(arg)} cannot be used: ${err.message}`, ExitCode.SYNTAX);
  }
}
