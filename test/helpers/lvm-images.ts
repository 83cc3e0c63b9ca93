// LVM2 fixtures made by lvm2 itself on loop devices, and lvm2's own reports as the oracle.
//
// This kernel has no device-mapper, so `lvcreate` cannot run; `pvcreate`/`vgcreate` can, and
// `vgcfgrestore` writes any LV layout we describe in a backup file as real metadata. Every lvm call
// runs with a private LVM_SYSTEM_DIR (no archive, no backup, no hints, no devices file, locks in the
// sandbox) and `--devices` naming only the sandbox's loop devices, so it neither sees nor touches
// anything else on the machine.
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { BlockReader } from '../../src/core/block-reader.js';
import type { AllocationExtent } from '../../src/core/extent.js';
import { makeSparseFile, makeTempDir } from './disk-images.js';

export interface LoopDevice {
  /** `/dev/loopN`. */
  device: string;
  /** The image file it maps, and where in it the device starts (a partition: its offset). */
  image: string;
  offset: number;
  size: number;
}

/** One segment of an LV to write into a backup file: `stripes` = [[pvName, firstPe], …]. */
export interface SegmentSpec {
  startExtent: number;
  extentCount: number;
  stripes: [string, number][];
  /** Sectors; required with more than one stripe. */
  stripeSizeSectors?: number;
}

export interface LvSpec {
  name: string;
  segments: SegmentSpec[];
  /** Raw segment text instead (other segment types); `status` defaults to a visible LV. */
  rawSegments?: string[];
  status?: string[];
}

/** Rows of `lvs --segments` as lvm prints them with `--units b --nosuffix`. */
export interface LvmSegmentRow {
  lv_name: string;
  lv_uuid: string;
  lv_size: string;
  lv_attr: string;
  segtype: string;
  seg_start_pe: string;
  seg_size_pe: string;
  stripes: string;
  stripe_size: string;
  seg_pe_ranges: string;
}

export interface LvmReport {
  vg: { vg_name: string; vg_uuid: string; vg_extent_size: string; vg_seqno: string; vg_size: string };
  pvs: { pv_name: string; pv_uuid: string; pe_start: string; vg_name: string }[];
  segments: LvmSegmentRow[];
}

let uuidCounter = 0;
/** A fresh LVM-style UUID (32 characters of lvm's alphabet) for LVs written into backup files. */
export function lvmUuid(): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  let raw = '';
  let state = (Date.now() ^ (process.pid << 8) ^ (++uuidCounter * 2654435761)) >>> 0;
  for (let i = 0; i < 32; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    raw += alphabet[state % alphabet.length];
  }
  const groups = [6, 4, 4, 4, 4, 4, 6];
  let at = 0;
  return groups.map((length) => raw.slice(at, (at += length))).join('-');
}

export class LvmSandbox {
  private made: string | undefined;
  private readonly loops: LoopDevice[] = [];

  /**
   * The sandbox folder, made on first use: a sandbox built in a describe block whose tests are all
   * filtered out never runs its afterAll, so it must not leave a folder behind either.
   */
  get dir(): string {
    if (this.made === undefined) {
      const dir = makeTempDir('lvm');
      mkdirSync(join(dir, 'lock'), { recursive: true });
      mkdirSync(join(dir, 'etc'), { recursive: true });
      writeFileSync(
        join(dir, 'etc', 'lvm.conf'),
        [
          'devices { use_devicesfile = 0 obtain_device_list_from_udev = 0 hints = "none" scan_lvs = 0 md_component_detection = 0 }',
          'backup { backup = 0 archive = 0 }',
          'activation { udev_sync = 0 udev_rules = 0 monitoring = 0 }',
          `global { locking_dir = "${join(dir, 'lock')}" use_lvmpolld = 0 event_activation = 0 }`,
          '',
        ].join('\n'),
      );
      this.made = dir;
    }
    return this.made;
  }

  /** An image file of `size` bytes (sparse). */
  image(name: string, size: number): string {
    const path = join(this.dir, name);
    makeSparseFile(path, size);
    return path;
  }

