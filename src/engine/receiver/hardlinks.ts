/**
 * hlink.c on the receiving side (-H): one member of each hard-link group carries the data (the
 * group's last regular file in its list, as the reference picks it); the others are linked to it
 * once its data is in place.
 */
import { isRegular, type FileEntry } from '../../protocol/flist/entry.js';
import { SandboxError } from '../../sandbox/sandbox.js';
import { ITEM } from '../../protocol/itemize.js';
import { sendInfo } from '../messages.js';
import type { Attributes } from './attrs.js';
import type { Backups } from './backup.js';
import type { Deleter } from './delete.js';
import type { TempFiles } from './tempfiles.js';
import type { FileList, ReceiverState } from './state.js';

export class HardLinks {
  private readonly leaders = new Map<number, FileEntry>();
  private readonly followers: FileEntry[] = [];

  constructor(
    private readonly s: ReceiverState,
    private readonly attrs: Attributes,
    private readonly backups: Backups,
    private readonly deleter: Deleter,
    private readonly temps: TempFiles,
  ) {}

  /** Before a list is generated: each group's last regular-file member in it (one without a leader yet). */
  markGroups(list: FileList): void {
    list.lastOfGroup = new Map();
    for (const e of list.entries) {
      if (!e.inactive && isRegular(e) && e.hlinkGroup !== undefined && !this.leaders.has(e.hlinkGroup)) list.lastOfGroup.set(e.hlinkGroup, e);
    }
  }

  /**
   * A regular file of a group: true when it follows (it is linked later), false when it leads
   * (its data is requested). With skip options that depend on each member's destination, the
   * first member that gets here leads (so a group never loses its leader).
   */
  follows(e: FileEntry, list: FileList): boolean {
    const group = e.hlinkGroup!;
    const o = this.s.opts;
    const last = o.existing || o.ignoreExisting || o.update ? undefined : list.lastOfGroup?.get(group);
    if (this.leaders.has(group) || (last !== undefined && last !== e)) {
      this.followers.push(e);
      return true;
    }
    this.leaders.set(group, e);
    return false;
  }

  /**
   * A device or special of a group: the first member leads (false, it is made as any other); a
   * later one is linked to it at once, itemized in list order, since the leader is complete by
   * then (hlink.c hard_link_check links a follower of a finished leader on the spot).
   */
  async linksSpecial(e: FileEntry): Promise<boolean> {
    const leader = this.leaders.get(e.hlinkGroup!);
    if (!leader) {
      this.leaders.set(e.hlinkGroup!, e);
      return false;
    }
    await this.linkFollower(e, leader);
    return true;
  }

  /**
   * Links the followers whose leader's data is in place; `waiting(leader)` says it is not yet
   * (still requested, to be redone, or delayed in the partial dir): those stay for a later call.
   */
  async finish(waiting: (leader: FileEntry) => boolean): Promise<void> {
    const later: FileEntry[] = [];
    for (const f of this.followers.splice(0)) {
      const leader = this.leaders.get(f.hlinkGroup!);
      if (!leader) continue;
      if (waiting(leader)) {
        later.push(f);
        continue;
      }
      try {
        await this.linkFollower(f, leader);
      } catch (err) {
        if (err instanceof SandboxError) this.s.reportEntryError(f, err);
        else throw err;
      }
    }
    this.followers.push(...later);
  }

  private async linkFollower(f: FileEntry, leader: FileEntry): Promise<void> {
    const dest = this.s.destOf(f);
    const leaderDest = this.s.destOf(leader);
    const name = this.s.fnameOf(f);
    const st = this.s.sandbox.lstat(dest);
    const lst = this.s.sandbox.lstat(leaderDest);
    if (st && lst && st.dev === lst.dev && st.ino === lst.ino) {
      this.attrs.itemize(f, this.attrs.itemAttrs(f, st, ITEM.LOCAL_CHANGE | ITEM.XNAME_FOLLOWS, ''), '');
      if (this.s.infoName >= 2 && this.attrs.maybeAttrsReport) sendInfo(this.s.ctx, `${name} is uptodate\n`);
      return;
    }
    if (!this.s.opts.dryRun) {
      if (!lst) return;
      if (st) {
        if (st.type === 'dir') {
          if (!(await this.deleter.makeRoom(f, dest, st, 'regular file'))) return;
        } else if (this.s.opts.backup && (await this.backups.make(dest, false)) === 'failed') {
          return;
        }
      }
      const tmp = this.temps.nameBeside(dest);
      this.s.fs.link(leaderDest, tmp, 'temp');
      this.s.fs.rename(tmp, dest);
    }
    this.attrs.itemize(f, this.attrs.itemAttrs(f, st && st.type !== 'dir' ? st : null, ITEM.LOCAL_CHANGE | ITEM.XNAME_FOLLOWS, leader.name), leader.name);
    if (this.s.protocol < 29 && this.s.infoName > 0) sendInfo(this.s.ctx, `${name} => ${leader.name}\n`);
  }
}
