/**
 * Identifier rules of lvm2 (lib/uuid/uuid.c `id_read_format`, `_c`; lib/misc/lvm-string.c
 * `_validate_name`). VG and LV names end up in URLs and FUSE paths, so a name lvm itself would refuse
 * (a slash, "..", a leading hyphen) is refused here too rather than escaped.
 */

/** The 64 characters lvm draws UUIDs from. */
const UUID_CHARS = /^[A-Za-z0-9!#]{32}$/;
/** Where lvm's text form puts dashes: 6-4-4-4-4-4-6. */
const UUID_GROUPS = [6, 4, 4, 4, 4, 4, 6] as const;
/** NAME_LEN is 128 with the terminating NUL. */
const MAX_NAME_LENGTH = 127;
const NAME_CHARS = /^[A-Za-z0-9._+-]+$/;

/** The dashed text form of a 32-character UUID, or undefined when it is not one. */
export function formatLvmUuid(raw: string): string | undefined {
  if (!UUID_CHARS.test(raw)) return undefined;
  const groups: string[] = [];
  let at = 0;
  for (const length of UUID_GROUPS) {
    groups.push(raw.slice(at, at + length));
    at += length;
  }
  return groups.join('-');
}

/**
 * A UUID as the text metadata writes it, checked and put in the dashed form; undefined when it is
 * not 32 UUID characters once dashes are dropped (lvm's reader ignores dashes wherever they are).
 */
export function canonicalLvmUuid(text: string): string | undefined {
  return formatLvmUuid(text.replaceAll('-', ''));
}

/** Why `name` is not a valid VG or LV name, or undefined when it is. */
export function lvmNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'the name is empty';
  if (name.length > MAX_NAME_LENGTH) return `the name is longer than ${MAX_NAME_LENGTH} characters`;
  if (name.startsWith('-')) return 'the name starts with a hyphen';
  if (name === '.' || name === '..') return `the name is '${name}'`;
  if (!NAME_CHARS.test(name)) return 'the name has characters other than A-Z a-z 0-9 . _ + -';
  return undefined;
}

/** A name from untrusted metadata as it may appear in a message: quoted, escaped and cut short. */
export function quoteName(name: string): string {
  return JSON.stringify(name.length > 80 ? `${name.slice(0, 80)}…` : name);
}
