/**
 * The destination filesystem of a bench run. Both servers' roots and the local pull targets live
 * on it, so both sides write to the same kind of disk.
 *
 * Default (`--fs auto`, as root with mkfs.ext4 and losetup): a fresh ext4 image with a journal,
 * attached through a loop device with direct I/O (no double page cache) and mounted at
 * bench/work/mnt, torn down at the end. Why not the work directory's own filesystem: on machines
 * whose root filesystem is ext4 *without a journal* (this project's VMs), the kernel's inode
 * allocator skips every recently deleted inode one by one (find_inode_bit → recently_deleted),
 * so after the previous run's tree was deleted, creating 20 000 files costs 10-20 s of system
 * time instead of ~1 s, for whichever side runs next. That swamps the servers' own costs. A
 * journaled ext4, as real servers have, does not do this. `--fs dir` keeps bench/work.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { GiB, log, run, which } from './util.js';

export interface ScratchFs {
  /** Where the roots and local targets go. */
  dir: string;
  /** For the report. */
  description: string;
  /** Gives freed blocks back to the image file (untimed, between runs); no-op for --fs dir. */
  trim(): void;
  teardown(): void;
}

const IMAGE_BYTES = 64 * GiB;

function isMounted(dir: string): boolean {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[1] === dir);
}

/** Why a loop-mounted scratch filesystem cannot be made here (undefined: it can). */
export function loopUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'not running as root';
  for (const tool of ['mkfs.ext4', 'losetup', 'mount', 'umount', 'fstrim']) {
    if (!which(tool)) return `${tool} not found`;
  }
  if (!existsSync('/dev/loop-control')) return 'no /dev/loop-control';
  return undefined;
}

function detachStale(img: string, mnt: string): void {
  if (isMounted(mnt)) run('umount', [mnt], { allowFail: true });
  const attached = run('losetup', ['-j', img], { allowFail: true });
  for (const line of attached.split('\n')) {
    const dev = line.split(':')[0];
    if (dev) run('losetup', ['-d', dev], { allowFail: true });
  }
}

export function mountScratch(work: string, inodes: number): ScratchFs {
  const img = join(work, 'scratch.img');
  const mnt = join(work, 'mnt');
  detachStale(img, mnt);
  rmSync(img, { force: true });
  mkdirSync(mnt, { recursive: true });
  const free = statfsSync(work);
  const freeBytes = free.bavail * free.bsize;
  if (freeBytes < 12 * GiB) log(`only ${(freeBytes / GiB).toFixed(1)} GiB free under ${work}: the scratch image may fill it`);
  run('truncate', ['-s', String(IMAGE_BYTES), img]);
  run('mkfs.ext4', ['-q', '-F', '-N', String(inodes), '-E', 'nodiscard,lazy_itable_init=0', img]);
  const dev = run('losetup', ['--direct-io=on', '-f', '--show', img]).trim();
  run('mount', [dev, mnt]);
  let down = false;
  return {
    dir: mnt,
    description: `fresh ext4 (journal, ${(inodes / 1e6).toFixed(1)} M inodes) on ${dev} with direct I/O, backed by a sparse image under bench/work`,
    trim: () => {
      spawnSync('fstrim', [mnt], { stdio: 'ignore' });
    },
    teardown: () => {
      if (down) return;
      down = true;
      spawnSync('umount', [mnt], { stdio: 'ignore' });
      spawnSync('losetup', ['-d', dev], { stdio: 'ignore' });
      rmSync(img, { force: true });
    },
  };
}

export function plainScratch(work: string): ScratchFs {
  return {
    dir: work,
    description: `the filesystem of bench/work (${run('sh', ['-c', `findmnt -no FSTYPE,OPTIONS -T ${work} || echo unknown`]).trim()})`,
    trim: () => undefined,
    teardown: () => undefined,
  };
}
