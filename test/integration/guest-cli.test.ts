// Single-file restore through the real CLI: `cairn ls/stat/cat/restore/versions` on a GPT disk whose
// p1 is ext4 (made by mkfs.ext4 from a tree with the hard cases) and p2 a FAT ESP. The oracle is the
// kernel's loop mount of the same ext4 image (mtools for FAT), never Cairn's own reader; restored trees
// are compared file by file with it. One test runs everything as an unprivileged user.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CAIRN_BIN, runCairn } from '../helpers/cairn-cli.js';
import { MiB, flipByte, makeTempDir, placeImage, sfdiskImage, sfdiskJson } from '../helpers/disk-images.js';
import { makeTree, mkfs, run, withMount } from '../helpers/ext4-images.js';
import { catalogOf, chunkFileAt } from '../helpers/fuse-harness.js';
import { Repository } from '../../src/store/repository.js';

let dir: string;
let repo: string;
let ext4Image: string;
let disk: string;
let p1Offset: number;

const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

async function cairn(args: string[]): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return runCairn([...args, '--repo', repo]);
}

async function cairnOk(args: string[]): Promise<Buffer> {
  const result = await cairn(args);
  if (result.code !== 0) throw new Error(`cairn ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
  return result.stdout;
}

/** What the kernel shows of a tree: relative path (latin1, so any bytes survive) → properties. */
function kernelTree(
  root: string,
): Map<string, { type: string; size: number; mode: number; uid: number; gid: number; mtimeNs: bigint; target?: string }> {
  const out = new Map<string, { type: string; size: number; mode: number; uid: number; gid: number; mtimeNs: bigint; target?: string }>();
  const visit = (path: Buffer, relative: string): void => {
    for (const name of readdirSync(path, { encoding: 'buffer' })) {
      const child = Buffer.concat([path, Buffer.from('/'), name]);
      const rel = relative ? `${relative}/${name.toString('latin1')}` : name.toString('latin1');
      const st = lstatSync(child, { bigint: true });
      const type = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : 'other';
      out.set(rel, {
        type,
        size: Number(st.size),
        mode: Number(st.mode & 0o7777n),
        uid: Number(st.uid),
        gid: Number(st.gid),
        mtimeNs: st.mtimeNs,
        ...(type === 'symlink' ? { target: readlinkSync(child, { encoding: 'buffer' }).toString('latin1') } : {}),
      });
      if (type === 'dir') visit(child, rel);
    }
  };
  visit(Buffer.from(root), '');
  return out;
}

/** The guest path bytes an escaped listing path stands for, in latin1 like kernelTree's keys. */
function unescapePath(path: string): string {
  return path
    .split('/')
    .map((segment) => {
      const bytes: number[] = [];
      const utf8 = Buffer.from(segment, 'utf8');
      for (let i = 0; i < utf8.length; i++) {
        if (utf8[i] === 0x25 && i + 2 < utf8.length && /^[0-9A-F]{2}$/.test(utf8.subarray(i + 1, i + 3).toString())) {
          bytes.push(parseInt(utf8.subarray(i + 1, i + 3).toString(), 16));
          i += 2;
        } else bytes.push(utf8[i]!);
      }
      return Buffer.from(bytes).toString('latin1');
    })
    .join('/');
}

beforeAll(async () => {
  dir = makeTempDir('guest-cli');
  chmodSync(dir, 0o755);
  const tree = join(dir, 'tree');
  mkdirSync(tree);
  makeTree(tree, { manyEntries: 400, invalidUtf8: true, specials: true });
  mkdirSync(join(tree, 'etc', 'nginx'), { recursive: true });
  writeFileSync(join(tree, 'etc', 'nginx', 'nginx.conf'), 'server { listen 80; }\n');
  ext4Image = mkfs(join(dir, 'p1.ext4'), { size: 64 * MiB, from: tree });
  disk = sfdiskImage(join(dir, 'disk.img'), 112 * MiB, 'label: gpt\nsize=64M, type=L, name=root\nsize=40M, type=U, name=esp\n');
  const table = sfdiskJson(disk);
  p1Offset = table.partitions[0]!.start * table.sectorsize;
  placeImage(disk, p1Offset, ext4Image);
  // p2: a FAT32 EFI system partition with a long name, filled by mtools (which needs FAT32's minimum cluster count).
  const esp = join(dir, 'esp.fat');
  run('truncate', ['-s', String(40 * MiB), esp]);
  run('mkfs.fat', ['-F', '32', '-s', '1', '-n', 'ESP', esp]);
  writeFileSync(join(dir, 'grub.cfg'), 'set timeout=5\n');
  run('mmd', ['-i', esp, '::/EFI', '::/EFI/debian']);
  run('mcopy', ['-i', esp, join(dir, 'grub.cfg'), '::/EFI/debian/Grub Configuration.cfg']);
  placeImage(disk, table.partitions[1]!.start * table.sectorsize, esp);
  repo = join(dir, 'repo');
  execFileSync(process.execPath, [CAIRN_BIN, 'init', '--repo', repo, '--chunk-size', '64KiB']);
  execFileSync(process.execPath, [CAIRN_BIN, 'backup', '--repo', repo, '--vm', 'web', '--disk', `sda=${disk}`], { stdio: 'ignore' });
}, 180_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('cairn ls, stat, cat and restore inside a guest', () => {
  it('lists the whole ext4 tree as the kernel does (ls -R --json)', async () => {
    const listing = JSON.parse((await cairnOk(['ls', '-R', '--json', 'cairn://web/latest/sda/p1'])).toString()) as {
      path: string;
      type: string;
      size: number;
      mode: string;
      uid: number;
      gid: number;
      mtime: string;
      target?: string;
    }[];
    await withMount(ext4Image, true, (mounted) => {
      const kernel = kernelTree(mounted);
      const ours = new Map(listing.map((e) => [unescapePath(e.path.slice(1)), e]));
      expect([...ours.keys()].sort()).toEqual([...kernel.keys()].sort());
      for (const [path, k] of kernel) {
        const o = ours.get(path)!;
        const type = ['dir', 'symlink', 'file'].includes(o.type) ? o.type : 'other';
        expect({ path, type, size: o.type === 'dir' ? k.size : o.size, mode: parseInt(o.mode, 8), uid: o.uid, gid: o.gid }).toEqual({
          path,
          type: k.type,
          size: k.size,
          mode: k.mode,
          uid: k.uid,
          gid: k.gid,
        });
        // ISO with nanoseconds, to the kernel's nanosecond.
        const [seconds, fraction] = o.mtime.replace('Z', '').split('.');
        expect(BigInt(Date.parse(seconds + 'Z')) * 1_000_000n + BigInt(fraction!), path).toBe(k.mtimeNs);
        if (k.target !== undefined) expect(unescapePath(o.target!), path).toBe(k.target);
      }
    });
  });

  it('shows what a disk holds, stats files and cats them (ext4 and FAT)', async () => {
    expect((await cairnOk(['ls', 'cairn://web/latest/sda'])).toString().trim().split('\n')).toEqual(['p1', 'p2']);
    const long = (await cairnOk(['ls', '-l', 'cairn://web/latest/sda'])).toString();
    expect(long).toMatch(/partition .* ext4 +p1/);
    expect(long).toMatch(/partition .* vfat +p2/);
    const stat = JSON.parse((await cairnOk(['stat', '--json', 'cairn://web/latest/sda/p1/etc/nginx/nginx.conf'])).toString()) as {
      size: number;
      type: string;
      filesystem: string;
    };
    expect(stat).toMatchObject({ size: 22, type: 'file', filesystem: 'ext4' });
    expect((await cairnOk(['cat', 'cairn://web/latest/sda/p1/etc/nginx/nginx.conf'])).toString()).toBe('server { listen 80; }\n');
    expect(sha(await cairnOk(['cat', 'cairn://web/latest/sda/p1/large.bin']))).toBe(
      await withMount(ext4Image, true, (m) => sha(readFileSync(join(m, 'large.bin')))),
    );
    expect((await cairnOk(['cat', 'cairn://web/latest/sda/p2/EFI/debian/Grub Configuration.cfg'])).toString()).toBe('set timeout=5\n');
    // cat follows a symlink (as cat does); a missing file is exit 3.
    expect((await cairnOk(['cat', 'cairn://web/latest/sda/p1/link-fast'])).toString()).toBe('hello, ext4\n');
    const missing = await cairn(['cat', 'cairn://web/latest/sda/p1/etc/nope']);
    expect(missing.code).toBe(3);
  });

  it('restores a tree with modes, times, symlinks, hard links and holes, as the kernel shows it', async () => {
    const dest = join(dir, 'restored');
    // The trailing slash: the filesystem's files, not the partition's image.
    await cairnOk(['restore', 'cairn://web/latest/sda/p1/', dest]);
    await withMount(ext4Image, true, (mounted) => {
      const kernel = kernelTree(mounted);
      const restored = kernelTree(dest);
      for (const [path, k] of kernel) {
        if (k.type === 'other') continue; // devices and fifos are listed as not restored
        const r = restored.get(path);
        expect(r, path).toBeDefined();
        expect({ type: r!.type, mode: r!.mode, size: k.type === 'dir' ? k.size : r!.size, target: r!.target }, path).toEqual({
          type: k.type,
          mode: k.mode,
          size: k.size,
          target: k.target,
        });
        // Node sets times to the microsecond.
        if (k.type !== 'symlink') expect(r!.mtimeNs / 1000n, path).toBe(k.mtimeNs / 1000n);
        if (k.type === 'file') {
          const name = Buffer.from(path, 'latin1');
          const a = readFileSync(Buffer.concat([Buffer.from(mounted + '/'), name]));
          const b = readFileSync(Buffer.concat([Buffer.from(dest + '/'), name]));
          expect(a.equals(b), path).toBe(true);
        }
      }
    });
    expect(statSync(join(dest, 'links', 'hard-a')).ino).toBe(statSync(join(dest, 'hard-c')).ino);
    // 40 MiB apparent, 12 KB of data: the restored file stays sparse.
    expect(statSync(join(dest, 'sparse.bin')).blocks * 512).toBeLessThan(1 * MiB);
    // Without --force an existing destination is refused.
    expect((await cairn(['restore', 'cairn://web/latest/sda/p1/', dest])).code).toBe(2);
  });

  it('names the file whose chunk is damaged, restores the rest and exits 5', async () => {
    // Where the middle of large.bin lives, as e2fsprogs tells it (a chunk that holds only its data).
    const blockSize = Number(/Block size:\s+(\d+)/.exec(run('dumpe2fs', ['-h', ext4Image]))![1]);
    const block = Number(run('debugfs', ['-R', `bmap /large.bin ${(1.5 * MiB) / blockSize}`, ext4Image]).trim());
    const offset = p1Offset + block * blockSize;
    const repository = await Repository.open(repo);
    const chunk = await chunkFileAt(catalogOf(repository), 'web', (await repository.listPointIds('web'))[0]!, 'sda', offset);
    const saved = readFileSync(chunk);
    chmodSync(chunk, 0o600);
    flipByte(chunk, saved.length - 10);
    try {
      const dest = join(dir, 'restored-damaged');
      const result = await cairn(['restore', 'cairn://web/latest/sda/p1/', dest]);
      expect(result.code).toBe(5);
      expect(result.stderr).toMatch(/1 file\(s\) not restored.*\n.*large\.bin/);
      expect(() => lstatSync(join(dest, 'large.bin'))).toThrow();
      expect(readFileSync(join(dest, 'hello.txt'), 'utf8')).toBe('hello, ext4\n');
      expect(readdirSync(dest).some((n) => n.includes('cairn-partial'))).toBe(false);
    } finally {
      writeFileSync(chunk, saved);
      chmodSync(chunk, 0o400);
    }
  });

  it('shows a file in every point with identical versions collapsed (versions)', async () => {
    // A second point with nginx.conf changed, a third with it unchanged.
    const tree = join(dir, 'tree');
    writeFileSync(join(tree, 'etc', 'nginx', 'nginx.conf'), 'server { listen 8080; }\n');
    const next = mkfs(join(dir, 'p1-next.ext4'), { size: 64 * MiB, from: tree });
    placeImage(disk, p1Offset, next);
    for (let i = 0; i < 2; i++) {
      await new Promise((r) => setTimeout(r, 1100));
      execFileSync(process.execPath, [CAIRN_BIN, 'backup', '--repo', repo, '--vm', 'web', '--disk', `sda=${disk}`], { stdio: 'ignore' });
    }
    const versions = JSON.parse((await cairnOk(['versions', '--json', 'cairn://web/*/sda/p1/etc/nginx/nginx.conf'])).toString()) as {
      points: string[];
      size: number;
      sha256: string;
    }[];
    expect(versions.map((v) => [v.points.length, v.size])).toEqual([
      [1, 22],
      [2, 24],
    ]);
    expect(versions[1]!.sha256).toBe(sha(Buffer.from('server { listen 8080; }\n')));
  });
});

describe('as an unprivileged user in the repository group', () => {
  const tag = `${process.pid}`;
  const user = `cairn-reader-${tag}`;
  const group = `cairn-ops-${tag}`;
  let shared: string;

  beforeAll(() => {
    execFileSync('groupadd', [group]);
    execFileSync('useradd', ['-M', '-N', '-G', group, user]);
    shared = join(dir, 'shared-repo');
    execFileSync(process.execPath, [CAIRN_BIN, 'init', '--repo', shared, '--chunk-size', '64KiB', '--shared-group', group]);
    execFileSync(process.execPath, [CAIRN_BIN, 'backup', '--repo', shared, '--vm', 'web', '--disk', `sda=${disk}`], { stdio: 'ignore' });
  }, 120_000);

  afterAll(() => {
    execFileSync('userdel', [user], { stdio: 'ignore' });
    execFileSync('groupdel', [group], { stdio: 'ignore' });
  });

  const asUser = (args: string[]): Buffer =>
    execFileSync('runuser', ['-u', user, '--', process.execPath, CAIRN_BIN, ...args, '--repo', shared], {
      env: { ...process.env, CAIRN_LOG_LEVEL: 'warn', HOME: dir },
    });

  it('lists, cats and restores guest files, and mounts the tree without root', async () => {
    expect(asUser(['ls', 'cairn://web/latest/sda/p1/etc/nginx']).toString()).toBe('nginx.conf\n');
    expect(asUser(['cat', 'cairn://web/latest/sda/p1/etc/nginx/nginx.conf']).toString()).toMatch(/^server/);
    const home = join(dir, 'user-home');
    mkdirSync(home);
    execFileSync('chown', [user, home]);
    asUser(['restore', 'cairn://web/latest/sda/p1/etc', join(home, 'etc')]);
    expect(readFileSync(join(home, 'etc', 'nginx', 'nginx.conf'), 'utf8')).toMatch(/^server/);
    expect(statSync(join(home, 'etc')).uid).toBe(Number(execFileSync('id', ['-u', user]).toString()));

    const mnt = join(home, 'mnt');
    const child = execFileSync('sh', [
      '-c',
      `runuser -u ${user} -- ${process.execPath} ${CAIRN_BIN} mount --repo ${shared} ${mnt} >${home}/mount.log 2>&1 & echo $!`,
    ])
      .toString()
      .trim();
    try {
      const deadline = Date.now() + 20_000;
      while (!readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${mnt} `)) {
        if (Date.now() > deadline) throw new Error(`no mount: ${readFileSync(join(home, 'mount.log'), 'utf8')}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const read = execFileSync('runuser', [
        '-u',
        user,
        '--',
        'cat',
        join(mnt, 'web', 'latest', 'sda', 'p1', 'etc', 'nginx', 'nginx.conf'),
      ]);
      expect(read.toString()).toMatch(/^server/);
      const listing = execFileSync('runuser', ['-u', user, '--', 'ls', join(mnt, 'web', 'latest', 'sda', 'p2', 'EFI', 'debian')]);
      expect(listing.toString().trim()).toBe('Grub Configuration.cfg');
    } finally {
      execFileSync('runuser', ['-u', user, '--', 'fusermount', '-u', mnt], { stdio: 'ignore' });
      execFileSync('sh', ['-c', `while kill -0 ${child} 2>/dev/null; do sleep 0.1; done`]);
    }
  });
});
