// NTFS fixtures made with the real tools: mkntfs (deterministic with -T: zero times, fixed serial),
// filled through ntfs-3g (FUSE; this kernel has no ntfs3), with setfattr for what only ntfs-3g's
// system xattrs reach (attributes, exact times, DOS names, reparse points). The oracle is ntfs-3g
// mounted read-only: its stat, listings and bytes, and getfattr for exact times and attributes.
// Images are sparse files in a temp dir, generated per test run, never committed.
import { spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  ftruncateSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  writeSync,
  type BigIntStats,
} from 'node:fs';
import { join } from 'node:path';
import type { GuestFileSystem, GuestNodeId } from '../../src/core/guest-filesystem.js';
import type { ExpectedFields } from './guest-fs-oracle.js';
import { pattern, run, tempDir } from './ext4-images.js';

export { ImageReader, pattern, run, tempDir, patchImage, peekImage, copyImage } from './ext4-images.js';

export const MiB = 1024 * 1024;
/** FILETIME of the Unix epoch. */
export const NTFS_EPOCH = 116_444_736_000_000_000n;

export interface MkntfsOptions {
  readonly size: number;
  readonly clusterSize?: number;
  readonly label?: string;
  readonly args?: readonly string[];
}

/** mkntfs -f -T: a quick format whose times are zero and whose serial is fixed, so the same inputs give the same image. */
export function mkntfs(path: string, options: MkntfsOptions): string {
  const fd = openSync(path, 'w');
  ftruncateSync(fd, options.size);
  closeSync(fd);
  const args = [
    '-f',
    '-T',
    '-F',
    '-q',
    ...(options.clusterSize ? ['-c', String(options.clusterSize)] : []),
    ...(options.label ? ['-L', options.label] : []),
  ];
  run('mkntfs', [...args, ...(options.args ?? []), path]);
  return path;
}

const isMounted = (dir: string): boolean =>
  readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((line) => line.split(' ')[4] === dir);

async function until(what: string, deadlineMs: number, ok: () => boolean): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Mounts `image` with ntfs-3g (kept in the foreground with no_detach, so that its exit says the
 * image is written), runs `fn` on the mount point, unmounts and waits for ntfs-3g to exit.
 */
export async function withNtfs3g<T>(
  image: string,
  options: readonly string[],
  fn: (dir: string) => Promise<T> | T,
  frozenTime?: string,
): Promise<T> {
  const dir = tempDir('ntfsmnt');
  const args = [image, dir, '-o', ['no_detach', ...options].join(',')];
  // ntfs-3g's log goes to a file, not a pipe: the tests write through the mount synchronously, so a
  // pipe would not be drained, fill, and block ntfs-3g (and with it the write) for ever.
  const logPath = join(dir + '.log');
  const log = openSync(logPath, 'w');
  const stdio: ['ignore', 'ignore', number] = ['ignore', 'ignore', log];
  // faketime freezes ntfs-3g's clock, so that the same writes make the same image.
  const child = frozenTime ? spawn('faketime', ['-f', frozenTime, 'ntfs-3g', ...args], { stdio }) : spawn('ntfs-3g', args, { stdio });
  closeSync(log);
  const stderr = (): string => readFileSync(logPath, 'utf8');
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let done = false;
  void exited.then(() => (done = true));
  try {
    await until(`ntfs-3g to mount ${image}`, 15_000, () => {
      if (done) throw new Error(`ntfs-3g exited: ${stderr()}`);
      return isMounted(dir);
    });
    return await fn(dir);
  } finally {
    if (isMounted(dir)) {
      for (let i = 0; ; i++) {
        const r = spawnSync('umount', [dir]);
        if (r.status === 0 || i > 50) break;
        await new Promise((res) => setTimeout(res, 100));
      }
    }
    if (!done) await Promise.race([exited, new Promise((r) => setTimeout(r, 30_000))]);
    if (!done) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    rmSync(logPath, { force: true });
  }
}

export function setfattr(path: string, name: string, hex: string): void {
  run('setfattr', ['-h', '-n', name, '-v', `0x${hex}`, path]);
}

