import { CairnError } from '../../core/errors.js';
import type { Namespace } from '../namespace/namespace.js';
import type { GuestNode } from '../namespace/nodes.js';

/** Directory depth a walk follows: deeper is a hostile or looping filesystem. */
const MAX_DEPTH = 1024;

export interface WalkEntry {
  node: GuestNode;
  /** Escaped path below the walk's start ([] for the start itself). */
  relative: string[];
  /** 'enter' before a directory's entries, 'leave' after them; files and others come once as 'file'. */
  event: 'enter' | 'leave' | 'file';
}

/**
 * Walks a guest subtree depth-first, directories before and after their entries, without holding
 * more than one open listing per level. A directory that contains one of its own ancestors (a
 * looped, damaged filesystem) is an error naming it, as is a tree deeper than MAX_DEPTH.
 */
export interface WalkOptions {
  /**
   * Called when a directory cannot be listed or an entry not read (damaged data, say), with the
   * escaped path of what failed. Returning true skips it and walks on; otherwise the walk fails.
   */
  onError?: (relative: readonly string[], err: unknown) => boolean;
}

export async function* walkGuestTree(namespace: Namespace, start: GuestNode, options: WalkOptions = {}): AsyncGenerator<WalkEntry> {
  if (start.stat.type !== 'dir') {
    yield { node: start, relative: [], event: 'file' };
    return;
  }
  const ancestors = new Set<bigint>();
  async function* visit(dir: GuestNode, relative: string[]): AsyncGenerator<WalkEntry> {
    if (ancestors.has(dir.id) || relative.length > MAX_DEPTH) {
      throw new CairnError(
        'ERR_FORMAT_INVALID',
        `${dir.volume.label}/${dir.path.join('/')}: directory loop or absurd depth in the guest filesystem`,
        {
          path: dir.path.join('/'),
        },
      );
    }
    ancestors.add(dir.id);
    yield { node: dir, relative, event: 'enter' };
    try {
      for await (const entry of namespace.list(dir)) {
        const childRelative = [...relative, entry.name];
        let child: GuestNode;
        try {
          child = (await entry.resolve()) as GuestNode;
        } catch (err) {
          if (options.onError?.(childRelative, err)) continue;
          throw err;
        }
        if (child.stat.type === 'dir') yield* visit(child, childRelative);
        else yield { node: child, relative: childRelative, event: 'file' };
      }
    } catch (err) {
      // The listing itself failed: what was listed before stays, the rest of this directory is skipped.
      if (!options.onError?.(relative, err)) throw err;
    }
    yield { node: dir, relative, event: 'leave' };
    ancestors.delete(dir.id);
  }
  yield* visit(start, []);
}