  /** Maps `size` bytes of `image` from `offset` (a partition, or the whole file) to a loop device. */
  attach(image: string, offset = 0, size?: number): LoopDevice {
    const args = ['-f', '--show'];
    if (offset) args.push('--offset', String(offset));
    if (size !== undefined) args.push('--sizelimit', String(size));
    const device = execFileSync('losetup', [...args, image], { encoding: 'utf8' }).trim();
    const bytes = Number(execFileSync('blockdev', ['--getsize64', device], { encoding: 'utf8' }).trim());
    const loop = { device, image, offset, size: bytes };
    this.loops.push(loop);
    return loop;
  }

  detach(loop: LoopDevice): void {
    execFileSync('losetup', ['-d', loop.device]);
    this.loops.splice(this.loops.indexOf(loop), 1);
  }

  /** Runs an lvm command that takes `--devices`, limited to the sandbox's loop devices (or `devices`). */
  lvm(command: string, args: string[], devices: LoopDevice[] = this.loops): string {
    const list = devices.map((d) => d.device).join(',');
    return execFileSync(command, ['--devices', list, ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LVM_SYSTEM_DIR: join(this.dir, 'etc'), LVM_SUPPRESS_FD_WARNINGS: '1' },
    });
  }

  /** An lvm command without `--devices` (the caller limits it another way). */
  lvmWithoutDevices(command: string, args: string[]): string {
    return execFileSync(command, args, {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LVM_SYSTEM_DIR: join(this.dir, 'etc'), LVM_SUPPRESS_FD_WARNINGS: '1' },
    });
  }

  /** Like `lvm`, but returns the exit status and stderr instead of throwing. */
  tryLvm(command: string, args: string[], devices: LoopDevice[] = this.loops): { status: number; stdout: string; stderr: string } {
    try {
      return { status: 0, stdout: this.lvm(command, args, devices), stderr: '' };
    } catch (err) {
      const e = err as { status?: number; stdout?: string; stderr?: string };
      return { status: e.status ?? 1, stdout: String(e.stdout ?? ''), stderr: String(e.stderr ?? '') };
    }
  }

  /** Writes `lvs` into the VG through a vgcfgbackup file and vgcfgrestore (needs no device-mapper). */
  restoreWithLvs(vg: string, lvs: LvSpec[], extraRestoreArgs: string[] = []): void {
    const backup = join(this.dir, `${vg}.backup`);
    this.lvm('vgcfgbackup', ['-f', backup, vg]);
    const text = execFileSync('cat', [backup], { encoding: 'utf8' });
    writeFileSync(backup, insertLogicalVolumes(text, lvs));
    this.lvm('vgcfgrestore', [...extraRestoreArgs, '-f', backup, vg]);
  }

  /** lvm's own view of the VG: the mapping the tests compute expected bytes from. */
  report(vg: string, devices: LoopDevice[] = this.loops): LvmReport {
    const json = (command: string, args: string[]): Record<string, unknown>[] => {
      const out = JSON.parse(this.lvm(command, ['--reportformat', 'json', '--units', 'b', '--nosuffix', ...args], devices)) as {
        report: Record<string, Record<string, unknown>[]>[];
      };
      return Object.values(out.report[0] ?? {})[0] ?? [];
    };
    const vgs = json('vgs', ['-o', 'vg_name,vg_uuid,vg_extent_size,vg_seqno,vg_size', vg]) as unknown as LvmReport['vg'][];
    const pvs = json('pvs', ['-o', 'pv_name,pv_uuid,pe_start,vg_name']) as unknown as LvmReport['pvs'];
    const segments = json('lvs', [
      '--segments',
      '-o',
      'lv_name,lv_uuid,lv_size,lv_attr,segtype,seg_start_pe,seg_size_pe,stripes,stripe_size,seg_pe_ranges',
      vg,
    ]) as unknown as LvmSegmentRow[];
    const first = vgs[0];
    if (!first) throw new Error(`lvm reports no VG ${vg}`);
    return { vg: first, pvs: pvs.filter((pv) => pv.vg_name === vg), segments };
  }

  cleanup(): void {
    for (const loop of [...this.loops].reverse()) {
      try {
        execFileSync('losetup', ['-d', loop.device]);
      } catch {
        // Already gone: nothing left to release.
      }
    }
    this.loops.length = 0;
    if (this.made !== undefined) rmSync(this.made, { recursive: true, force: true });
    this.made = undefined;
  }
}