/** FILE_ATTRIBUTE_* flags (ntfs-3g's system.ntfs_attrib_be). */
export const FILE_ATTRIBUTES = { READONLY: 0x1, HIDDEN: 0x2, SYSTEM: 0x4, ARCHIVE: 0x20, COMPRESSED: 0x800 } as const;

export function setAttributes(path: string, flags: number): void {
  setfattr(path, 'system.ntfs_attrib_be', flags.toString(16).padStart(8, '0'));
}

/** Sets creation, modification, access and MFT-change FILETIMEs exactly (system.ntfs_times_be). */
export function setTimes(path: string, times: readonly [bigint, bigint, bigint, bigint]): void {
  setfattr(path, 'system.ntfs_times_be', times.map((t) => t.toString(16).padStart(16, '0')).join(''));
}

/** FILETIME of an ISO date plus extra 100 ns units. */
export function fileTime(iso: string, extraTicks = 0n): bigint {
  return BigInt(Date.parse(iso)) * 10_000n + NTFS_EPOCH + extraTicks;
}

/** A REPARSE_DATA_BUFFER for a symlink (IO_REPARSE_TAG_SYMLINK) or a junction (MOUNT_POINT), as Windows writes one. */
export function reparseBuffer(kind: 'symlink' | 'relative-symlink' | 'junction', substitute: string, print = substitute): Buffer {
  const sub = Buffer.from(substitute, 'utf16le');
  const prt = Buffer.from(print, 'utf16le');
  let body: Buffer;
  if (kind === 'junction') {
    // Junctions end both names with a NUL that the lengths do not count.
    const head = Buffer.alloc(8);
    head.writeUInt16LE(0, 0);
    head.writeUInt16LE(sub.length, 2);
    head.writeUInt16LE(sub.length + 2, 4);
    head.writeUInt16LE(prt.length, 6);
    body = Buffer.concat([head, sub, Buffer.alloc(2), prt, Buffer.alloc(2)]);
  } else {
    const head = Buffer.alloc(12);
    head.writeUInt16LE(0, 0);
    head.writeUInt16LE(sub.length, 2);
    head.writeUInt16LE(sub.length, 4);
    head.writeUInt16LE(prt.length, 6);
    head.writeUInt32LE(kind === 'relative-symlink' ? 1 : 0, 8);
    body = Buffer.concat([head, sub, prt]);
  }
  const header = Buffer.alloc(8);
  header.writeUInt32LE(kind === 'junction' ? 0xa0000003 : 0xa000000c, 0);
  header.writeUInt16LE(body.length, 4);
  return Buffer.concat([header, body]);
}

export function setReparse(path: string, buffer: Buffer): void {
  setfattr(path, 'system.ntfs_reparse_data', buffer.toString('hex'));
}

/** getfattr's escaped path (\ooo octal, \\) back to bytes. */
function unescapePath(text: string): Buffer {
  const out: number[] = [];
  const raw = Buffer.from(text, 'latin1');
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === 0x5c && raw[i + 1] === 0x5c) {
      out.push(0x5c);
      i++;
    } else if (raw[i] === 0x5c && /^[0-7]{3}$/.test(raw.toString('latin1', i + 1, i + 4))) {
      out.push(parseInt(raw.toString('latin1', i + 1, i + 4), 8));
      i += 3;
    } else out.push(raw[i]!);
  }
  return Buffer.from(out);
}

/** One system xattr of every node under `root` (getfattr -R), by path bytes (as hex). */
export function xattrTree(root: string, name: string): Map<string, Buffer> {
  const r = spawnSync('getfattr', ['-R', '-P', '-h', '--absolute-names', '-n', name, '-e', 'hex', root], {
    encoding: 'latin1',
    maxBuffer: 1 << 28,
  });
  const out = new Map<string, Buffer>();
  let path: Buffer | undefined;
  for (const line of r.stdout.split('\n')) {
    if (line.startsWith('# file: ')) path = unescapePath(line.slice(8));
    else if (path && line.startsWith(`${name}=0x`)) out.set(path.toString('hex'), Buffer.from(line.slice(name.length + 3), 'hex'));
  }
  // The root itself is not under `-R`'s listing when it has no entries of its own; ask for it alone.
  if (!out.has(Buffer.from(root).toString('hex'))) {
    const one = spawnSync('getfattr', ['-h', '--absolute-names', '-n', name, '-e', 'hex', root], { encoding: 'latin1' });
    const m = new RegExp(`${name.replace(/\./g, '\\.')}=0x([0-9a-f]+)`).exec(one.stdout);
    if (m) out.set(Buffer.from(root).toString('hex'), Buffer.from(m[1]!, 'hex'));
  }
  return out;
}

