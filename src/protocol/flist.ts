/**
 * TRANSITIONAL, delete at merge: src/engine/receiver.ts and src/engine/context.ts (being split in
 * another branch) still import from this path. Every other importer uses the homes under flist/.
 */
export { FlistReader } from './flist/flist-reader.js';
export { sortFileList } from './flist/flist-sort.js';
export { XMIT } from './flist/xmit.js';
export { isDevice, isDir, isRegular, isSpecial, isSymlink, type FileEntry, type FlistOptions } from './flist/entry.js';
