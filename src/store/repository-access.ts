import { chmod, chown, mkdir, readFile, type FileHandle } from 'node:fs/promises';
import { CairnError, systemErrorCode } from '../core/errors.js';

/**
 * Who may read a repository, as its `config` records it (docs/formats/repository.md):
 * - `private`: only the owner: directories 0700, files 0400 (0600 for the config and locks);
 * - `group`: the owner writes, one group reads: directories 02750 (setgid, so everything created
 *   inside inherits the group), files 0440 (0640);
 * - absent (repositories made before this field existed): the process umask decides, as it did
 *   then (directories 0777, files 0444 / 0644, less the umask), so nothing an operator relied on
 *   changes under them.
 * Modes are set explicitly after every create (chmod / fchmod): the umask never narrows or widens them.
 */
export type AccessConfig = { mode: 'private' } | { mode: 'group'; gid: number; group?: string };

/** Files rewritten in place or by their owner (config, locks) against files written once (chunks, indexes, manifests). */
export type FileKind = 'immutable' | 'mutable';

const MODES = {
  private: { dir: 0o700, immutable: 0o400, mutable: 0o600 },
  group: { dir: 0o2750, immutable: 0o440, mutable: 0o640 },
  legacy: { dir: 0o777, immutable: 0o444, mutable: 0o644 },
} as const;

export class RepositoryAccess {
  private readonly modes: (typeof MODES)[keyof typeof MODES];
  /** False for a repository without an `access` field: umask behaviour, no chmod. */
  private readonly explicit: boolean;

  constructor(readonly config: AccessConfig | undefined) {
    this.modes = MODES[config?.mode ?? 'legacy'];
    this.explicit = config !== undefined;
  }

  /** The mode to pass to open(2) for a new file of `kind`. */
  fileMode(kind: FileKind): number {
    return this.modes[kind];
  }

  /** Gives a just-created file its mode whatever the umask. */
  async setFileMode(handle: FileHandle, kind: FileKind): Promise<void> {
    if (this.explicit) await handle.chmod(this.modes[kind]);
  }

  /** Creates one directory (its parent must exist); false when it existed already. */
  async mkdir(path: string): Promise<boolean> {
    try {
      await mkdir(path, { mode: this.modes.dir });
    } catch (err) {
      if (systemErrorCode(err) === 'EEXIST') return false;
      throw err;
    }
    await this.setDirMode(path);
    return true;
  }

  /** chmod after mkdir: mkdir(2) applies the umask and, on Linux, ignores the setgid bit it is given. */
  async setDirMode(path: string): Promise<void> {
    if (this.explicit) await chmod(path, this.modes.dir);
  }

  /** Prepares the repository root at init: its group (for `group`) and mode. */
  async prepareRoot(root: string): Promise<void> {
    if (this.config?.mode === 'group') {
      try {
        await chown(root, -1, this.config.gid);
      } catch (err) {
        throw new CairnError(
          'ERR_INVALID_ARGUMENT',
          `cannot give ${root} to group ${this.config.group ?? this.config.gid}: ${systemErrorCode(err) === 'EPERM' ? 'only root or a member of the group may' : (err as Error).message}`,
          { repo: root },
          { cause: err },
        );
      }
    }
    await this.setDirMode(root);
  }
}

/** Checks the `access` field of a repository config (undefined when absent). */
export function parseAccessConfig(value: unknown, file: string): AccessConfig | undefined {
  if (value === undefined) return undefined;
  const access = value as Partial<{ mode: unknown; gid: unknown; group: unknown }>;
  if (typeof value === 'object' && value !== null && access.mode === 'private') return { mode: 'private' };
  if (
    typeof value === 'object' &&
    value !== null &&
    access.mode === 'group' &&
    typeof access.gid === 'number' &&
    Number.isSafeInteger(access.gid) &&
    access.gid >= 0
  ) {
    return { mode: 'group', gid: access.gid, ...(typeof access.group === 'string' ? { group: access.group } : {}) };
  }
  // A mode this release does not know may mean something stricter: never guess it away.
  throw new CairnError('ERR_FORMAT_INVALID', `repository config ${file} has an access setting this Cairn does not know`, { file });
}

/** A group name from /etc/group, or a numeric GID (groups that only NSS knows, LDAP and such). */
export async function resolveGroup(group: string): Promise<{ gid: number; group: string }> {
  if (/^\d+$/.test(group)) return { gid: Number(group), group };
  const text = await readFile('/etc/group', 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === group && gid !== undefined && /^\d+$/.test(gid)) return { gid: Number(gid), group };
  }
  throw new CairnError('ERR_INVALID_ARGUMENT', `group '${group}' is not in /etc/group (give its numeric GID instead)`, { group });
}