/** What ntfs-3g's xattrs say about a mounted tree: exact times, attributes, DOS names, WSL modes. */
export interface NtfsFacts {
  readonly times: Map<string, Buffer>;
  readonly attributes: Map<string, Buffer>;
  readonly dosNames: Map<string, Buffer>;
  readonly eas: Map<string, Buffer>;
}

export function ntfsFacts(mnt: string): NtfsFacts {
  return {
    times: xattrTree(mnt, 'system.ntfs_times_be'),
    attributes: xattrTree(mnt, 'system.ntfs_attrib_be'),
    dosNames: xattrTree(mnt, 'system.ntfs_dos_name'),
    eas: xattrTree(mnt, 'system.ntfs_ea'),
  };
}

/** $LXMOD in a raw $EA value (EA_ATTR records: next offset u32, flags, name length, value length u16, name NUL, value). */
function lxmod(ea: Buffer | undefined): number | undefined {
  let at = 0;
  while (ea && at + 8 <= ea.length) {
    const next = ea.readUInt32LE(at);
    const nameLength = ea[at + 5]!;
    const valueLength = ea.readUInt16LE(at + 6);
    if (ea.toString('latin1', at + 8, at + 8 + nameLength) === '$LXMOD' && valueLength >= 4) return ea.readUInt32LE(at + 9 + nameLength);
    if (next === 0) break;
    at += next;
  }
  return undefined;
}

const ns = (t: bigint): bigint => (t - NTFS_EPOCH) * 100n;

/**
 * The oracle's `expected` for an ntfs-3g mount: exact times from system.ntfs_times_be (stat
 * truncates times before 1970), the modes the reader synthesizes from the type and the readonly
 * attribute (or WSL's $LXMOD), and link counts without the 8.3 alias ntfs-3g counts as a link.
 */
export function ntfsExpectations(facts: NtfsFacts, mnt: string): (path: Buffer, kernel: BigIntStats) => ExpectedFields {
  const target = ntfsLinkTarget(mnt);
  return (path, st) => {
    const key = path.toString('hex');
    const out: ExpectedFields = {};
    const times = facts.times.get(key);
    if (times?.length === 32) {
      Object.assign(out, {
        birthtimeNs: ns(times.readBigUInt64BE(0)),
        mtimeNs: ns(times.readBigUInt64BE(8)),
        atimeNs: ns(times.readBigUInt64BE(16)),
        ctimeNs: ns(times.readBigUInt64BE(24)),
      });
    }
    const attrib = facts.attributes.get(key)?.readUInt32BE(0) ?? 0;
    const mod = lxmod(facts.eas.get(key));
    if (st.isSymbolicLink()) {
      out.mode = 0o777;
      out.size = target(path, readlinkSync(path, { encoding: 'buffer' })).length;
    } else if (st.isDirectory()) out.mode = 0o755;
    else if (mod !== undefined) out.mode = mod & 0o7777;
    else out.mode = attrib & FILE_ATTRIBUTES.READONLY ? 0o444 : 0o644;
    if (!st.isDirectory() && facts.dosNames.has(key)) out.nlink = Number(st.nlink) - 1;
    return out;
  };
}

