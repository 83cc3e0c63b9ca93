// EXPERIMENT (issue 5), not part of Cairn: a minimal FUSE server that speaks the kernel protocol on
// /dev/fuse directly (no libfuse, no fuse-native), serving one read-only file `null.raw` of SIZE bytes
// from a static buffer. It measures what a raw transport could buy Cairn's mount: 1 MiB READ requests
// (FUSE_MAX_PAGES, max_pages up to 256) instead of libfuse 2.9's 128 KiB, a larger bdi read-ahead, and
// requests served by a worker thread looping on blocking read(2)/writev(2) instead of Node's main loop.
// Implements only what ls, stat and dd need. Needs root (mount -t fuse with fd=N).
//
// Usage: node bench/lib/raw-fuse-null.mjs DIR SIZE [maxPages=256] [readAheadKiB=1024]
// Prints `ready` once mounted and the read-ahead set; prints one JSON line of counters on SIGUSR2 and,
// after unmounting (umount -l), on SIGINT/SIGTERM: {"opcodes":{...},"readSizes":{"<bytes>":count},
// "cpuMs":n} (READ replies by length; CPU time of the whole process since start).
// Layouts follow include/uapi/linux/fuse.h (protocol 7.38); all integers little-endian.
import { Worker, isMainThread, workerData } from 'node:worker_threads';
import { closeSync, openSync, readSync, writeFileSync, writevSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const FUSE_ROOT_ID = 1n;
const FILE_ID = 2n;
const FILE_NAME = 'null.raw';
const PAGE = 4096;
const IN_HEADER = 40; // struct fuse_in_header
const OUT_HEADER = 16; // struct fuse_out_header

// Opcodes (enum fuse_opcode); the names in the counters come from this object.
const OP = {
  FUSE_LOOKUP: 1,
  FUSE_FORGET: 2,
  FUSE_GETATTR: 3,
  FUSE_OPEN: 14,
  FUSE_READ: 15,
  FUSE_STATFS: 17,
  FUSE_RELEASE: 18,
  FUSE_GETXATTR: 22,
  FUSE_LISTXATTR: 23,
  FUSE_FLUSH: 25,
  FUSE_INIT: 26,
  FUSE_OPENDIR: 27,
  FUSE_READDIR: 28,
  FUSE_RELEASEDIR: 29,
  FUSE_ACCESS: 34,
  FUSE_INTERRUPT: 36,
  FUSE_DESTROY: 38,
  FUSE_BATCH_FORGET: 42,
};
const OP_NAME = new Map(Object.entries(OP).map(([name, code]) => [code, name]));

// fuse_init_in/out flags we may ask for (only those the kernel offers are kept).
const INIT = {
  FUSE_ASYNC_READ: 1 << 0,
  FUSE_BIG_WRITES: 1 << 5,
  FUSE_PARALLEL_DIROPS: 1 << 18,
  FUSE_MAX_PAGES: 1 << 22,
  FUSE_NO_OPENDIR_SUPPORT: 1 << 24,
  FUSE_INIT_EXT: 1 << 30,
};
const FOPEN_KEEP_CACHE = 1 << 1;
const ERRNO = { ENOENT: 2, EIO: 5, ENOSYS: 38 };
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const DT_DIR = 4;
const DT_REG = 8;
const VALID_SECONDS = 3600n; // entry and attribute cache timeouts: nothing here ever changes

// Counters shared with the main thread (the worker blocks in read(2) and cannot take messages):
// [0..63] requests per opcode (opcode & 63), [64 + pages] READ replies by length in pages.
const COUNTERS = 64 + 257;

if (isMainThread) await main();
else serve(workerData);

async function main() {
  const [dir, sizeArg, maxPagesArg = '256', readAheadArg = '1024'] = process.argv.slice(2);
  const size = Number(sizeArg);
  const maxPages = Number(maxPagesArg);
  const readAheadKiB = Number(readAheadArg);
  if (!dir || !Number.isSafeInteger(size) || size < 0 || !(maxPages >= 1 && maxPages <= 256) || !(readAheadKiB > 0)) {
    console.error('usage: node bench/lib/raw-fuse-null.mjs DIR SIZE [maxPages=256] [readAheadKiB=1024]');
    process.exit(2);
  }
  const fd = openSync('/dev/fuse', 'r+');
  // The mount only registers the connection; the kernel queues INIT, answered by the worker below.
  const options = `fd=3,rootmode=40000,user_id=0,group_id=0,ro,allow_other,max_read=${maxPages * PAGE}`;
  const mounted = spawnSync('mount', ['-i', '-t', 'fuse', '-o', options, 'cairnnull', dir], {
    stdio: ['ignore', 'inherit', 'inherit', fd],
  });
  if (mounted.status !== 0) {
    console.error(`mount failed (status ${mounted.status})`);
    process.exit(1);
  }
  const counters = new Int32Array(new SharedArrayBuffer(COUNTERS * 4));
  const worker = new Worker(fileURLToPath(import.meta.url), { workerData: { fd, size, maxPages, counters } });
  worker.on('error', (err) => console.error('worker:', err));

  // The bdi exists once mounted; its read-ahead starts at the kernel default (128 KiB) and INIT can
  // only lower it, so a larger window is set here through sysfs, after INIT was answered (stat).
  // (async: a blocking stat could hold this thread while the worker is still starting)
  const { dev } = await stat(dir);
  const bdi = `/sys/class/bdi/${Math.floor(dev / 256) & 0xfff}:${(dev & 0xff) | ((dev >> 12) & 0xfff00)}`;
  writeFileSync(`${bdi}/read_ahead_kb`, String(readAheadKiB));

  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    spawnSync('umount', ['-l', dir], { stdio: 'inherit' });
    // The worker sees ENODEV once the connection is gone and returns.
    worker.once('exit', () => {
      closeSync(fd);
      console.log(JSON.stringify(snapshot(counters)));
      process.exit(0);
    });
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  process.on('SIGUSR2', () => console.log(JSON.stringify(snapshot(counters))));
  // Last: a parent may signal as soon as it reads this line.
  console.log(`ready bdi=${bdi} read_ahead_kb=${readAheadKiB} max_pages=${maxPages}`);
}

function snapshot(counters) {
  const opcodes = {};
  for (let i = 0; i < 64; i++) if (counters[i]) opcodes[OP_NAME.get(i) ?? `op${i}`] = counters[i];
  const readSizes = {};
  for (let pages = 0; pages <= 256; pages++) if (counters[64 + pages]) readSizes[pages * PAGE] = counters[64 + pages];
  const { user, system } = process.cpuUsage(); // all threads of this process
  return { opcodes, readSizes, cpuMs: Math.round((user + system) / 1000) };
}

/** The request loop (worker thread): one blocking read(2) per request, one writev(2) per reply. */
function serve({ fd, size, maxPages, counters }) {
  const block = Buffer.alloc(maxPages * PAGE, 7);
  // A request is at most a header, a small argument and a name; WRITE (max_write) never comes (ro).
  const request = Buffer.alloc(maxPages * PAGE + PAGE);
  const header = Buffer.alloc(OUT_HEADER);
  const body = Buffer.alloc(256);
  const attrOf = (nodeId, out, at) =>
    writeAttr(out, at, nodeId, nodeId === FILE_ID ? S_IFREG | 0o444 : S_IFDIR | 0o555, nodeId === FILE_ID ? size : 0);

  const reply = (unique, error, ...parts) => {
    const length = OUT_HEADER + parts.reduce((n, p) => n + p.length, 0);
    header.writeUInt32LE(length, 0);
    header.writeInt32LE(-error, 4);
    header.writeBigUInt64LE(unique, 8);
    try {
      writevSync(fd, [header, ...parts]);
    } catch (err) {
      // ENOENT: the request was interrupted and is gone; nothing to do.
      if (err.code !== 'ENOENT') throw err;
    }
  };

  for (;;) {
    let length;
    try {
      length = readSync(fd, request, 0, request.length, null);
    } catch (err) {
      if (err.code === 'ENODEV') return; // unmounted
      if (err.code === 'EINTR' || err.code === 'EAGAIN' || err.code === 'ENOENT') continue;
      throw err;
    }
    if (length < IN_HEADER) throw new Error(`short FUSE request: ${length} bytes`);
    const opcode = request.readUInt32LE(4);
    const unique = request.readBigUInt64LE(8);
    const nodeId = request.readBigUInt64LE(16);
    const arg = IN_HEADER; // start of the opcode's argument
    Atomics.add(counters, opcode & 63, 1);

    switch (opcode) {
      case OP.FUSE_INIT: {
        const minor = Math.min(request.readUInt32LE(arg + 4), 38);
        const offered = request.readUInt32LE(arg + 12);
        const wanted = INIT.FUSE_ASYNC_READ | INIT.FUSE_BIG_WRITES | INIT.FUSE_PARALLEL_DIROPS | INIT.FUSE_MAX_PAGES;
        const out = body.fill(0, 0, 64); // struct fuse_init_out
        out.writeUInt32LE(7, 0);
        out.writeUInt32LE(minor, 4);
        out.writeUInt32LE(request.readUInt32LE(arg + 8), 8); // max_readahead: keep the kernel's
        out.writeUInt32LE(offered & wanted, 12);
        out.writeUInt16LE(64, 16); // max_background: in-flight async (read-ahead) requests
        out.writeUInt16LE(48, 18); // congestion_threshold
        out.writeUInt32LE(maxPages * PAGE, 20); // max_write
        out.writeUInt32LE(1, 24); // time_gran (ns)
        out.writeUInt16LE(maxPages, 28); // max_pages (with FUSE_MAX_PAGES)
        reply(unique, 0, out.subarray(0, 64));
        break;
      }
      case OP.FUSE_LOOKUP: {
        const name = request.toString('utf8', arg, request.indexOf(0, arg));
        if (nodeId !== FUSE_ROOT_ID || name !== FILE_NAME) {
          reply(unique, ERRNO.ENOENT);
          break;
        }
        const out = body.fill(0, 0, 128); // struct fuse_entry_out
        out.writeBigUInt64LE(FILE_ID, 0);
        out.writeBigUInt64LE(VALID_SECONDS, 16); // entry_valid
        out.writeBigUInt64LE(VALID_SECONDS, 24); // attr_valid
        attrOf(FILE_ID, out, 40);
        reply(unique, 0, out.subarray(0, 128));
        break;
      }
      case OP.FUSE_GETATTR: {
        const out = body.fill(0, 0, 104); // struct fuse_attr_out
        out.writeBigUInt64LE(VALID_SECONDS, 0);
        attrOf(nodeId, out, 16);
        reply(unique, 0, out.subarray(0, 104));
        break;
      }
      case OP.FUSE_OPEN:
      case OP.FUSE_OPENDIR: {
        const out = body.fill(0, 0, 16); // struct fuse_open_out
        out.writeBigUInt64LE(1n, 0);
        out.writeUInt32LE(opcode === OP.FUSE_OPEN ? FOPEN_KEEP_CACHE : 0, 8);
        reply(unique, 0, out.subarray(0, 16));
        break;
      }
      case OP.FUSE_READ: {
        // struct fuse_read_in: fh u64, offset u64, size u32, ...
        const offset = Number(request.readBigUInt64LE(arg + 8));
        const wantedLength = request.readUInt32LE(arg + 16);
        if (nodeId !== FILE_ID) {
          reply(unique, ERRNO.EIO);
          break;
        }
        const replyLength = Math.max(0, Math.min(wantedLength, size - offset, block.length));
        Atomics.add(counters, 64 + Math.ceil(replyLength / PAGE), 1);
        reply(unique, 0, block.subarray(0, replyLength));
        break;
      }
      case OP.FUSE_READDIR: {
        const index = Number(request.readBigUInt64LE(arg + 8)); // offset = next entry's index
        const limit = request.readUInt32LE(arg + 16);
        const entries = [
          ['.', FUSE_ROOT_ID, DT_DIR],
          ['..', FUSE_ROOT_ID, DT_DIR],
          [FILE_NAME, FILE_ID, DT_REG],
        ];
        const out = body.fill(0);
        let used = 0;
        for (let i = index; i < entries.length; i++) {
          const [name, ino, type] = entries[i];
          const recordLength = (24 + name.length + 7) & ~7; // struct fuse_dirent, 8-byte aligned
          if (used + recordLength > limit) break;
          out.writeBigUInt64LE(ino, used);
          out.writeBigUInt64LE(BigInt(i + 1), used + 8);
          out.writeUInt32LE(name.length, used + 16);
          out.writeUInt32LE(type, used + 20);
          out.write(name, used + 24, 'latin1');
          used += recordLength;
        }
        reply(unique, 0, out.subarray(0, used));
        break;
      }
      case OP.FUSE_STATFS: {
        const out = body.fill(0, 0, 80); // struct fuse_kstatfs
        out.writeBigUInt64LE(BigInt(Math.ceil(size / PAGE)), 0); // blocks
        out.writeBigUInt64LE(2n, 24); // files
        out.writeUInt32LE(PAGE, 40); // bsize
        out.writeUInt32LE(255, 44); // namelen
        out.writeUInt32LE(PAGE, 48); // frsize
        reply(unique, 0, out.subarray(0, 80));
        break;
      }
      case OP.FUSE_RELEASE:
      case OP.FUSE_RELEASEDIR:
      case OP.FUSE_FLUSH:
      case OP.FUSE_DESTROY:
        reply(unique, 0);
        break;
      case OP.FUSE_FORGET:
      case OP.FUSE_BATCH_FORGET:
      case OP.FUSE_INTERRUPT: // every request is answered at once; nothing to interrupt
        break;
      default: // GETXATTR, LISTXATTR, ACCESS and anything else: the kernel stops asking
        reply(unique, ERRNO.ENOSYS);
    }
  }
}

/** struct fuse_attr (88 bytes) at `at`. */
function writeAttr(out, at, nodeId, mode, size) {
  out.writeBigUInt64LE(nodeId, at); // ino
  out.writeBigUInt64LE(BigInt(size), at + 8);
  out.writeBigUInt64LE(BigInt(Math.ceil(size / 512)), at + 16); // blocks (512-byte units)
  out.writeUInt32LE(mode, at + 60);
  out.writeUInt32LE(mode & S_IFDIR ? 2 : 1, at + 64); // nlink
  out.writeUInt32LE(PAGE, at + 80); // blksize
}
