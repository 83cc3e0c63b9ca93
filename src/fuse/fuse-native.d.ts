// Types for the parts of fuse-native (2.x, CommonJS, untyped) that src/fuse uses.
declare module 'fuse-native' {
  type Callback<T = never> = (code: number, value?: T) => void;

  export interface FuseStat {
    mode: number;
    uid: number;
    gid: number;
    size: number;
    nlink?: number;
    ino?: number;
    blksize?: number;
    blocks?: number;
    mtime: Date | number;
    atime: Date | number;
    ctime: Date | number;
  }

  export interface FuseStatfs {
    bsize: number;
    frsize: number;
    blocks: number;
    bfree: number;
    bavail: number;
    files: number;
    ffree: number;
    favail: number;
    fsid: number;
    flag: number;
    namemax: number;
  }

  export interface FuseOperations {
    init?(cb: (code: number) => void): void;
    getattr?(path: string, cb: Callback<FuseStat>): void;
    fgetattr?(path: string, fd: number, cb: Callback<FuseStat>): void;
    readdir?(path: string, cb: (code: number, names?: string[], stats?: FuseStat[]) => void): void;
    readlink?(path: string, cb: Callback<string>): void;
    open?(path: string, flags: number, cb: Callback<number>): void;
    opendir?(path: string, flags: number, cb: Callback<number>): void;
    read?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (bytesOrErrno: number) => void): void;
    release?(path: string, fd: number, cb: (code: number) => void): void;
    releasedir?(path: string, fd: number, cb: (code: number) => void): void;
    statfs?(path: string, cb: Callback<FuseStatfs>): void;
    access?(path: string, mode: number, cb: (code: number) => void): void;
  }

  export interface FuseOptions {
    debug?: boolean;
    force?: boolean;
    mkdir?: boolean;
    allowOther?: boolean;
    defaultPermissions?: boolean;
    maxRead?: number;
    fsname?: string;
    subtype?: string;
    kernelCache?: boolean;
    attrTimeout?: number;
    entryTimeout?: number;
    uid?: number;
    gid?: number;
    timeout?: number | false;
  }

  export default class Fuse {
    constructor(mnt: string, ops: FuseOperations, opts?: FuseOptions);
    readonly mnt: string;
    mount(cb: (err: Error | null) => void): void;
    unmount(cb: (err: Error | null) => void): void;
    static unmount(mnt: string, cb: (err: Error | null) => void): void;
    static isConfigured(cb: (err: Error | null, configured: boolean) => void): void;
  }
}