/** Adds a logical_volumes section with `lvs` to the VG section of a vgcfgbackup file. */
export function insertLogicalVolumes(backup: string, lvs: LvSpec[]): string {
  const body = lvs.map(lvText).join('\n');
  const section = `\n\tlogical_volumes {\n${body}\n\t}\n`;
  const existing = backup.indexOf('\tlogical_volumes {');
  if (existing >= 0) {
    const at = existing + '\tlogical_volumes {'.length;
    return `${backup.slice(0, at)}\n${body}\n${backup.slice(at)}`;
  }
  const end = backup.lastIndexOf('}');
  return `${backup.slice(0, end)}${section}${backup.slice(end)}`;
}

function lvText(lv: LvSpec): string {
  const segments =
    lv.rawSegments ??
    lv.segments.map((seg) => {
      const stripes = seg.stripes.map(([pv, pe]) => `"${pv}", ${pe}`).join(', ');
      const striping = seg.stripes.length > 1 ? `\t\t\t\tstripe_size = ${seg.stripeSizeSectors ?? 128}\n` : '';
      return (
        `\t\t\t\tstart_extent = ${seg.startExtent}\n\t\t\t\textent_count = ${seg.extentCount}\n\t\t\t\ttype = "striped"\n` +
        `\t\t\t\tstripe_count = ${seg.stripes.length}\n${striping}\t\t\t\tstripes = [ ${stripes} ]\n`
      );
    });
  const status = (lv.status ?? ['READ', 'WRITE', 'VISIBLE']).map((s) => `"${s}"`).join(', ');
  const segs = segments.map((text, i) => `\t\t\tsegment${i + 1} {\n${text}\t\t\t}\n`).join('');
  return `\t\t${lv.name} {\n\t\t\tid = "${lvmUuid()}"\n\t\t\tstatus = [${status}]\n\t\t\tflags = []\n\t\t\tsegment_count = ${segments.length}\n${segs}\t\t}`;
}

/** Where LV byte `offset` lives according to lvm's report: a loop device and a byte offset on it. */
export interface DeviceLocation {
  device: string;
  offset: number;
  /** Bytes from here that stay contiguous on the device. */
  length: number;
}

/**
 * The device-mapper mapping of one LV, computed from `lvs --segments` and `pvs` output alone:
 * linear runs and the striped target's round-robin (chunk c on stripe c mod N, row c div N).
 */
export function lvLayoutFromReport(report: LvmReport, lvName: string): (offset: number) => DeviceLocation {
  const extent = Number(report.vg.vg_extent_size);
  const peStart = new Map(report.pvs.map((pv) => [pv.pv_name, Number(pv.pe_start)]));
  const segments = report.segments
    .filter((row) => row.lv_name === lvName)
    .map((row) => {
      const stripes = row.seg_pe_ranges
        .trim()
        .split(/\s+/)
        .map((range) => {
          const match = /^(.*):(\d+)-(\d+)$/.exec(range);
          if (!match) throw new Error(`unexpected seg_pe_ranges ${row.seg_pe_ranges}`);
          const device = match[1] as string;
          const start = peStart.get(device);
          if (start === undefined) throw new Error(`no pe_start for ${device}`);
          return { device, offset: start + Number(match[2]) * extent };
        });
      return {
        start: Number(row.seg_start_pe) * extent,
        length: Number(row.seg_size_pe) * extent,
        stripeSize: Number(row.stripes) > 1 ? Number(row.stripe_size) : Number(row.seg_size_pe) * extent,
        stripes,
      };
    });
  return (offset) => {
    const seg = segments.find((s) => offset >= s.start && offset < s.start + s.length);
    if (!seg) throw new Error(`offset ${offset} is outside LV ${lvName}`);
    const rel = offset - seg.start;
    const chunk = Math.floor(rel / seg.stripeSize);
    const stripe = seg.stripes[chunk % seg.stripes.length] as { device: string; offset: number };
    const row = Math.floor(chunk / seg.stripes.length);
    const within = rel % seg.stripeSize;
    return {
      device: stripe.device,
      offset: stripe.offset + row * seg.stripeSize + within,
      length: Math.min(seg.stripeSize - within, seg.start + seg.length - offset),
    };
  };
}