/** The guest's form of an ntfs-3g symlink target: volume-root paths for `<mnt>/…`, Windows text for `<mnt>/.NTFS-3G/X:/…`. */
export function ntfsLinkTarget(mnt: string): (path: Buffer, target: Buffer) => Buffer {
  return (_path, target) => {
    const text = target.toString('utf8');
    if (text.startsWith(`${mnt}/.NTFS-3G/`)) return Buffer.from(text.slice(mnt.length + 10).replace(/\//g, '\\'), 'utf8');
    if (text.startsWith(`${mnt}/`)) return Buffer.from(text.slice(mnt.length), 'utf8');
    return target;
  };
}

export interface NtfsTreeOptions {
  /** Entries in the big directory (several index blocks and B+tree levels). */
  readonly manyEntries?: number;
  /** A file fragmented into this many pieces (an attribute list once the runlist outgrows the record). */
  readonly fragments?: number;
  /** A compressed directory (setfattr FILE_ATTRIBUTE_COMPRESSED before its files are written). */
  readonly compressed?: boolean;
  /** Hard links to one file, enough to move its names into extension records. */
  readonly hardLinks?: number;
}

/** Relative paths of what makeNtfsTree creates that tests look at by name. */
export const TREE = {
  streamFile: 'with-streams.txt',
  streams: { 'stream-one': 'first alternate stream\n', 'Zone.Identifier': '[ZoneTransfer]\nZoneId=3\n' },
  compressedDir: 'compressed',
  compressedFile: 'compressed/text.txt',
  junction: 'junction-to-deep',
  absoluteLink: 'abs-link',
  offVolumeLink: 'off-volume-link',
  relativeLink: 'deep/rel-link',
  readonlyFile: 'readonly.txt',
  hiddenFile: 'hidden.txt',
  dosNamed: 'A Long File Name.text',
  fragmented: 'fragmented.bin',
  linked: 'links/target',
} as const;

/**
 * Fills `root` (an ntfs-3g mount with streams_interface=windows) with the cases an NTFS reader must
 * get right, written through ntfs-3g and its system xattrs.
 */
export function makeNtfsTree(root: string, options: NtfsTreeOptions = {}): void {
  const p = (...parts: string[]): string => join(root, ...parts);
  writeFileSync(p('hello.txt'), 'hello, ntfs\n');
  writeFileSync(p('empty'), '');
  writeFileSync(p('tiny-resident'), pattern(300, 1));
  writeFileSync(p('medium.bin'), pattern(200 * 1024 + 3, 3));
  writeFileSync(p('large.bin'), pattern(3 * MiB + 5, 4));
  writeFileSync(p('n'.repeat(255)), 'longest name\n');
  writeFileSync(p('ünïcødé-文件-😀.txt'), 'utf-16 name with a surrogate pair\n');
  writeFileSync(p('Ελληνικά κείμενα'), 'greek\n');
  let deep = p('deep');
  for (let i = 0; i < 12; i++) deep = join(deep, `level-${i}`);
  mkdirSync(deep, { recursive: true });
  writeFileSync(join(deep, 'bottom.txt'), 'bottom\n');
  // Sparse (ntfs-3g makes a file sparse when a write leaves a hole): data, a hole, data, a tail hole.
  const sparse = openSync(p('sparse.bin'), 'w');
  writeSync(sparse, pattern(5000, 5), 0, 5000, 0);
  writeSync(sparse, pattern(7000, 6), 0, 7000, 10 * MiB + 123);
  ftruncateSync(sparse, 40 * MiB);
  closeSync(sparse);
  // Initialized size short of the data size: truncate up without writing.
  writeFileSync(p('grown.bin'), pattern(10_000, 7));
  const grown = openSync(p('grown.bin'), 'r+');
  ftruncateSync(grown, 3 * MiB);
  closeSync(grown);
  writeFileSync(p(TREE.streamFile), 'main stream\n');
  for (const [name, text] of Object.entries(TREE.streams)) writeFileSync(p(`${TREE.streamFile}:${name}`), text);
  writeFileSync(p(`${TREE.streamFile}:big-stream`), pattern(100_000, 8));
  mkdirSync(p('dir-with-stream'));
  writeFileSync(p('dir-with-stream:on-a-dir'), 'a directory can have streams too\n');
  writeFileSync(p(TREE.readonlyFile), 'read only\n');
  setAttributes(p(TREE.readonlyFile), FILE_ATTRIBUTES.READONLY | FILE_ATTRIBUTES.ARCHIVE);
  writeFileSync(p(TREE.hiddenFile), 'hidden\n');
  setAttributes(p(TREE.hiddenFile), FILE_ATTRIBUTES.HIDDEN | FILE_ATTRIBUTES.ARCHIVE);
  writeFileSync(p(TREE.dosNamed), 'has an 8.3 alias\n');
  setfattr(p(TREE.dosNamed), 'system.ntfs_dos_name', Buffer.from('ALONGF~1.TEX').toString('hex'));
  // Symlinks: Interix (ntfs-3g's default for ln -s), Windows reparse points crafted through setfattr.
  symlinkSync('hello.txt', p('interix-link'));
  symlinkSync('/does/not/exist', p('interix-dangling'));
  mkdirSync(p(TREE.junction));
  setReparse(p(TREE.junction), reparseBuffer('junction', '\\??\\C:\\DEEP\\level-0', 'C:\\DEEP\\level-0'));
  writeFileSync(p(TREE.absoluteLink), '');
  setReparse(p(TREE.absoluteLink), reparseBuffer('symlink', '\\??\\C:\\Hello.TXT', 'C:\\Hello.TXT'));
  writeFileSync(p(TREE.offVolumeLink), '');
  setReparse(p(TREE.offVolumeLink), reparseBuffer('symlink', '\\??\\Q:\\elsewhere\\file.txt'));
  writeFileSync(p(TREE.relativeLink), '');
  setReparse(p(TREE.relativeLink), reparseBuffer('relative-symlink', '..\\HELLO.txt'));
  // Special files as ntfs-3g writes them by default (Interix).
  run('mkfifo', [p('fifo')]);
  run('mknod', [p('char-dev'), 'c', '1', '3']);
  run('mknod', [p('block-dev'), 'b', '7', '200']);
  mkdirSync(p('links'));
  writeFileSync(p(TREE.linked), 'shared by several names\n');
  linkSync(p(TREE.linked), p('links', 'second-name'));
  linkSync(p(TREE.linked), p('hard-link-in-root'));
  for (let i = 0; i < (options.hardLinks ?? 0); i++)
    linkSync(p(TREE.linked), p('links', `extra-link-with-a-long-name-to-fill-records-${i}`));
  if (options.compressed) {
    mkdirSync(p(TREE.compressedDir));
    setAttributes(p(TREE.compressedDir), FILE_ATTRIBUTES.COMPRESSED);
    writeFileSync(p(TREE.compressedFile), Buffer.from('compressible text, repeated. '.repeat(40_000)));
    const mixed = Buffer.concat([pattern(70_000, 9), Buffer.alloc(200_000), Buffer.from('tail '.repeat(30_000))]);
    writeFileSync(p(TREE.compressedDir, 'mixed.bin'), mixed);
    const holey = openSync(p(TREE.compressedDir, 'sparse-compressed.bin'), 'w');
    writeSync(holey, Buffer.from('x'.repeat(5000)), 0, 5000, 0);
    writeSync(holey, Buffer.from('y'.repeat(5000)), 0, 5000, 1024 * 1024);
    closeSync(holey);
  }
  if (options.fragments) makeFragmentedFile(root, options.fragments);
  mkdirSync(p('many'));
  for (let i = 0; i < (options.manyEntries ?? 0); i++) {
    writeFileSync(p('many', `entry-${String(i).padStart(5, '0')}-${'n'.repeat(i % 40)}`), i % 7 === 0 ? `${i}\n` : '');
  }
  setTimes(p('hello.txt'), [
    fileTime('2001-02-03T04:05:06.123Z', 4567n),
    fileTime('2002-03-04T05:06:07.891Z', 1n),
    fileTime('2003-01-01T00:00:00Z'),
    fileTime('2004-01-01T00:00:00Z', 9n),
  ]);
  setTimes(p('medium.bin'), [
    fileTime('1850-06-01T12:00:00.5Z', 3n),
    fileTime('1969-12-31T23:59:59.999Z', 9999n),
    fileTime('1601-01-01T00:00:00Z') + 1n,
    fileTime('2200-01-01T00:00:00Z', 1234n),
  ]);
}

/**
 * Leaves the volume with `holes` one-cluster holes as all its free space: ntfs-3g allocates after
 * its last allocation rather than in holes, so holes must be all there is. Small files, a filler
 * taking the rest of the volume (the MFT zone too: ntfs-3g gives it to data only when all else is
 * taken), then every other small file deleted. Returns the cluster size and a function that deletes
 * the filler again.
 */
function leaveOnlyHoles(root: string, holes: number): { cluster: number; release: () => void } {
  const dir = join(root, 'holes');
  mkdirSync(dir);
  const cluster = Number(run('stat', ['-f', '-c', '%S', root]).trim());
  for (let i = 0; i < 2 * holes; i++) writeFileSync(join(dir, String(i)), pattern(cluster, i));
  const filler = openSync(join(root, 'filler'), 'w');
  const chunk = Buffer.alloc(256 * 1024);
  try {
    for (;;) writeSync(filler, chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    closeSync(filler);
  }
  for (let i = 0; i < 2 * holes; i += 2) rmSync(join(dir, String(i)));
  return { cluster, release: () => rmSync(join(root, 'filler')) };
}

/**
 * More new files than records were freed: the MFT runs out of free records and grows into the
 * holes, a few clusters at a time.
 */
function growMft(root: string, files: number): void {
  mkdirSync(join(root, 'mft-growth'));
  for (let i = 0; i < files; i++) writeFileSync(join(root, 'mft-growth', `grown-${i}`), `${i}\n`);
}

/** A file in about `pieces / 2` fragments (an attribute list and $DATA extension records) and an MFT grown in pieces. */
export function makeFragmentedFile(root: string, pieces: number): void {
  const { cluster, release } = leaveOnlyHoles(root, pieces);
  growMft(root, 2 * pieces);
  writeFileSync(join(root, TREE.fragmented), pattern(Math.floor(pieces / 2) * cluster, 77));
  release();
}

/** An MFT in thousands of pieces: its runlist needs extension records, found through $MFT's own attribute list. */
export function makeFragmentedMft(root: string): void {
  const { release } = leaveOnlyHoles(root, 3000);
  growMft(root, 12_000);
  release();
}

/** Makes special files as WSL does (ntfs-3g's special_files=wsl: reparse points with $LXMOD/$LXDEV). */
export function makeWslSpecials(root: string): void {
  symlinkSync('hello.txt', join(root, 'wsl-link'));
  symlinkSync('../../up/and/away', join(root, 'wsl-link-relative'));
  run('mkfifo', [join(root, 'wsl-fifo')]);
  run('mknod', [join(root, 'wsl-char'), 'c', '4', '64']);
}

/** Windows attribute names GuestStat.attributes should show for system.ntfs_attrib_be flags. */
const ATTRIBUTE_NAMES: readonly [number, string][] = [
  [0x1, 'readonly'],
  [0x2, 'hidden'],
  [0x4, 'system'],
  [0x20, 'archive'],
  [0x100, 'temporary'],
  [0x200, 'sparse'],
  [0x400, 'reparse'],
  [0x800, 'compressed'],
  [0x1000, 'offline'],
  [0x2000, 'not-content-indexed'],
  [0x4000, 'encrypted'],
];

/** Resolves a path under the volume root through lookups (the way the namespace does). */
export async function resolvePath(fs: GuestFileSystem, relative: string | Buffer): Promise<GuestNodeId | undefined> {
  let id = fs.rootId;
  const text = Buffer.isBuffer(relative) ? relative : Buffer.from(relative);
  if (text.length === 0) return id;
  let start = 0;
  for (let i = 0; i <= text.length; i++) {
    if (i < text.length && text[i] !== 0x2f) continue;
    const found = await fs.lookup(id, text.subarray(start, i));
    if (!found) return undefined;
    id = found.id;
    start = i + 1;
  }
  return id;
}

/** Every node's attributes against ntfs-3g's system.ntfs_attrib_be; returns the differences. */
export async function compareAttributes(fs: GuestFileSystem, mnt: string, facts: NtfsFacts): Promise<string[]> {
  const differences: string[] = [];
  const prefix = Buffer.from(`${mnt}/`);
  for (const [hex, value] of facts.attributes) {
    const path = Buffer.from(hex, 'hex');
    const relative = path.equals(Buffer.from(mnt)) ? Buffer.alloc(0) : path.subarray(prefix.length);
    const id = await resolvePath(fs, relative);
    if (id === undefined) {
      differences.push(`${relative.toString()}: not found`);
      continue;
    }
    const flags = value.readUInt32BE(0);
    const want = ATTRIBUTE_NAMES.filter(([bit]) => flags & bit).map(([, name]) => name);
    const got = (await fs.stat(id)).attributes ?? [];
    if (want.join(',') !== [...got].join(',')) differences.push(`${relative.toString()}: attributes ntfs-3g [${want}], guest [${got}]`);
  }
  return differences;
}

/** Runs in $MFT's unnamed $DATA, from ntfsinfo's runlist dump (the first one it prints is $DATA's). */
export function mftRunCount(image: string): number {
  const text = run('ntfsinfo', ['-v', '-i', '0', image]);
  const data = text.slice(text.indexOf('Dumping attribute $DATA'));
  const block = data.slice(data.indexOf('Runlist:'));
  const lines = block.split('\n').slice(1);
  let n = 0;
  for (const line of lines) {
    if (!/^\s+0x[0-9a-f]+\s+0x[0-9a-f]+\s+0x[0-9a-f]+/.test(line)) break;
    n++;
  }
  return n;
}

/** The attribute types ntfsinfo dumps for a path, with the records they sit in. */
export function ntfsinfoAttributes(image: string, path: string): string[] {
  return [...run('ntfsinfo', ['-F', path, image]).matchAll(/Dumping attribute (\S+) \(0x[0-9a-f]+\) from mft record (\d+)/g)].map(
    (m) => `${m[1]}@${m[2]}`,
  );
}

/** The runlist ntfsinfo prints for attribute `attribute` (e.g. '$DATA', '$INDEX_ALLOCATION') of a path or record: [lcn, clusters] of allocated runs. */
export function ntfsinfoRuns(image: string, target: { path: string } | { record: number }, attribute: string): [number, number][] {
  const args = 'path' in target ? ['-v', '-F', target.path, image] : ['-v', '-i', String(target.record), image];
  const text = run('ntfsinfo', args);
  const runs: [number, number][] = [];
  for (const section of text.split('Dumping attribute ').slice(1)) {
    if (!section.startsWith(`${attribute} `)) continue;
    const block = section.slice(section.indexOf('Runlist:'));
    if (!section.includes('Runlist:')) continue;
    for (const line of block.split('\n').slice(1)) {
      const m = /^\s+0x([0-9a-f]+)\s+(0x[0-9a-f]+|<HOLE>|-?\d+)\s+0x([0-9a-f]+)/i.exec(line);
      if (!m) break;
      if (m[2]!.startsWith('0x')) runs.push([parseInt(m[2]!.slice(2), 16), parseInt(m[3]!, 16)]);
    }
  }
  return runs;
}

/** Volume byte offset of MFT record `record` (through $MFT's runlist as ntfsinfo prints it). */
export function mftRecordOffset(image: string, record: number, clusterSize: number, recordSize = 1024): number {
  let vcnByte = record * recordSize;
  for (const [lcn, clusters] of ntfsinfoRuns(image, { record: 0 }, '$DATA')) {
    if (vcnByte < clusters * clusterSize) return lcn * clusterSize + vcnByte;
    vcnByte -= clusters * clusterSize;
  }
  throw new Error(`record ${record} is beyond the MFT`);
}

/** The record number ntfsinfo reports for a path. */
export function mftRecordOf(image: string, path: string): number {
  return Number(/Dumping Inode (\d+)/.exec(run('ntfsinfo', ['-F', path, image]))![1]);
}

/**
 * Byte offset (in the record) of the first attribute of `type` in an MFT record as stored (the
 * attribute chain is not covered by fixups except at stride ends, which patches must avoid).
 */
export function attributeOffset(record: Buffer, type: number, nth = 0): number {
  let at = record.readUInt16LE(0x14);
  let seen = 0;
  while (at + 8 <= record.length) {
    const t = record.readUInt32LE(at);
    if (t === 0xffffffff) break;
    if (t === type && seen++ === nth) return at;
    at += record.readUInt32LE(at + 4);
  }
  throw new Error(`no attribute 0x${type.toString(16)} in the record`);
}

/** Mounts with faketime so that what ntfs-3g writes does not depend on the clock (fuzz bases must replay). */
export const FROZEN_TIME = '2020-01-01 00:00:00';
