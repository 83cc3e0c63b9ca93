// How Windows symlink and junction targets become POSIX targets (link-target.ts), on a small
// made-up directory tree: drive paths that exist on the volume from its root with the entries'
// spelling, the rest as text; rooted and relative paths corrected where they resolve. (The common
// cases are also checked against ntfs-3g in test/integration/guest-ntfs.test.ts.)
import { describe, expect, it } from 'vitest';
import { windowsLinkTarget, type LinkResolver } from '../../../../src/guest/fs/ntfs/link-target.js';

/** root(5) / Users(10) / Me(11) / Docs(12) / a.txt(13); root / link-dir(14, a junction). */
const TREE: Record<number, { parent: number; children: Record<string, number>; directory: boolean }> = {
  5: { parent: 5, children: { Users: 10, 'link-dir': 14 }, directory: true },
  10: { parent: 5, children: { Me: 11 }, directory: true },
  11: { parent: 10, children: { Docs: 12 }, directory: true },
  12: { parent: 11, children: { 'a.txt': 13 }, directory: true },
  13: { parent: 12, children: {}, directory: false },
  14: { parent: 5, children: {}, directory: false },
};

const resolver: LinkResolver = {
  root: 5,
  child: async (dir, name) => {
    const entry = Object.entries(TREE[dir]!.children).find(([n]) => n.toUpperCase() === name.toUpperCase());
    return entry ? { record: entry[1], name: entry[0], directory: TREE[entry[1]]!.directory } : undefined;
  },
  parent: async (record) => TREE[record]!.parent,
};

const target = (name: string, linkDir = 5): Promise<string> => windowsLinkTarget(name, linkDir, resolver);

describe('NTFS link targets', () => {
  it('gives drive paths on the volume from its root, spelt as the entries are', async () => {
    expect(await target('\\??\\C:\\users\\ME\\docs')).toBe('/Users/Me/Docs');
    expect(await target('\\??\\D:\\Users\\Me\\Docs\\A.TXT')).toBe('/Users/Me/Docs/a.txt');
    expect(await target('C:\\Users')).toBe('/Users');
    expect(await target('\\??\\C:\\')).toBe('/');
  });

  it('keeps drive paths that are not on the volume, volume GUIDs and UNC paths as text', async () => {
    expect(await target('\\??\\C:\\Windows\\System32')).toBe('C:\\Windows\\System32');
    expect(await target('\\??\\Volume{0b5e55ed-1111-4222-8333-444455556666}\\dir')).toBe(
      '\\??\\Volume{0b5e55ed-1111-4222-8333-444455556666}\\dir',
    );
    expect(await target('\\??\\UNC\\server\\share\\file')).toBe('\\\\server\\share\\file');
  });

  it('corrects rooted and relative paths where they resolve and keeps the rest as written', async () => {
    expect(await target('\\users\\me\\Nowhere\\x')).toBe('/Users/Me/Nowhere/x');
    expect(await target('..\\..\\me\\DOCS\\a.txt', 12)).toBe('../../Me/Docs/a.txt');
    expect(await target('..\\..\\DOCS\\a.txt', 12)).toBe('../../DOCS/a.txt');
    expect(await target('..\\Docs\\A.TXT', 12)).toBe('../Docs/a.txt');
    expect(await target('.\\a.TXT\\deeper', 12)).toBe('./a.txt/deeper');
    // Above the root stays at the root, as Windows resolves it.
    expect(await target('..\\..\\..\\..\\..\\users', 11)).toBe('../../../../../Users');
    // Correction stops at what is not a plain directory (a file, a junction).
    expect(await target('\\link-dir\\users')).toBe('/link-dir/users');
  });
});
