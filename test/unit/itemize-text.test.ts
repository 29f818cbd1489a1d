// rsync's %i as log.c builds it, for the transfer log and the relay's -i lines.
import t from 'tap';
import { ITEM, itemizeText } from '../../src/protocol/itemize.js';

t.test('new, changed and unchanged items', async (t) => {
  t.equal(itemizeText(ITEM.TRANSFER | ITEM.IS_NEW, 'f', '>'), '>f+++++++++');
  t.equal(itemizeText(ITEM.TRANSFER | ITEM.IS_NEW, 'f', '<'), '<f+++++++++');
  t.equal(itemizeText(ITEM.TRANSFER | ITEM.REPORT_SIZE | ITEM.REPORT_TIME, 'f', '>'), '>f.st......');
  t.equal(itemizeText(ITEM.TRANSFER, 'f', '<'), '<f.........', 'a transfer keeps its dots');
  t.equal(itemizeText(ITEM.REPORT_PERMS, 'd', '>'), '.d...p.....');
  t.equal(itemizeText(0, 'f', '>'), '.f         ', 'nothing changed: blanks');
  t.equal(itemizeText(ITEM.LOCAL_CHANGE | ITEM.XNAME_FOLLOWS, 'f', '>'), 'hf         ', 'a hard link');
  t.equal(itemizeText(ITEM.LOCAL_CHANGE | ITEM.IS_NEW, 'L', '>'), 'cL+++++++++', 'a local change');
  t.equal(itemizeText(ITEM.REPORT_ATIME | ITEM.REPORT_OWNER | ITEM.REPORT_GROUP | ITEM.REPORT_CHANGE, 'f', '>'), '.fc...ogu..');
});
