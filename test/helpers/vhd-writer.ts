// A small writer of dynamic and differencing VHD files, laid out as Xen Orchestra's vhd-lib writes
// them (footer, header at 512, BAT at 1536, locator data, blocks of bitmap + data, footer), for the
// tests only: qemu-img cannot write a differencing VHD and vhd-lib does not install here. Every file
// it writes is checked by an independent reader (libvhdi's vhdiinfo / vhdimount), never by Cairn.
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';

const SECTOR = 512;

export interface VhdLocatorSpec {
  code: 'W2ru' | 'W2ku' | 'MacX';
  path: string;
}

export interface VhdBlockSpec {
  index: number;
  /** The block's bytes (blockSize long; unmarked sectors are written but must not be read). */
  data: Buffer;
  /** Which sectors the bitmap marks; all when absent. */
  marked?: (sector: number) => boolean;
}

export interface VhdSpec {
  size: number;
  blockSize?: number;
  uuid?: Buffer;
  creator?: string;
  parent?: { uuid: Buffer; name: string; locators?: VhdLocatorSpec[] };
  blocks: VhdBlockSpec[];
}

function checksum(buf: Buffer, at: number): number {
  let sum = 0;
  for (let i = 0; i < buf.length; i++) if (i < at || i >= at + 4) sum += buf[i]!;
  return ~sum >>> 0;
}

/** CHS geometry as the VHD specification's appendix computes it. */
function geometry(size: number): [number, number, number] {
  let total = Math.min(size / SECTOR, 65535 * 16 * 255);
  let spt: number;
  let heads: number;
  let cth: number;
  if (total >= 65535 * 16 * 63) {
    spt = 255;
    heads = 16;
    cth = total / spt;
  } else {
    spt = 17;
    cth = total / spt;
    heads = Math.max(4, Math.floor((cth + 1023) / 1024));
    if (cth >= heads * 1024 || heads > 16) {
      spt = 31;
      heads = 16;
      cth = total / spt;
    }
    if (cth >= heads * 1024) {
      spt = 63;
      heads = 16;
      cth = total / spt;
    }
  }
  total = Math.floor(cth / heads);
  return [total, heads, spt];
}

function footer(spec: VhdSpec, uuid: Buffer): Buffer {
  const f = Buffer.alloc(512);
  f.write('conectix', 0, 'latin1');
  f.writeUInt32BE(2, 8);
  f.writeUInt32BE(0x00010000, 12);
  f.writeBigUInt64BE(512n, 16);
  f.writeUInt32BE(Math.floor(Date.now() / 1000) - 946684800, 24);
  f.write((spec.creator ?? 'xo  ').padEnd(4).slice(0, 4), 28, 'latin1');
  f.writeUInt32BE(0x00010000, 32);
  f.write('Wi2k', 36, 'latin1');
  f.writeBigUInt64BE(BigInt(spec.size), 40);
  f.writeBigUInt64BE(BigInt(spec.size), 48);
  const [c, h, s] = geometry(spec.size);
  f.writeUInt16BE(c, 56);
  f.writeUInt8(h, 58);
  f.writeUInt8(s, 59);
  f.writeUInt32BE(spec.parent ? 4 : 3, 60);
  uuid.copy(f, 68);
  f.writeUInt32BE(checksum(f, 64), 64);
  return f;
}

const PLATFORM = { W2ru: 0x57327275, W2ku: 0x57326b75, MacX: 0x4d616358 } as const;

/** Writes the VHD and returns its footer uuid (the id a child names as its parent). */
export function writeVhd(path: string, spec: VhdSpec): Buffer {
  const blockSize = spec.blockSize ?? 2 * 1024 * 1024;
  const uuid = spec.uuid ?? randomBytes(16);
  const entries = Math.ceil(spec.size / blockSize);
  const batSize = Math.ceil((entries * 4) / SECTOR) * SECTOR;
  const bitmapSize = Math.ceil(blockSize / SECTOR / 8 / SECTOR) * SECTOR;
  const fd = openSync(path, 'w');
  const write = (buf: Buffer, at: number) => writeSync(fd, buf, 0, buf.length, at);
  let next = 1536 + batSize;
  const header = Buffer.alloc(1024);
  header.write('cxsparse', 0, 'latin1');
  header.writeBigUInt64BE(0xffffffffffffffffn, 8);
  header.writeBigUInt64BE(1536n, 16);
  header.writeUInt32BE(0x00010000, 24);
  header.writeUInt32BE(entries, 28);
  header.writeUInt32BE(blockSize, 32);
  if (spec.parent) {
    spec.parent.uuid.copy(header, 40);
    header.writeUInt32BE(Math.floor(Date.now() / 1000) - 946684800, 56);
    const name = Buffer.from(spec.parent.name, 'utf16le').swap16();
    name.copy(header, 64, 0, Math.min(512, name.length));
    (spec.parent.locators ?? []).forEach((locator, n) => {
      const data = locator.code === 'MacX' ? Buffer.from(locator.path, 'utf8') : Buffer.from(locator.path, 'utf16le');
      const space = Math.ceil(data.length / SECTOR) * SECTOR;
      const at = 576 + n * 24;
      header.writeUInt32BE(PLATFORM[locator.code], at);
      header.writeUInt32BE(space, at + 4);
      header.writeUInt32BE(data.length, at + 8);
      header.writeBigUInt64BE(BigInt(next), at + 16);
      write(Buffer.concat([data, Buffer.alloc(space - data.length)]), next);
      next += space;
    });
  }
  header.writeUInt32BE(checksum(header, 36), 36);
  const bat = Buffer.alloc(batSize, 0xff);
  for (const block of spec.blocks) {
    if (block.data.length !== blockSize) throw new Error('block data must be one block long');
    const bitmap = Buffer.alloc(bitmapSize, block.marked ? 0 : 0xff);
    if (block.marked) for (let s = 0; s < blockSize / SECTOR; s++) if (block.marked(s)) bitmap[s >> 3]! |= 0x80 >> (s & 7);
    bat.writeUInt32BE(next / SECTOR, block.index * 4);
    write(bitmap, next);
    write(block.data, next + bitmapSize);
    next += bitmapSize + blockSize;
  }
  const foot = footer(spec, uuid);
  write(foot, 0);
  write(header, 512);
  write(bat, 1536);
  write(foot, next);
  closeSync(fd);
  return uuid;
}