/**
 * Reads `length` bytes of an LV the way lvm's mapping says. The bytes come from the loop devices'
 * image files at the devices' offsets: the loop devices' own page cache could hold stale pages.
 */
export function readLvFromDevices(loops: LoopDevice[], layout: (offset: number) => DeviceLocation, offset: number, length: number): Buffer {
  const out = Buffer.alloc(length);
  for (let at = 0; at < length;) {
    const where = layout(offset + at);
    const n = Math.min(where.length, length - at);
    const loop = loopOf(loops, where.device);
    const fd = openSync(loop.image, 'r');
    try {
      if (readSync(fd, out, at, n, loop.offset + where.offset) !== n) throw new Error(`short read of ${loop.image}`);
    } finally {
      closeSync(fd);
    }
    at += n;
  }
  return out;
}

/** Writes `data` as LV bytes [offset, offset+data.length), by lvm's mapping, into the loop devices' images. */
export function writeLvToDevices(loops: LoopDevice[], layout: (offset: number) => DeviceLocation, offset: number, data: Buffer): void {
  for (let at = 0; at < data.length;) {
    const where = layout(offset + at);
    const n = Math.min(where.length, data.length - at);
    const loop = loopOf(loops, where.device);
    const fd = openSync(loop.image, 'r+');
    try {
      writeSync(fd, data, at, n, loop.offset + where.offset);
    } finally {
      closeSync(fd);
    }
    at += n;
  }
}

function loopOf(loops: LoopDevice[], device: string): LoopDevice {
  const loop = loops.find((l) => l.device === device);
  if (!loop) throw new Error(`lvm reports device ${device}, which the sandbox did not attach`);
  return loop;
}

/** Deterministic bytes (xorshift32) so each test can tell every PE apart. */
export function patternBytes(length: number, seed: number): Buffer {
  const out = Buffer.alloc(length);
  let state = seed >>> 0 || 0x9e3779b9;
  for (let i = 0; i + 4 <= length; i += 4) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    out.writeUInt32LE(state >>> 0, i);
  }
  return out;
}

/**
 * `pvck --dump headers` of one device, as key → value (`mda_header_1.raw_locn[0].offset` → '1536').
 * pvck refuses `--devices` here ("not in devices list"), so a filter accepting only the device it is.
 */
export function pvckHeaders(sandbox: LvmSandbox, loop: LoopDevice): Map<string, string> {
  const filter = `devices { filter = [ "a|^${loop.device}$|", "r|.*|" ] }`;
  const out = sandbox.lvmWithoutDevices('pvck', ['--config', filter, '--dump', 'headers', loop.device]);
  const fields = new Map<string, string>();
  for (const line of out.split('\n')) {
    const match = /^\s*([a-z_0-9.[\]]+) (.+)$/.exec(line);
    if (match) fields.set(match[1] as string, (match[2] as string).trim());
  }
  return fields;
}

/**
 * A PV's head (label and metadata area) as a compact fixture: the non-zero byte runs of its first
 * `length` bytes, base64, with lvm's own report of what they hold. Unit and fuzz tests rebuild the
 * bytes with `bytesFromRuns` and need no loop device.
 */
export interface LvmHeadFixture {
  generatedBy: string;
  lvmVersion: string;
  size: number;
  runs: [number, string][];
  pvUuid: string;
  vg: { name: string; uuid: string; seqno: number; extentSize: number };
  lvs: { name: string; uuid: string; size: number }[];
  mda: { start: number; size: number; textOffset: number; textSize: number };
}

export function runsOf(bytes: Buffer): [number, string][] {
  const runs: [number, string][] = [];
  for (let at = 0; at < bytes.length;) {
    while (at < bytes.length && bytes[at] === 0) at++;
    if (at >= bytes.length) break;
    let end = at;
    // A run continues over short stretches of zeros (fields inside a header), not long ones.
    for (let zeros = 0; end < bytes.length && zeros < 64; end++) zeros = bytes[end] === 0 ? zeros + 1 : 0;
    while (end > at && bytes[end - 1] === 0) end--;
    runs.push([at, bytes.subarray(at, end).toString('base64')]);
    at = end;
  }
  return runs;
}

