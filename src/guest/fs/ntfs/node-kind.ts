import type { AttributeData } from './attribute-data.js';
import { formatInvalid, recordName } from './errors.js';
import { parseExtendedAttributes } from './ea.js';
import { ATTR_TYPE, EA_ENTRY, FILE_ATTR, INTX, REPARSE_POINT, REPARSE_TAG } from './layout.js';
import { findAttribute, isDirectoryNode, type NtfsNode } from './node.js';
import { parseLinkData, parseReparsePoint, type LinkData } from './reparse.js';
import { utf16Units } from './names.js';

/**
 * What a file is, as ntfs-3g's getattr decides it (src/ntfs-3g.c ntfs_fuse_getattr):
 * - a reparse point: a symlink for IO_REPARSE_TAG_SYMLINK, junctions (MOUNT_POINT) and WSL
 *   symlinks; a fifo, socket or device for the WSL tags; otherwise the file or directory it is,
 *   whose content this reader refuses to read (`unsupportedTag`: deduplicated, WOF-compressed,
 *   cloud placeholders keep their data elsewhere, and zeros would be wrong bytes);
 * - a directory when the record says so;
 * - a SYSTEM file holding an Interix special file (which ntfs-3g writes for symlinks, devices,
 *   fifos and sockets unless mounted with special_files=wsl): IntxLNK / IntxCHR / IntxBLK data,
 *   or, when not also HIDDEN, an empty file (a fifo) or a 1-byte one (a socket);
 * - else a regular file.
 */
export type NodeKind =
  | { readonly type: 'dir' | 'file' | 'fifo' | 'socket'; readonly unsupportedTag?: number }
  | { readonly type: 'char' | 'block'; readonly major: number; readonly minor: number }
  | { readonly type: 'symlink'; readonly link: LinkData | { readonly kind: 'interix'; readonly target: string } };

/** A node's kind and, when WSL stored one in $LXMOD, its POSIX mode. */
export interface NodeFacts {
  readonly kind: NodeKind;
  readonly lxMode?: number;
}

const PLAIN_DIR: NodeFacts = { kind: { type: 'dir' } };
const PLAIN_FILE: NodeFacts = { kind: { type: 'file' } };

/** The facts of a node that needs no attribute read (most): no reparse point, SYSTEM flag or EAs. */
export function plainFacts(node: NtfsNode): NodeFacts | undefined {
  const attributes = node.info?.fileAttributes ?? 0;
  if (attributes & (FILE_ATTR.REPARSE_POINT | FILE_ATTR.SYSTEM) || findAttribute(node, ATTR_TYPE.EA)) return undefined;
  return isDirectoryNode(node) ? PLAIN_DIR : PLAIN_FILE;
}

export async function nodeFacts(node: NtfsNode, data: AttributeData, volume: string): Promise<NodeFacts> {
  const plain = plainFacts(node);
  if (plain) return plain;
  const eas = await extendedAttributes(node, data);
  const kind = await classifyNode(node, data, volume, eas);
  const mode = eas.get(EA_ENTRY.LXMOD);
  return mode && mode.length >= 4 ? { kind, lxMode: mode.readUInt32LE(0) } : { kind };
}

async function extendedAttributes(node: NtfsNode, data: AttributeData): Promise<Map<string, Buffer>> {
  const attr = findAttribute(node, ATTR_TYPE.EA);
  if (!attr) return new Map();
  return parseExtendedAttributes(await data.read({ node, attr }, 0, EA_ENTRY.MAX_SIZE));
}

async function classifyNode(node: NtfsNode, data: AttributeData, volume: string, eas: Map<string, Buffer>): Promise<NodeKind> {
  const attributes = node.info?.fileAttributes ?? 0;
  const bad = (problem: string): Error => formatInvalid(volume, recordName(node.record), problem, { record: node.record });
  if (attributes & FILE_ATTR.REPARSE_POINT) {
    const attr = findAttribute(node, ATTR_TYPE.REPARSE_POINT);
    if (attr) {
      const value = await data.read({ node, attr }, 0, REPARSE_POINT.MAX_SIZE + REPARSE_POINT.HEADER_SIZE + REPARSE_POINT.GUID_SIZE);
      const point = parseReparsePoint(value);
      if (typeof point === 'string') throw bad(point);
      return reparseKind(node, point.tag, () => parseLinkData(point), eas, bad);
    }
    // The attribute says reparse point but there is none: ntfs-3g shows such a file as it is.
  }
  if (isDirectoryNode(node)) return { type: 'dir' };
  if (attributes & FILE_ATTR.SYSTEM) {
    const attr = findAttribute(node, ATTR_TYPE.DATA);
    if (attr) {
      const ref = { node, attr };
      const size = data.layout(ref).dataSize;
      if (!(attributes & FILE_ATTR.HIDDEN) && size <= 1) return { type: size === 0 ? 'fifo' : 'socket' };
      if (size > INTX.MAGIC_SIZE && size <= INTX.MAX_SIZE && !data.layout(ref).encrypted) {
        const bytes = await data.read(ref, 0, size);
        const magic = bytes.readBigUInt64LE(INTX.magic);
        if (magic === INTX.SYMBOLIC_LINK) {
          return {
            type: 'symlink',
            link: { kind: 'interix', target: utf16Units(bytes, INTX.target, Math.floor((size - INTX.target) / 2)) },
          };
        }
        if ((magic === INTX.CHARACTER_DEVICE || magic === INTX.BLOCK_DEVICE) && size === INTX.DEVICE_SIZE) {
          const major = bytes.readBigUInt64LE(INTX.major);
          const minor = bytes.readBigUInt64LE(INTX.minor);
          if (major >= 1n << 12n || minor >= 1n << 20n) throw bad(`Interix device ${major}:${minor} is out of range`);
          return { type: magic === INTX.CHARACTER_DEVICE ? 'char' : 'block', major: Number(major), minor: Number(minor) };
        }
      }
    }
  }
  return { type: 'file' };
}

function reparseKind(
  node: NtfsNode,
  tag: number,
  link: () => LinkData | string,
  eas: Map<string, Buffer>,
  bad: (problem: string) => Error,
): NodeKind {
  switch (tag) {
    case REPARSE_TAG.SYMLINK:
    case REPARSE_TAG.MOUNT_POINT:
    case REPARSE_TAG.LX_SYMLINK: {
      if (tag === REPARSE_TAG.MOUNT_POINT && !isDirectoryNode(node)) throw bad('is a junction but not a directory');
      const parsed = link();
      if (typeof parsed === 'string') throw bad(parsed);
      return { type: 'symlink', link: parsed };
    }
    case REPARSE_TAG.AF_UNIX:
      return { type: 'socket' };
    case REPARSE_TAG.LX_FIFO:
      return { type: 'fifo' };
    // WSL keeps the device number in the $LXDEV extended attribute (ea.c ntfs_ea_check_wsldev).
    case REPARSE_TAG.LX_CHR:
    case REPARSE_TAG.LX_BLK: {
      const dev = eas.get(EA_ENTRY.LXDEV);
      const [major, minor] = dev && dev.length === 8 ? [dev.readUInt32LE(0), dev.readUInt32LE(4)] : [0, 0];
      if (major >= 1 << 12 || minor >= 1 << 20) throw bad(`WSL device ${major}:${minor} is out of range`);
      return { type: tag === REPARSE_TAG.LX_CHR ? 'char' : 'block', major, minor };
    }
    default:
      return { type: isDirectoryNode(node) ? 'dir' : 'file', unsupportedTag: tag };
  }
}
