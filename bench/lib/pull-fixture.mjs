// Fixture for the NBD pull benchmark: a qcow2 disk full of data (copied from an nbdkit plugin), a
// persistent dirty bitmap, and guest-like 64 KiB writes spread over the disk; served by qemu-nbd.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { makeServeImage } from './nbd-serve-image.mjs';
import { prng } from './prng.mjs';

export { prng };

export function sh(cmd, args, opts = {}) {
  return execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 256 * 1024 * 1024, ...opts }).toString();
}

/** Starts a daemonizing server (nbdkit -P, qemu-nbd --fork): it returns once the socket listens. */
function daemon(cmd, args, pidFile) {
  sh(cmd, args);
  // The pid file may appear a moment after the parent returns: poll for it with a deadline.
  const until = Date.now() + 10_000;
  while (!fs.existsSync(pidFile) || fs.readFileSync(pidFile, 'utf8').trim() === '') {
    if (Date.now() > until) throw new Error(`${cmd} wrote no pid file ${pidFile}`);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
  }
  const pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
  const stop = async () => {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      return;
    }
    const until = Date.now() + 10_000;
    for (;;) {
      try {
        process.kill(pid, 0);
      } catch {
        return;
      }
      if (Date.now() > until) throw new Error(`${cmd} (pid ${pid}) did not exit`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  return { pid, stop };
}

/**
 * A qcow2 of `size` bytes: every byte data, copied from `nbdkit PLUGIN SIZE`; or, for plugin
 * `used-disk`, the NBD serve benchmark's used-disk image (a quarter never written, so unallocated in
 * the qcow2; text; incompressible data).
 */
export async function makeDataImage(dir, size, plugin) {
  if (plugin === 'used-disk') {
    const raw = path.join(dir, 'disk.raw');
    makeServeImage(raw, size);
    const image = path.join(dir, 'disk.qcow2');
    sh('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', raw, image]);
    fs.rmSync(raw);
    return image;
  }
  const sock = path.join(dir, 'gen.sock');
  const { stop } = daemon('nbdkit', ['-U', sock, '-P', path.join(dir, 'gen.pid'), plugin, String(size)], path.join(dir, 'gen.pid'));
  try {
    const image = path.join(dir, 'disk.qcow2');
    sh('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', `nbd+unix:///?socket=${sock}`, image]);
    return image;
  } finally {
    await stop();
  }
}

/** Adds persistent bitmap `name`, then writes `percent` % of the disk in 64 KiB extents spread over it. */
export function dirtyImage(image, size, percent, name, seed = 1) {
  sh('qemu-img', ['bitmap', '--add', image, name]);
  const block = 64 * 1024;
  const blocks = Math.floor(size / block);
  const want = Math.round((blocks * percent) / 100);
  const random = prng(seed);
  const chosen = new Set();
  while (chosen.size < want) chosen.add(Math.floor(random() * blocks));
  const offsets = [...chosen].sort((a, b) => a - b).map((b) => b * block);
  // Unique contents per extent (qemu-io -s takes a file), so dedup cannot flatter the incremental.
  const dataDir = fs.mkdtempSync(path.join(path.dirname(image), 'dirty-'));
  const script = offsets.map((o, i) => {
    const file = path.join(dataDir, String(i));
    const bytes = Buffer.alloc(block);
    for (let at = 0; at < block; at += 4) bytes.writeUInt32LE((random() * 2 ** 32) >>> 0, at);
    fs.writeFileSync(file, bytes);
    return `write -q -s ${file} ${o} 64k`;
  });
  // qemu-io reads commands from stdin: one process for thousands of writes.
  execFileSync('qemu-io', ['-f', 'qcow2', image], { input: script.join('\n') + '\nquit\n', stdio: ['pipe', 'ignore', 'inherit'] });
  // The data files stay until the caller removes `dir`: deleting thousands of files just before the
  // timed incremental runs would slow their chunk creation (see bench/nbd-pull.mjs on ext4).
  return { extents: offsets.length, dirtyBytes: offsets.length * block };
}

/** qemu-nbd read-only on a temp socket, several clients allowed (nbdcopy and cairn use multi-conn). */
export async function serveImage(dir, image, bitmap) {
  const sock = path.join(dir, `qemu-nbd-${Date.now()}.sock`);
  const pidFile = `${sock}.pid`;
  const args = [
    '-f',
    'qcow2',
    '-r',
    '-t',
    '-e',
    '8',
    '-k',
    sock,
    '--fork',
    '--pid-file',
    pidFile,
    ...(bitmap ? ['-B', bitmap] : []),
    image,
  ];
  const { pid, stop } = daemon('qemu-nbd', args, pidFile);
  return { uri: `nbd+unix:///?socket=${sock}`, pid, stop };
}