export function bytesFromRuns(size: number, runs: readonly [number, string][]): Buffer {
  const out = Buffer.alloc(size);
  for (const [offset, data] of runs) Buffer.from(data, 'base64').copy(out, offset);
  return out;
}

/** Makes a one-PV VG with two LVs (one of two segments) and captures the PV's head. */
export function captureLvmHeadFixture(sandbox: LvmSandbox): LvmHeadFixture {
  const loop = sandbox.attach(sandbox.image('fixture.img', 12 * 1024 * 1024));
  sandbox.lvm('pvcreate', [loop.device]);
  sandbox.lvm('vgcreate', ['-s', '1M', 'cairn_fixture', loop.device]);
  sandbox.restoreWithLvs('cairn_fixture', [
    { name: 'root', segments: [{ startExtent: 0, extentCount: 2, stripes: [['pv0', 0]] }] },
    {
      name: 'home',
      segments: [
        { startExtent: 0, extentCount: 1, stripes: [['pv0', 4]] },
        { startExtent: 1, extentCount: 2, stripes: [['pv0', 2]] },
      ],
    },
  ]);
  const report = sandbox.report('cairn_fixture');
  const headers = pvckHeaders(sandbox, loop);
  const peStart = Number(report.pvs[0]?.pe_start);
  const fd = openSync(loop.image, 'r');
  const head = Buffer.alloc(peStart);
  try {
    readSync(fd, head, 0, peStart, 0);
  } finally {
    closeSync(fd);
  }
  const lvNames = [...new Set(report.segments.map((r) => r.lv_name))];
  return {
    generatedBy:
      'captureLvmHeadFixture in test/helpers/lvm-images.ts (CAIRN_WRITE_LVM_FIXTURE=1 npx vitest run test/integration/guest-lvm-metadata.test.ts -t fixture)',
    lvmVersion: sandbox.lvmWithoutDevices('lvm', ['version']).split('\n')[0]?.trim() ?? '',
    size: peStart,
    runs: runsOf(head),
    pvUuid: report.pvs[0]?.pv_uuid ?? '',
    vg: {
      name: report.vg.vg_name,
      uuid: report.vg.vg_uuid,
      seqno: Number(report.vg.vg_seqno),
      extentSize: Number(report.vg.vg_extent_size),
    },
    lvs: lvNames.map((name) => {
      const row = report.segments.find((r) => r.lv_name === name) as LvmSegmentRow;
      return { name, uuid: row.lv_uuid, size: Number(row.lv_size) };
    }),
    mda: {
      start: Number(headers.get('mda_header_1.start')),
      size: Number(headers.get('mda_header_1.size')),
      textOffset: Number(headers.get('mda_header_1.raw_locn[0].offset')),
      textSize: Number(headers.get('mda_header_1.raw_locn[0].size')),
    },
  };
}

/**
 * Edits of a real PV head for tests that need a variant lvm will not write (damage, other text):
 * each edit re-seals the checksums it breaks, so the parser sees exactly the one change. The CRC comes
 * from Cairn (an input forger, not an oracle: the unchanged fixture proves it against lvm's own).
 */
export class PvHeadEditor {
  readonly bytes: Buffer;
  private labelAt: number;

  constructor(
    head: Buffer,
    private readonly crc: (bytes: Uint8Array, previous?: number) => number,
    readonly mdaStart = 4096,
    labelSector = 1,
  ) {
    this.bytes = Buffer.from(head);
    this.labelAt = labelSector * 512;
  }

  get mdaSize(): number {
    return Number(this.bytes.readBigUInt64LE(this.mdaStart + 32));
  }

  get textOffset(): number {
    return Number(this.bytes.readBigUInt64LE(this.mdaStart + 40));
  }

  get textSize(): number {
    return Number(this.bytes.readBigUInt64LE(this.mdaStart + 48));
  }

  /** The current metadata text (unwrapped), its NUL included. */
  text(): Buffer {
    const first = Math.min(this.textSize, this.mdaSize - this.textOffset);
    const a = this.bytes.subarray(this.mdaStart + this.textOffset, this.mdaStart + this.textOffset + first);
    const b = this.bytes.subarray(this.mdaStart + 512, this.mdaStart + 512 + (this.textSize - first));
    return Buffer.concat([a, b]);
  }

  sealLabel(): this {
    const label = this.bytes.subarray(this.labelAt, this.labelAt + 512);
    label.writeUInt32LE(this.crc(label.subarray(20)), 16);
    return this;
  }

  sealMdaHeader(): this {
    const header = this.bytes.subarray(this.mdaStart, this.mdaStart + 512);
    header.writeUInt32LE(this.crc(header.subarray(4)), 0);
    return this;
  }

  /** Moves the label to another of the first four sectors (updating its own sector field). */
  moveLabel(sector: number): this {
    const label = Buffer.from(this.bytes.subarray(this.labelAt, this.labelAt + 512));
    this.bytes.fill(0, this.labelAt, this.labelAt + 512);
    this.labelAt = sector * 512;
    label.writeBigUInt64LE(BigInt(sector), 8);
    label.copy(this.bytes, this.labelAt);
    return this.sealLabel();
  }

  /** Any other edit of the label sector, re-sealed. */
  labelField(write: (label: Buffer) => void): this {
    write(this.bytes.subarray(this.labelAt, this.labelAt + 512));
    return this.sealLabel();
  }

  /** Replaces the PV UUID (32 characters, no dashes) in the label. */
  setPvUuid(raw: string): this {
    const contents = this.bytes.readUInt32LE(this.labelAt + 20);
    this.bytes.write(raw, this.labelAt + contents, 32, 'latin1');
    return this.sealLabel();
  }

  /**
   * Writes `text` as the committed metadata at `offset` in the area (wrapping past its end back to
   * 512 when it must), with its checksum; `checksum` overrides the one computed.
   */
  setText(text: Buffer, offset = this.textOffset, checksum?: number): this {
    const area = this.mdaSize;
    const first = Math.min(text.length, area - offset);
    this.bytes.fill(0, this.mdaStart + 512, this.mdaStart + area);
    text.copy(this.bytes, this.mdaStart + offset, 0, first);
    text.copy(this.bytes, this.mdaStart + 512, first);
    const header = this.bytes.subarray(this.mdaStart, this.mdaStart + 512);
    header.writeBigUInt64LE(BigInt(offset), 40);
    header.writeBigUInt64LE(BigInt(text.length), 48);
    header.writeUInt32LE(checksum ?? this.crc(text), 56);
    return this.sealMdaHeader();
  }

  /** Any other edit of the mda header (offsets within it), re-sealed. */
  mdaField(write: (header: Buffer) => void): this {
    write(this.bytes.subarray(this.mdaStart, this.mdaStart + 512));
    return this.sealMdaHeader();
  }
}

/** A disk of `size` bytes whose first bytes are `head` and the rest zeros (a PV with empty extents). */
export class MemoryBlockReader implements BlockReader {
  readonly blockSize = 64 * 1024;
  reads = 0;

  constructor(
    private readonly head: Buffer,
    readonly size: number = head.length,
  ) {}

  async read(offset: number, length: number): Promise<Buffer> {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.size) {
      throw new RangeError(`read ${offset}+${length} past ${this.size}`);
    }
    this.reads++;
    const out = Buffer.alloc(length);
    if (offset < this.head.length) this.head.copy(out, 0, offset, Math.min(this.head.length, offset + length));
    return out;
  }

  async allocation(offset: number, length: number): Promise<AllocationExtent[]> {
    const dataEnd = Math.min(offset + length, this.head.length);
    const extents: AllocationExtent[] = [];
    if (dataEnd > offset) extents.push({ offset, length: dataEnd - offset, zero: false });
    if (offset + length > Math.max(offset, dataEnd))
      extents.push({ offset: Math.max(offset, dataEnd), length: offset + length - Math.max(offset, dataEnd), zero: true });
    return extents;
  }
}
